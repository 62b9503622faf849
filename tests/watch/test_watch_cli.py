"""``pixelgrade watch`` as people run it: a subprocess stopped with Ctrl-C, ``--once`` for
cron, and the trigger that ``migrate`` installs on PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from typer.testing import CliRunner

from pixelgrade.cli import app
from pixelgrade.stores import SqlStore, TableSpec
from tests.backfill.conftest import ImageServer
from tests.stores import tables
from tests.watch.conftest import done, insert, wait_for

runner = CliRunner()
WIDE = {"COLUMNS": "250"}


def _libpq(url: str) -> str:
    return SqlStore(url, inspect=False).url.set(drivername="postgresql").render_as_string(
        hide_password=False)


def test_ctrl_c_stops_the_cli_cleanly(pg_url: str, image_server: ImageServer,
                                      tmp_path: Path) -> None:
    """The real thing: ``pixelgrade watch --json`` in a subprocess, a row inserted by another
    program scored while it runs, then SIGINT: it finishes and exits with code 0."""
    tables.pixelgrade_table(pg_url, [])
    args = ["watch", "--db", pg_url, "--json", "--workers", "1", "--allow-private-network",
            "--error-log", str(tmp_path / "errors.log")]
    process = subprocess.Popen([sys.executable, "-m", "pixelgrade", *args], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **WIDE})
    events: list[dict[str, Any]] = []
    reader = threading.Thread(target=lambda: events.extend(
        json.loads(line) for line in process.stdout or []), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any(e["event"] == "watching" for e in events) or
                 process.poll() is not None, "the watcher to start", timeout=60)
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        ids = insert(pg_url, 1, [image_server.url("/good.jpg")])
        wait_for(lambda: any(e["event"] == "scored" for e in events), "a scored line")
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=5)
    stderr = process.stderr.read() if process.stderr else ""
    assert process.returncode == 0, stderr
    assert done(pg_url, ids)
    kinds = [e["event"] for e in events]
    assert kinds[:3] == ["start", "sweep", "watching"] and kinds[-2:] == ["stopping", "stopped"]
    scored = next(e for e in events if e["event"] == "scored")
    assert scored["id"] == 1 and scored["via"] == "notify" and 0 <= scored["score"] <= 100
    assert events[-1]["scored"] == 1 and events[-1]["mode"] == "listen"
    assert "SIGINT" in events[-2]["message"]


def test_once_scores_what_is_there_and_exits(tmp_path: Path, image_server: ImageServer
                                             ) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    tables.pixelgrade_table(url, [image_server.url("/good.jpg"), image_server.url("/missing.jpg")])
    result = runner.invoke(app, ["watch", "--db", url, "--once", "--workers", "1",
                                 "--allow-host", "127.0.0.1",  # the image server
                                 "--error-log", str(tmp_path / "errors.log")], env=WIDE)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "scored  #1 " in lines[1] and lines[1].endswith("/good.jpg")
    assert "failed  #2 " in lines[2] and "http_404" in lines[2]
    assert "1 scored, 0 skipped, 1 failed" in lines[-1]
    assert done(url, [1, 2])


def test_bad_settings_are_reported(tmp_path: Path) -> None:
    result = runner.invoke(app, ["watch", "--db", f"sqlite:///{tmp_path / 'none.db'}"],
                           env=WIDE)
    assert result.exit_code == 1 and "does not exist" in result.output
    result = runner.invoke(app, ["watch", "--interval", "0"], env=WIDE)
    assert result.exit_code == 2


# -- the trigger ------------------------------------------------------------------------------


def test_migrate_installs_a_trigger_that_announces_new_rows(pg_url: str) -> None:
    tables.bare_table(pg_url, ["a.jpg"])
    printed = runner.invoke(app, ["migrate", "--db", pg_url, "--sql"], env=WIDE)
    assert printed.exit_code == 0, printed.output
    assert "CREATE TRIGGER pixelgrade_notify" in printed.stdout
    assert "pg_notify('pixelgrade_images', NEW.id::text)" in printed.stdout
    for _ in range(2):  # idempotent
        result = runner.invoke(app, ["migrate", "--db", pg_url], env=WIDE)
        assert result.exit_code == 0, result.output
    with tables.connect(pg_url) as conn:  # nobody listening: inserts work as before
        conn.execute(sa.text("INSERT INTO images (id, url) VALUES (10, 'z.jpg')"))

    with psycopg.connect(_libpq(pg_url), autocommit=True) as listen, \
            psycopg.connect(_libpq(pg_url), autocommit=True) as app_conn:
        listen.execute("LISTEN pixelgrade_images")
        app_conn.execute("INSERT INTO images (id, url) VALUES (2, 'b.jpg')")
        app_conn.execute("INSERT INTO images (id, url, quality_score) VALUES (3, 'c.jpg', 50)")
        app_conn.execute("UPDATE images SET url = 'a2.jpg' WHERE id = 1")  # still no score
        app_conn.execute("UPDATE images SET quality_score = 70 WHERE id = 2")
        with app_conn.transaction():
            app_conn.execute("INSERT INTO images (id, url) VALUES (4, 'd.jpg')")
            app_conn.execute("INSERT INTO images (id, url) VALUES (5, 'e.jpg')")
        try:
            with app_conn.transaction():
                app_conn.execute("INSERT INTO images (id, url) VALUES (6, 'f.jpg')")
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        got = [(n.channel, n.payload) for n in listen.notifies(timeout=0.5)]
    assert got == [("pixelgrade_images", key) for key in ("2", "1", "4", "5")]


def test_no_trigger_without_the_url_column(pg_url: str) -> None:
    """The trigger names the key and URL columns; when the table lacks one, migrate adds the
    score columns and leaves the trigger out (``watch`` refuses such a table anyway)."""
    tables.bare_table(pg_url, ["a.jpg"])
    store = SqlStore(pg_url, TableSpec(url_column="source"), inspect=False)
    try:
        statements = store.migration_sql()
    finally:
        store.close()
    assert statements and not [s for s in statements if "TRIGGER" in s]


def test_sqlite_has_no_notify_trigger(tmp_path: Path) -> None:
    """SQLite cannot announce rows (watch polls); it gets only the URL-change trigger."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    tables.bare_table(url, ["a.jpg"])
    printed = runner.invoke(app, ["migrate", "--db", url, "--sql"], env=WIDE)
    assert printed.exit_code == 0 and "notify" not in printed.stdout
    assert "CREATE TRIGGER pixelgrade_reopen_images" in printed.stdout
    store = SqlStore(url)
    try:
        assert store.notify_channel() is None
    finally:
        store.close()


def test_the_default_poll_interval_follows_the_backend(pg_url: str, tmp_path: Path) -> None:
    """A SQLite file is polled every 0.5 s (a poll costs nothing there), a server every 2 s,
    unless --interval says otherwise."""
    from pixelgrade.watch import poll_interval

    sqlite_url = f"sqlite:///{tmp_path / 'app.db'}"
    for url, expected in ((sqlite_url, 0.5), (pg_url, 2.0)):
        tables.pixelgrade_table(url, [])
        store = SqlStore(url)
        try:
            assert poll_interval(store) == expected
        finally:
            store.close()
    shown = runner.invoke(app, ["watch", "--help"], env=WIDE).output
    assert "Default: 0.5 on SQLite" in " ".join(shown.split())
