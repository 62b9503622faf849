"""``watch`` with real parts only: PostgreSQL databases and SQLite files, rows inserted by a
connection of the test's own, a real HTTP server for the images, real scoring processes, and
the LISTEN connection killed by the server.

"Scored exactly once" is counted by the database (an update-counting trigger, see
tests/stores/tables.py); what found each row (``notify``, ``poll``, ``sweep``, ``startup``) is
read from the watcher's JSON events.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from pixelgrade.stores import open_store
from pixelgrade.watch import Watcher, WatchLog
from pixelgrade.watch.listen import APPLICATION_NAME
from tests.backfill.conftest import ImageServer, png
from tests.stores import tables
from tests.watch.conftest import (
    FAST_HTTP,
    EventStream,
    done,
    insert,
    options,
    running,
    wait_for,
)

# -- PostgreSQL: LISTEN/NOTIFY ----------------------------------------------------------------


def test_postgres_rows_inserted_by_another_program_are_scored_once_each(
        pg_url: str, image_server: ImageServer, tmp_path: Path) -> None:
    """Rows that were there before are scored by the startup sweep; rows inserted while watch
    runs, by notification (there is no periodic sweep in this test), within seconds."""
    before = tables.pixelgrade_table(pg_url, [image_server.url("/good.jpg"),
                                              image_server.url("/good.png")])
    tables.count_updates(pg_url)
    with running(pg_url, tmp_path) as run:
        assert run.watcher.report.mode == "listen"
        assert done(pg_url, before)
        batch = insert(pg_url, 3, [image_server.url(p) for p in
                                   ("/good.webp", "/other.jpg", "/wrong-type.jpg")])
        single = insert(pg_url, 6, [image_server.url("/good.jpg")])
        single += insert(pg_url, 7, [image_server.url("/vector.svg")])
        new = batch + single
        wait_for(lambda: done(pg_url, new), "the new rows to be scored")
        report = run.watcher.report
    rows = tables.rows(pg_url)
    assert [rows[i]["quality_status"] for i in [*before, *new]] == ["scored"] * 6 + ["skipped"]
    assert all(0 <= rows[i]["quality_score"] <= 100 for i in [*before, *new][:6])
    assert tables.updates(pg_url) == {str(i): 1 for i in [*before, *new]}
    via = {key: event["via"] for key, event in run.events.rows().items()}
    assert via == {1: "startup", 2: "startup", **dict.fromkeys(new, "notify")}
    assert report.notifications == len(new) and report.scored == 6 and report.skipped == 1
    assert sum(image_server.hits.values()) == 7  # no image fetched twice


def test_postgres_rows_inserted_while_watch_was_down_are_found_at_start(
        pg_url: str, image_server: ImageServer, tmp_path: Path) -> None:
    tables.pixelgrade_table(pg_url, [])
    with running(pg_url, tmp_path):
        pass
    ids = insert(pg_url, 1, [image_server.url("/good.jpg"), image_server.url("/other.jpg")])
    with running(pg_url, tmp_path) as run:
        assert done(pg_url, ids)  # by the startup sweep, before ready
    assert {e["via"] for e in run.events.rows().values()} == {"startup"}


def test_postgres_a_missed_notification_is_caught_by_the_sweep(
        pg_url: str, image_server: ImageServer, tmp_path: Path) -> None:
    """A row inserted with the trigger disabled sends no notification; the periodic sweep
    scores it all the same."""
    tables.pixelgrade_table(pg_url, [])
    with running(pg_url, tmp_path, sweep_interval=0.3) as run:
        with tables.connect(pg_url) as conn:
            conn.exec_driver_sql("ALTER TABLE images DISABLE TRIGGER pixelgrade_notify")
            conn.execute(sa.text("INSERT INTO images (id, url) VALUES (1, :url)"),
                         {"url": image_server.url("/good.jpg")})
            conn.exec_driver_sql("ALTER TABLE images ENABLE TRIGGER pixelgrade_notify")
        wait_for(lambda: done(pg_url, [1]), "the sweep to score the row")
        assert run.watcher.report.notifications == 0
    assert run.events.rows()[1]["via"] == "sweep"


def test_postgres_listen_connection_killed_then_restored(
        pg_url: str, image_server: ImageServer, tmp_path: Path) -> None:
    """The server ends the LISTEN connection: watch reconnects, sweeps for what it may have
    missed meanwhile, and new rows are announced again."""
    tables.pixelgrade_table(pg_url, [])
    tables.count_updates(pg_url)
    with running(pg_url, tmp_path) as run:
        listener = run.watcher.listener
        assert listener is not None and listener.connected
        with tables.connect(pg_url) as conn:
            killed = conn.execute(sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :name AND datname = current_database()"),
                {"name": APPLICATION_NAME}).scalar_one()
        assert killed == 1
        # While it is away: found by the sweep that follows the reconnection (or announced,
        # if the reconnection came first).
        gap = insert(pg_url, 1, [image_server.url("/good.jpg")])
        wait_for(lambda: run.events.all("listen_restored"), "the LISTEN connection to return")
        after = insert(pg_url, 2, [image_server.url("/other.jpg")])
        wait_for(lambda: done(pg_url, gap + after), "rows inserted around the reconnection")
        assert listener.reconnects == 1
    assert run.events.all("listen_lost")
    assert run.events.rows()[2]["via"] == "notify"
    assert tables.updates(pg_url) == {"1": 1, "2": 1}
    assert run.watcher.report.reconnects == 1


def test_postgres_bad_images_are_recorded_and_watch_keeps_going(
        pg_url: str, image_server: ImageServer, tmp_path: Path) -> None:
    """A 404 is recorded as failed; a 500 stays NULL for a later sweep, and is not fetched again
    before its retry time however many sweeps run; the next good row is scored as usual."""
    tables.pixelgrade_table(pg_url, [])
    error_log = tmp_path / "errors.log"
    with running(pg_url, tmp_path, sweep_interval=0.1, retry_base=60.0) as run:
        bad = insert(pg_url, 1, [image_server.url("/missing.jpg"),
                                 image_server.url("/error.jpg"), image_server.url("/page.html")])
        wait_for(lambda: len(run.events.rows()) == 3, "the bad rows to be tried")
        sweeps = run.watcher.report.sweeps
        wait_for(lambda: run.watcher.report.sweeps >= sweeps + 5, "five more sweeps")
        good = insert(pg_url, 4, [image_server.url("/good.jpg")])
        wait_for(lambda: done(pg_url, good), "the next good row")
    rows = tables.rows(pg_url)
    assert [rows[i]["quality_status"] for i in bad] == ["failed", None, "failed"]
    assert rows[1]["quality_details"]["kind"] == "http_404"
    assert rows[2]["quality_score"] is None and rows[4]["quality_status"] == "scored"
    assert image_server.hits["/error.jpg"] == FAST_HTTP.retries + 1  # one try, not one a sweep
    events = run.events.rows()
    assert events[2]["event"] == "retry" and events[2]["retry_in"] == 60.0
    log = [json.loads(line) for line in error_log.read_text().splitlines()]
    assert [(r["id"], r["kind"], r["transient"], r["attempt"]) for r in log] == [
        (1, "http_404", False, 1), (2, "http_500", True, 1), (3, "decode", False, 1)]


def test_postgres_a_row_announced_while_a_sweep_runs_is_scored_once(
        pg_url: str, image_server: ImageServer, tmp_path: Path) -> None:
    """The download takes a second; sweeps every 0.1 s see the row without a score all that
    time, and must leave it to the notification that claimed it (or the other way round)."""
    image_server.delay = 1.0
    tables.pixelgrade_table(pg_url, [])
    tables.count_updates(pg_url)
    with running(pg_url, tmp_path, sweep_interval=0.1) as run:
        insert(pg_url, 1, [image_server.url("/delay/one.jpg")])
        wait_for(lambda: done(pg_url, [1]), "the slow row")
        sweeps = run.watcher.report.sweeps
    assert image_server.hits["/delay/one.jpg"] == 1
    assert tables.updates(pg_url) == {"1": 1}
    assert sweeps > 3  # the sweeps did run meanwhile


def test_postgres_without_the_trigger_polls_and_says_how_to_add_it(
        pg_url: str, image_server: ImageServer, tmp_path: Path) -> None:
    tables.bare_table(pg_url, [])  # the app's own table: score column, no trigger
    with running(pg_url, tmp_path) as run:
        assert run.watcher.report.mode == "poll" and run.watcher.listener is None
        insert(pg_url, 1, [image_server.url("/good.jpg")])
        wait_for(lambda: tables.rows(pg_url)[1]["quality_score"] is not None, "the poll")
    assert run.events.rows()[1]["via"] == "poll"
    assert "pixelgrade migrate" in run.events.all("hint")[0]["message"]


# -- SQLite: polling --------------------------------------------------------------------------


def test_sqlite_rows_inserted_by_another_connection_are_scored_by_polling(
        tmp_path: Path, image_server: ImageServer) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    (tmp_path / "photo.png").write_bytes(png("chelsea.png"))
    before = tables.pixelgrade_table(url, ["photo.png"])  # a path under --root
    tables.count_updates(url)
    with running(url, tmp_path) as run:
        assert run.watcher.report.mode == "poll" and done(url, before)
        first = insert(url, 2, [image_server.url("/good.jpg"), image_server.url("/missing.jpg")])
        wait_for(lambda: done(url, first), "the first inserts")
        second = insert(url, 4, [image_server.url("/other.jpg")])
        wait_for(lambda: done(url, second), "the second insert")
    rows = tables.rows(url)
    assert [rows[i]["quality_status"] for i in range(1, 5)] == [
        "scored", "scored", "failed", "scored"]
    assert tables.updates(url) == {str(i): 1 for i in range(1, 5)}
    assert {k: e["via"] for k, e in run.events.rows().items()} == {
        1: "startup", 2: "poll", 3: "poll", 4: "poll"}


def test_sqlite_uuid_keys_are_polled_in_full(tmp_path: Path, image_server: ImageServer
                                             ) -> None:
    """Random keys have no order to resume from: every poll reads all the rows still to do
    (and leaves those in flight alone)."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    existing = tables.bare_table(url, [image_server.url("/good.jpg")], uuid_ids=True)
    store = open_store(url, must_exist=True, inspect=False)
    store.migrate()
    store.close()
    with running(url, tmp_path) as run:
        assert run.watcher.ledger.poll_cursor() is None
        new = "00000000-0000-4000-8000-000000000000"  # sorts before the existing key
        with tables.connect(url) as conn:
            conn.execute(sa.text("INSERT INTO images (id, url) VALUES (:id, :url)"),
                         {"id": new, "url": image_server.url("/other.jpg")})
        wait_for(lambda: done(url, [new]), "the new row")
    assert done(url, existing)
    assert {k: e["via"] for k, e in run.events.rows().items()} == {
        existing[0]: "startup", new: "poll"}


def test_sqlite_a_transient_failure_is_retried_after_its_delay(
        tmp_path: Path, image_server: ImageServer) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    tables.pixelgrade_table(url, [])
    with running(url, tmp_path, sweep_interval=0.1, retry_base=0.5) as run:
        insert(url, 1, [image_server.url("/flaky.jpg")])
        wait_for(lambda: run.events.all("retry"), "the first, failed attempt")
        image_server.flaky_fails = False
        wait_for(lambda: done(url, [1]), "the retry")
    first, last = run.events.all("retry")[0], run.events.rows()[1]
    assert first["retry_in"] == 0.5 and first["attempt"] == 1
    assert last["event"] == "scored" and last["via"] == "sweep"
    assert tables.rows(url)[1]["quality_status"] == "scored"


@pytest.mark.parametrize("bad", [{"interval": 0}, {"sweep_interval": -1}, {"batch_size": 0}])
def test_bad_options_are_refused(bad: dict[str, float], tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        options(tmp_path, **bad)


class _KilledAfterCommit(Exception):
    """Stands for a SIGKILL arriving right after the batch's transaction committed."""


def test_a_failed_row_keeps_its_error_log_line_when_watch_dies_right_after_the_write(
        tmp_path: Path) -> None:
    """The error log is written before the batch (the engine's ``before_write``), so a watch
    that dies between the commit and anything after it still leaves the reason of a row it
    recorded as ``failed`` (written after the commit, the line was lost for good: a failed
    row is never tried again)."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    (tmp_path / "photo.png").write_bytes(png("chelsea.png"))
    tables.pixelgrade_table(url, ["photo.png", "missing.png"])  # paths under --root
    store = open_store(url)
    committed = store.write

    def write_then_die(*args: object, **kwargs: object) -> int:
        committed(*args, **kwargs)  # type: ignore[arg-type]
        raise _KilledAfterCommit

    store.write = write_then_die  # type: ignore[method-assign]
    watcher = Watcher(store, options(tmp_path, once=True), WatchLog(EventStream(), as_json=True))
    try:
        with pytest.raises(_KilledAfterCommit):
            watcher.run(install_signal_handlers=False)
    finally:
        store.close()
    rows = tables.rows(url)
    assert [rows[i]["quality_status"] for i in (1, 2)] == ["scored", "failed"]  # committed
    log = [json.loads(line) for line in (tmp_path / "errors.log").read_text().splitlines()]
    assert [(r["id"], r["kind"], r["transient"], r["attempt"]) for r in log] == [
        (2, "not_found", False, 1)]
