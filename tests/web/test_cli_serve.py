"""``pixelgrade serve``: what it prints and the app it hands to uvicorn (not started here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from pixelgrade.cli import app as cli
from tests.stores.tables import pixelgrade_table

runner = CliRunner()


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    import uvicorn

    seen: dict[str, Any] = {}

    def fake_run(app: Any, **options: Any) -> None:
        seen["app"], seen["options"] = app, options

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY",
                 "PIXELGRADE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return seen


def test_serve_prints_the_address_with_a_made_up_token(captured: dict[str, Any],
                                                       tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lib' / 'library.db'}"
    (tmp_path / "lib").mkdir()
    pixelgrade_table(url, ["a.jpg"])
    result = runner.invoke(cli, ["serve", "--db", url, "--port", "8123"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Open http://127.0.0.1:8123/?token=" in result.output
    token = result.output.split("?token=")[1].split()[0]
    options = captured["options"]
    assert {k: options[k] for k in ("host", "port", "log_level")} == {
        "host": "127.0.0.1", "port": 8123, "log_level": "warning"}
    assert "redact_token" in options["log_config"]["filters"]  # no token in the access log
    settings = captured["app"].state.web.settings
    assert settings.token == token
    assert settings.uploads == tmp_path / "lib" / "uploads"
    assert settings.root == tmp_path / "lib"
    with TestClient(captured["app"]) as client:
        assert client.get("/api/counts").json()["all"] == 1
        assert client.post("/api/images/1/rescore").status_code == 401


def test_serve_uses_the_configured_token(captured: dict[str, Any], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'library.db'}"
    pixelgrade_table(url, [])
    result = runner.invoke(cli, ["serve", "--db", url],
                           env={"COLUMNS": "200", "PIXELGRADE_API_TOKEN": "chosen"})
    assert result.exit_code == 0, result.output
    assert "Open http://127.0.0.1:8000/\n" in result.output and "token=" not in result.output
    assert captured["app"].state.web.settings.token == "chosen"


def test_serve_explains_a_missing_database(captured: dict[str, Any], tmp_path: Path) -> None:
    result = runner.invoke(cli, ["serve", "--db", f"sqlite:///{tmp_path / 'nope.db'}"])
    assert result.exit_code == 1 and "does not exist" in " ".join(result.output.split())
    assert "app" not in captured


def test_serve_says_what_newest_sorts_by(captured: dict[str, Any], tmp_path: Path) -> None:
    from tests.stores.tables import bare_table, connect

    def serve(url: str, *args: str) -> tuple[int, str]:
        result = runner.invoke(cli, ["serve", "--db", url, *args], env={"COLUMNS": "250"})
        return result.exit_code, " ".join(result.output.split())

    made = f"sqlite:///{tmp_path / 'made.db'}"
    pixelgrade_table(made, ["a.jpg"])
    code, printed = serve(made)
    assert code == 0 and 'Sort: "Newest" is by created_at, latest first.' in printed
    assert "no index starts with" not in printed  # init made one

    uuids = f"sqlite:///{tmp_path / 'uuids.db'}"
    bare_table(uuids, ["a.jpg"], uuid_ids=True)
    code, printed = serve(uuids)
    assert code == 0, printed
    assert ("the table has no created_at column, so the last sort lists images in key order, "
            "which says nothing about age with these keys; pass --created-column NAME") in printed
    with TestClient(captured["app"]) as client:
        page = client.get("/").text
        assert 'value="newest"' not in page  # not offered on UUID keys without a time
        assert "Key order" in client.get("/?sort=newest").text

    with connect(uuids) as conn:
        conn.exec_driver_sql("ALTER TABLE images ADD COLUMN added TEXT")
    code, printed = serve(uuids, "--created-column", "added")
    assert code == 0 and 'Sort: "Newest" is by added, latest first.' in printed
    assert "CREATE INDEX ON images (added, id)" in printed
    with TestClient(captured["app"]) as client:
        assert re.search(r'<option value="newest"[^>]*>Newest</option>', client.get("/").text)
    code, printed = serve(uuids, "--created-column", "made")
    assert code == 1 and "created column 'made' not found" in printed
