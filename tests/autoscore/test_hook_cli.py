"""``pixelgrade migrate --supabase --sql --webhook-url`` and ``pixelgrade hook``, for real: the
printed trigger is run on PostgreSQL (with a stand-in for ``supabase_functions.http_request``
that records what it would send, see conftest.py), the row it announces is delivered to a
``pixelgrade hook`` started as a subprocess, and the row is scored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from pixelgrade.cli import app
from tests.autoscore.conftest import free_port, install_http_request_standin, sent
from tests.backfill.conftest import jpeg
from tests.stores import tables

SECRET = "whsec-cli-4f1e0c9a7b2d3e5f'x"  # a quote, to check the SQL quoting
WIDE = {"COLUMNS": "250"}
runner = CliRunner()


def migrate(*args: str, secret: str | None = SECRET) -> tuple[int, str, str]:
    env = {**WIDE, "PIXELGRADE_WEBHOOK_SECRET": secret}
    result = runner.invoke(app, ["migrate", *args], env=env)  # type: ignore[arg-type]
    return result.exit_code, result.stdout, result.stderr


def webhook_sql(stdout: str) -> list[str]:
    return [statement for statement in stdout.rstrip().rstrip(";").split(";\n\n")
            if "pixelgrade_webhook" in statement]


def test_migrate_prints_the_webhook_trigger(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./.env
    code, out, err = migrate("--supabase", "--sql", "--webhook-url", "https://h.example.com")
    assert code == 0, err
    trigger = webhook_sql(out)
    assert trigger == [
        'DROP TRIGGER IF EXISTS "pixelgrade_webhook" ON "public"."images"',
        'CREATE TRIGGER "pixelgrade_webhook"\n'
        '    AFTER INSERT OR UPDATE OF "url" ON "public"."images"\n'
        "    FOR EACH ROW\n"
        "    EXECUTE FUNCTION supabase_functions.http_request("
        "'https://h.example.com/api/hooks/supabase', 'POST', "
        '\'{"Content-Type":"application/json","Authorization":"Bearer '
        "whsec-cli-4f1e0c9a7b2d3e5f''x\"}', '{}', '5000')"]
    assert out.count("whsec-cli") == 1 and "whsec-cli" not in err
    assert "holds your PIXELGRADE_WEBHOOK_SECRET" in err
    # The rest of the Supabase migration is printed before it, unchanged.
    assert out.index("pixelgrade_write_scores") < out.index("pixelgrade_webhook")

    _, named, _ = migrate("--supabase", "--sql", "--table", "media.photos", "--url-column",
                          "src", "--webhook-url", "http://10.0.0.5:8001/custom/path")
    assert 'UPDATE OF "src" ON "media"."photos"' in named
    assert "'http://10.0.0.5:8001/custom/path'" in named


def test_migrate_refuses_a_webhook_without_its_secret_or_a_url(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = migrate("--supabase", "--sql", "--webhook-url", "https://h.example.com",
                             secret=None)
    assert code == 1 and out == ""
    assert "set PIXELGRADE_WEBHOOK_SECRET" in err
    code, _, err = migrate("--supabase", "--sql", "--webhook-url", "https://h.example.com",
                           secret="short")
    assert code == 1 and "shorter than 16" in err and "short" not in err.split("shorter")[0]
    code, _, err = migrate("--supabase", "--sql", "--webhook-url", "ftp://h.example.com")
    assert code == 1 and "not an http(s) URL" in err
    db = f"sqlite:///{tmp_path / 'a.db'}"
    tables.pixelgrade_table(db, [])
    code, _, err = migrate("--db", db, "--webhook-url", "https://h.example.com")
    assert code == 1 and "use it with --supabase --sql" in err
    assert SECRET not in err


@contextmanager
def hook_process(db: str, root: Path, port: int, *extra: str) -> Iterator[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIXELGRADE_", "SUPABASE_")) and k != "DATABASE_URL"}
    env.update(PIXELGRADE_WEBHOOK_SECRET=SECRET, PIXELGRADE_API_TOKEN="api-token-77",
               COLUMNS="250")
    process = subprocess.Popen(
        [sys.executable, "-m", "pixelgrade", "hook", "--db", db, "--root", str(root),
         "--port", str(port), "--workers", "1", *extra],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()
            try:
                if httpx.post(f"http://127.0.0.1:{port}/api/hooks/supabase",
                              json={}).status_code == 401:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "pixelgrade hook did not start"
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(condition: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_the_printed_trigger_calls_a_running_pixelgrade_hook(pg_url: str,
                                                              tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_bytes(jpeg())
    tables.pixelgrade_table(pg_url, [])
    install_http_request_standin(pg_url)
    port = free_port()
    code, out, err = migrate("--supabase", "--sql", "--webhook-url",
                             f"http://127.0.0.1:{port}")
    assert code == 0, err
    with tables.connect(pg_url) as conn:
        for statement in webhook_sql(out):
            conn.exec_driver_sql(statement)
        conn.execute(sa.text("INSERT INTO images (id, url) VALUES (1, 'photo.jpg')"))

    with hook_process(pg_url, tmp_path, port) as process:
        calls = sent(pg_url)
        assert len(calls) == 1
        call = calls[0]
        assert (call["url"], call["method"], call["params"], call["timeout_ms"]) == (
            f"http://127.0.0.1:{port}/api/hooks/supabase", "POST", {}, 5000)
        assert call["payload"]["type"] == "INSERT" and call["payload"]["record"]["id"] == 1
        # Delivered as pg_net would: the recorded URL, headers and JSON body.
        answer = httpx.post(call["url"], json=call["payload"], headers=call["headers"])
        assert answer.status_code == 202, answer.text
        wait_for(lambda: tables.rows(pg_url)[1]["quality_score"] is not None, "the score")
        assert tables.rows(pg_url)[1]["quality_status"] == "scored"
        # pixelgrade's own write does not set the URL column: no webhook for it.
        assert len(sent(pg_url)) == 1
        # The service's own routes, as serve has them: counted, healthy.
        base = f"http://127.0.0.1:{port}"
        metrics = httpx.get(f"{base}/metrics").text
        assert 'pixelgrade_images_total{kind="",path="webhook",status="scored"} 1.0' in metrics
        health = httpx.get(f"{base}/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok", health.text

        # A new URL: the re-open trigger (installed by migrate) clears the old score, so the
        # UPDATE's payload carries none and the new picture is scored.
        (tmp_path / "other.jpg").write_bytes(jpeg("chelsea.png"))
        with tables.connect(pg_url) as conn:
            conn.execute(sa.text("UPDATE images SET url = 'other.jpg' WHERE id = 1"))
        update = sent(pg_url)[1]
        assert update["payload"]["type"] == "UPDATE"
        assert update["payload"]["old_record"]["url"] == "photo.jpg"
        assert update["payload"]["record"]["quality_score"] is None
        rescored = httpx.post(update["url"], json=update["payload"], headers=update["headers"])
        assert rescored.status_code == 202, rescored.text
        wait_for(lambda: tables.rows(pg_url)[1]["quality_status"] == "scored", "the re-score")
        assert tables.rows(pg_url)[1]["quality_source"] == "other.jpg"

        # Without that trigger the row keeps its score: left alone (the log says why).
        with tables.connect(pg_url) as conn:
            conn.exec_driver_sql("DROP TRIGGER pixelgrade_reopen ON images")
            conn.execute(sa.text("UPDATE images SET url = 'third.jpg' WHERE id = 1"))
        update = sent(pg_url)[2]
        ignored = httpx.post(update["url"], json=update["payload"], headers=update["headers"])
        assert ignored.status_code == 200 and ignored.json()["status"] == "ignored"

        wrong = httpx.post(call["url"], json=call["payload"],
                           headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        on_request = httpx.post(f"http://127.0.0.1:{port}/api/images/1/score",
                                headers={"Authorization": "Bearer api-token-77"})
        assert on_request.status_code == 200 and on_request.json()["status"] == "not_needed"
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught (exit by signal).
    assert process.returncode in (0, -signal.SIGTERM), stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    assert f"Webhook: POST http://127.0.0.1:{port}/api/hooks/supabase" in stdout
    assert "re-score trigger that `pixelgrade migrate` installs" in stderr
    assert "whsec-cli" not in stdout + stderr


def test_hook_logs_json_lines_with_no_secret(tmp_path: Path) -> None:
    """``--log-format json``: start-up lines, requests and the webhook's own warning (a changed
    URL on a row that kept its score) are each one JSON object; no secret in any of them."""
    import json

    db = f"sqlite:///{tmp_path / 'app.db'}"
    tables.pixelgrade_table(db, ["new.jpg"])
    with tables.connect(db) as conn:
        conn.exec_driver_sql("UPDATE images SET quality_score = 80, quality_status = 'scored'")
    port = free_port()
    payload = {"type": "UPDATE", "table": "images", "schema": "public",
               "record": {"id": 1, "url": "new.jpg", "quality_score": 80},
               "old_record": {"id": 1, "url": "old.jpg", "quality_score": 80}}
    with hook_process(db, tmp_path, port, "--log-format", "json",
                      "--log-level", "info") as process:
        answer = httpx.post(f"http://127.0.0.1:{port}/api/hooks/supabase", json=payload,
                            headers={"Authorization": f"Bearer {SECRET}"})
        assert answer.status_code == 200 and answer.json()["status"] == "ignored"
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    events = {line["event"] for line in lines}
    assert {"start", "server", "request"} <= events, events
    assert any("re-score trigger" in line["message"] for line in lines), lines
    assert SECRET not in stdout + stderr and "Traceback" not in stderr, stderr
