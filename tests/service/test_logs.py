"""``--log-format json``: one JSON object per line (ts, level, event, message, fields), and
never a password or a token, on ``watch`` and on ``serve``."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pixelgrade.cli import app as cli
from pixelgrade.service.logs import JsonFormatter, json_line, redact
from pixelgrade.watch import WatchLog
from tests.stores.tables import pixelgrade_table

DSN = "postgresql://app:pa55-w0rd@db.internal:5432/shop"


def test_redact_keeps_passwords_and_tokens_out() -> None:
    assert redact(f"cannot connect to {DSN}: timeout") == (
        "cannot connect to postgresql://app:***@db.internal:5432/shop: timeout")
    assert redact("host=db password=pa55-w0rd user=app") == "host=db password=*** user=app"
    assert redact("GET /?token=abc&band=high") == "GET /?token=***&band=high"
    assert redact("https://cdn.example.com/a.jpg") == "https://cdn.example.com/a.jpg"


def test_json_lines_parse_and_carry_no_password() -> None:
    stream = io.StringIO()
    log = WatchLog(stream, log_format="json")
    log.note("error", f"query on {DSN} failed", error=f"{DSN} refused", detail={"db": DSN})
    log.note("start", "pixelgrade watch on SQLite database a.db, table images", mode="poll")
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(r["level"], r["event"]) for r in records] == [("error", "error"), ("info", "start")]
    assert all({"ts", "level", "event", "message"} <= r.keys() for r in records)
    assert records[0]["ts"].endswith("+00:00") and records[1]["mode"] == "poll"
    assert "pa55-w0rd" not in stream.getvalue()
    assert records[0]["detail"] == {"db": "postgresql://app:***@db.internal:5432/shop"}


def test_text_lines_carry_no_password() -> None:
    stream = io.StringIO()
    WatchLog(stream).note("error", f"query on {DSN} failed")
    assert "pa55-w0rd" not in stream.getvalue() and "app:***@db.internal" in stream.getvalue()


def test_uvicorn_records_as_json() -> None:
    access = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5000", "GET",
                                                           "/?token=s3cret", "1.1", 200), None)
    record = json.loads(JsonFormatter().format(access))
    assert (record["level"], record["event"], record["method"], record["status"]) == (
        "info", "request", "GET", 200)
    assert record["path"] == "/?token=***" and "s3cret" not in json.dumps(record)
    error = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "boom %s", (DSN,),
                              None)
    assert json.loads(JsonFormatter().format(error))["message"] == (
        "boom postgresql://app:***@db.internal:5432/shop")
    assert json.loads(json_line("info", "x", None, ts="not overridden"))["ts"] != (
        "not overridden")


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(app=app, **options))
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY",
                 "PIXELGRADE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return seen


@pytest.mark.parametrize("token", [None, "chosen-t0ken"])
def test_serve_logs_json_without_the_token(captured: dict[str, Any], tmp_path: Path,
                                           token: str | None) -> None:
    url = f"sqlite:///{tmp_path / 'library.db'}"
    pixelgrade_table(url, ["a.jpg"])
    env = {"COLUMNS": "200", **({"PIXELGRADE_API_TOKEN": token} if token else {})}
    result = CliRunner().invoke(cli, ["serve", "--db", url, "--log-format", "json"], env=env)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    assert all({"ts", "level", "event", "message"} <= r.keys() for r in records)
    assert records[0]["message"].startswith("pixelgrade gallery of SQLite database")
    assert any(r["message"] == "Open http://127.0.0.1:8000/" for r in records)
    made_up = captured["app"].state.web.settings.token
    assert made_up not in result.output
    if token is None:
        assert any("not written to JSON logs" in r["message"] for r in records)
    config = captured["log_config"]
    assert config["formatters"]["json"]["()"] is JsonFormatter
    assert config["loggers"]["uvicorn.access"]["handlers"] == ["access"]


def test_uvicorns_own_lines_are_server_events() -> None:
    started = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1,
                                "Uvicorn running on %s", ("http://127.0.0.1:8000",), None)
    record = json.loads(JsonFormatter().format(started))
    assert (record["event"], record["message"]) == (
        "server", "Uvicorn running on http://127.0.0.1:8000")


def test_every_image_line_has_a_message(image_server: Any, tmp_path: Path) -> None:
    from pixelgrade.stores import open_store
    from pixelgrade.watch import Watcher
    from tests.watch.conftest import options

    url = f"sqlite:///{tmp_path / 'library.db'}"
    pixelgrade_table(url, [image_server.url(p) for p in ("/good.jpg", "/vector.svg",
                                                         "/gone.jpg", "/error.jpg")])
    stream = io.StringIO()
    store = open_store(url)
    try:
        Watcher(store, options(tmp_path, once=True), WatchLog(stream, log_format="json")).run(
            install_signal_handlers=False)
    finally:
        store.close()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    by_event = {r["event"]: r for r in lines if "id" in r and "via" in r}
    assert set(by_event) == {"scored", "skipped", "failed", "retry"}
    assert all(isinstance(r["message"], str) and r["message"] for r in by_event.values())
    assert [by_event[e]["level"] for e in ("scored", "skipped", "failed", "retry")] == [
        "info", "info", "warning", "warning"]
