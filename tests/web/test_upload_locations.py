"""What an upload records is what ``watch`` and ``backfill`` find again, wherever they start:
a path relative to the root (with the same ``--root``), or with ``serve --uploads-url`` the
URL the uploads folder is published at. Never the server's absolute path, which breaks as
soon as the folder is seen from another place (another machine's mount, a moved folder).

Each test starts a real ``pixelgrade serve`` command (uvicorn stubbed out, the app driven by
TestClient), uploads a photo, then runs the other commands from ANOTHER working directory,
on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import functools
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from pixelgrade.cli import app as cli
from tests.backfill.conftest import jpeg
from tests.stores import tables

runner = CliRunner()
TOKEN = "upload-token-51e0"
WIDE = {"COLUMNS": "250"}


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``uvicorn.run`` replaced: the app ``serve`` would run lands here."""
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(app=app))
    for name in ("DATABASE_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIXELGRADE_API_TOKEN", TOKEN)
    return seen


def _library(db_url: str, site: Path) -> str:
    """The images table; a SQLite database lives in ``site`` (so its folder is the root)."""
    site.mkdir()
    if not tables.is_postgres(db_url):
        db_url = f"sqlite:///{site / 'library.db'}"
    tables.pixelgrade_table(db_url, [])
    return db_url


def _serve_and_upload(started: dict[str, Any], db_url: str, *args: str
                      ) -> tuple[dict[str, Any], str]:
    """Run ``serve`` (from the current directory), upload a photo; (the upload's answer,
    what serve printed)."""
    result = runner.invoke(cli, ["serve", "--db", db_url, "--workers", "1", *args], env=WIDE)
    assert result.exit_code == 0, result.output
    seen = started
    with TestClient(seen["app"]) as client:
        answer = client.post("/api/images", headers={"Authorization": f"Bearer {TOKEN}"},
                             files={"file": ("photo.jpg", jpeg(), "image/jpeg")})
        assert answer.status_code == 201, answer.text
        image = answer.json()
        if args and args[0] == "--uploads-url":  # the gallery shows it from where it is
            thumb = client.get(image["thumbnail"])
            assert thumb.headers["content-type"] == "image/jpeg", thumb.headers
    return image, " ".join(result.output.split())


def _forget_score(db_url: str, key: Any) -> None:
    """The row as a watcher finds it when it wins the race with the upload's own write."""
    with tables.connect(db_url) as conn:
        conn.execute(sa.text("UPDATE images SET quality_score = NULL, quality_status = NULL, "
                             "quality_details = NULL WHERE id = :id"), {"id": key})


def _row(db_url: str, key: Any) -> dict[str, Any]:
    return tables.rows(db_url)[key]


def test_an_upload_is_found_by_watch_and_backfill_started_elsewhere(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        started: dict[str, Any]) -> None:
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    db_url = _library(db_url, site)
    elsewhere.mkdir()
    monkeypatch.chdir(site)  # serve started in the site folder, without --root
    image, printed = _serve_and_upload(started, db_url)
    stored = _row(db_url, image["id"])["url"]
    assert re.fullmatch(r"uploads/[0-9a-f]{32}\.jpg", stored), stored
    assert (site / stored).is_file()
    assert f"recorded as paths relative to {site.resolve()}" in printed
    if tables.is_postgres(db_url):  # the root is the working directory: say what to pass
        assert f"with --root {site.resolve()} (from any folder)" in printed
    else:
        assert "where watch and backfill look by default" in printed

    # watch, started in another folder with the same --root, reads the upload.
    _forget_score(db_url, image["id"])
    monkeypatch.chdir(elsewhere)
    watched = runner.invoke(cli, ["watch", "--db", db_url, "--once", "--workers", "1",
                                  "--root", str(site), "--poll"], env=WIDE)
    assert watched.exit_code == 0, watched.output
    row = _row(db_url, image["id"])
    assert (row["quality_status"], row["quality_score"]) == ("scored", image["score"]), (
        watched.output)

    # The folder moves (or is mounted elsewhere on the machine that runs backfill): the row
    # still leads to the file under the new --root; an absolute path would be outside it.
    moved = tmp_path / "moved-site"
    site.rename(moved)
    if not tables.is_postgres(db_url):
        db_url = f"sqlite:///{moved / 'library.db'}"
    _forget_score(db_url, image["id"])
    filled = runner.invoke(cli, ["backfill", "--db", db_url, "--workers", "1",
                                 "--root", str(moved)], env=WIDE)
    assert filled.exit_code == 0, filled.output
    row = _row(db_url, image["id"])
    assert (row["quality_status"], row["quality_score"]) == ("scored", image["score"]), (
        row, filled.output)


@pytest.fixture
def published(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A web server publishing a folder (the "CDN" of the uploads): (folder, its URL)."""
    folder = tmp_path / "site" / "uploads"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))

    class Quiet(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            pass

    server = Quiet(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *args: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_uploads_url_records_the_published_address(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        started: dict[str, Any], published: tuple[Path, str]) -> None:
    folder, base = published
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    db_url = _library(db_url, site)
    elsewhere.mkdir()
    monkeypatch.chdir(site)
    template = f"{base}/{{path}}"
    image, printed = _serve_and_upload(started, db_url, "--uploads-url", template,
                                       "--uploads", str(folder))
    stored = _row(db_url, image["id"])["url"]
    assert re.fullmatch(re.escape(base) + r"/[0-9a-f]{32}\.jpg", stored), stored
    assert image["location"] == stored
    assert f"Uploads are recorded as {template} URLs" in printed

    _forget_score(db_url, image["id"])
    monkeypatch.chdir(elsewhere)
    watched = runner.invoke(cli, ["watch", "--db", db_url, "--once", "--workers", "1",
                                  "--poll", "--allow-host", "127.0.0.1"], env=WIDE)
    assert watched.exit_code == 0, watched.output
    row = _row(db_url, image["id"])
    assert (row["quality_status"], row["quality_score"]) == ("scored", image["score"]), (
        watched.output)


@pytest.mark.parametrize(("value", "problem"), [
    ("https://cdn.example.com/uploads/", "needs {path}"),
    ("https://{path}.example.com/", "needs {path}"),
    ("ftp://cdn.example.com/{path}", "not an http(s) URL"),
    ("cdn.example.com/{path}", "not an http(s) URL"),
])
def test_a_bad_uploads_url_is_refused(value: str, problem: str, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch,
                                      started: dict[str, Any]) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'library.db'}"
    tables.pixelgrade_table(url, [])
    result = runner.invoke(cli, ["serve", "--db", url, "--uploads-url", value], env=WIDE)
    assert result.exit_code == 1 and problem in " ".join(result.output.split())
    assert "app" not in started
