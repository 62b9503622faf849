"""Issue 7, part 2: the database fails under a running backfill.

* Sessions cut: while ``pixelgrade backfill`` runs (a subprocess), another connection
  terminates every other session of the database (``pg_terminate_backend``) several times.
* Server restart: a private PostgreSQL cluster (``db_cluster``) is restarted with
  ``pg_ctl restart -m fast`` mid-run.
* Server down longer than the retries last: the run stops cleanly with its checkpoint and an
  error without the password; ``--resume`` finishes once the server is back.
* Permanent errors (permission denied, a missing column): the run stops at the first failed
  write, with advice and without the password, and ``--resume`` finishes once it is fixed.
* The table lock (a PostgreSQL advisory lock) dies with its session: it is taken again, or the
  run stops if another run took it meanwhile.
* Which errors are transient, on errors raised by the real drivers; the engine's retry rule
  (doubling waits, transient errors only) on a collection that fails as told.

In the first two the run must either go on (reads and writes are retried with backoff on a
fresh connection) or stop cleanly with its checkpoint; then ``--resume`` finishes. Either way
nothing is lost and nothing is written twice (a trigger counts every UPDATE), and after each
fault the run holds its table lock again.
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from rich.console import Console

from pixelgrade.backfill import BackfillOptions, EngineOptions, run_backfill
from pixelgrade.backfill.progress import PlainProgress
from pixelgrade.errors import StoreError
from pixelgrade.stores import database_url, open_store
from tests.reliability.db_backfill import RUN_TIMEOUT, Backfills, kill
from tests.reliability.db_cluster import Cluster, private_cluster
from tests.reliability.db_library import Library, audit, make_library
from tests.reliability.report import record, sized
from tests.stores import tables

TERMINATIONS = 5


def _written(url: str) -> int:
    """Rows updated so far, on a connection of its own (NullPool: nothing survives a cut)."""
    engine = sa.create_engine(database_url(url), poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM row_updates")).scalar_one())
    except sa.exc.OperationalError:
        return -1  # the server is restarting
    finally:
        engine.dispose()


def _lock_held(url: str) -> bool:
    """Some session holds an advisory lock in this database (the backfill's table lock)."""
    engine = sa.create_engine(database_url(url), poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return bool(conn.execute(sa.text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
                "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )).scalar_one())
    finally:
        engine.dispose()


def _faulty_run(url: str, library: Library, work: Path, rows: int,
                fault: Callable[[], int], faults: int) -> dict[str, Any]:
    """Start a backfill, call ``fault`` each time another 1/(faults+1) of the rows is written,
    let it end, ``--resume`` until finished; returns figures, asserts the run's exits.

    After each fault, once the run has written two more batches, its table lock must be held
    again (the fault cut the session that held it)."""
    runs = Backfills(url, library, work)
    started = time.monotonic()
    process = runs.start(resume=False)
    done, cut, lock_checks, recheck_at = 0, 0, 0, None
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while process.poll() is None and (done < faults or recheck_at is not None):
            assert time.monotonic() < deadline, "the run made no progress"
            written = _written(url)
            if recheck_at is not None and written >= recheck_at:
                held = _lock_held(url)
                if process.poll() is None:  # (a run that just ended released it)
                    assert held, "the backfill goes on without its table lock"
                    lock_checks += 1
                recheck_at = None
            elif done < faults and written >= rows * (done + 1) // (faults + 1):
                cut += fault()
                done += 1
                recheck_at = written + 2 * runs.batch_size
            time.sleep(0.02)
        code = process.wait(timeout=RUN_TIMEOUT)
    finally:
        kill(process)
    output = runs.output()
    assert "Traceback" not in output, output
    first_report = runs.report()
    if code != 0:  # stopped cleanly: an error naming the checkpoint, and how to continue
        assert code == 1 and "--resume" in output and "checkpoint" in output, output
    resumes = 0
    while code != 0 or not (first_report or {}).get("finished"):
        resumes += 1
        assert resumes <= 3, f"still not finished after 3 resumes:\n{runs.output()}"
        code, first_report = runs.finish(resume=True)
        assert code == 0, runs.output()
    return {"faults": done, "sessions_cut": cut, "lock_checks": lock_checks, "resumes": resumes,
            "seconds": round(time.monotonic() - started, 1)}


def _check(url: str, library: Library) -> dict[str, int]:
    result = audit(url, library)
    assert not result.lost, f"rows never scored: {result.lost[:20]}"
    assert not result.overwritten, f"rows written twice: {result.overwritten[:20]}"
    assert not result.wrong, f"rows with the wrong result: {result.wrong[:20]}"
    assert result.updates == {n: 1 for n in library.expected}
    return {"lost": len(result.lost), "overwritten": len(result.overwritten)}


def test_sessions_terminated_mid_run(pg_url: str, tmp_path: Path) -> None:
    rows = sized(1000, 10000)
    library = make_library(pg_url, tmp_path / "library", rows)
    library.heal()  # only database faults here
    name = sa.make_url(pg_url).database
    admin = sa.create_engine(database_url(pg_url), isolation_level="AUTOCOMMIT")

    def terminate() -> int:
        with admin.connect() as conn:
            return len(conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name}).all())

    try:
        figures = _faulty_run(pg_url, library, tmp_path / "work", rows, terminate,
                              TERMINATIONS)
    finally:
        admin.dispose()
    figures |= _check(pg_url, library)
    assert figures["faults"] == TERMINATIONS, figures
    record("db_fault", kind="terminate_backend", backend="postgresql", rows=rows, **figures)
    print(figures)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """One private cluster for the tests that stop or restart the server."""
    with private_cluster() as started:
        yield started


def _database(cluster: Cluster, name: str) -> str:
    with sa.create_engine(cluster.url, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    return cluster.url.rsplit("/", 1)[0] + f"/{name}"


def test_server_restart_mid_run(cluster: Cluster, tmp_path: Path) -> None:
    rows = sized(1000, 10000)
    url = _database(cluster, "pixelgrade_restart")
    library = make_library(url, tmp_path / "library", rows)
    library.heal()

    def restart() -> int:
        cluster.restart()
        return 1

    figures = _faulty_run(url, library, tmp_path / "work", rows, restart, 1)
    figures |= _check(url, library)
    assert figures["faults"] == 1, figures
    record("db_fault", kind="restart", backend="postgresql", rows=rows, **figures)
    print(figures)


def test_server_down_longer_than_the_retries(cluster: Cluster, tmp_path: Path) -> None:
    """The server stops for longer than the retries last: the run stops cleanly with its
    checkpoint and an error that names the database without its password; once the server is
    back, ``--resume`` finishes. In-process, with short waits between attempts (the command's
    1 + 2 + 4 s would only slow the test down)."""
    rows = sized(1000, 10000)
    url = _database(cluster, "pixelgrade_outage")
    library = make_library(url, tmp_path / "library", rows)
    library.heal()
    # Trust authentication ignores the password; it is there to be kept out of messages.
    store = open_store(url.replace("postgres@", "postgres:pw-s3cret@"))
    options = BackfillOptions(
        engine=EngineOptions(batch_size=50, write_backoff=0.2), workers=1,
        checkpoint=tmp_path / "checkpoint.json", error_log=tmp_path / "errors.log",
        root=library.root)
    console = Console(file=io.StringIO(), width=200)
    failures: list[BaseException] = []

    def backfill() -> None:
        try:
            run_backfill(store, options, console, PlainProgress(console),
                         install_signal_handlers=False)
        except BaseException as exc:
            failures.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=backfill, name="backfill", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while _written(url) < rows // 3 and thread.is_alive():
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.02)
        cluster.pg_ctl("stop", "-m", "fast", "-w")
        stopped_at = time.monotonic()
        thread.join(timeout=RUN_TIMEOUT)
        waited = time.monotonic() - stopped_at
    finally:
        cluster.start()
    assert not thread.is_alive()
    assert len(failures) == 1 and isinstance(failures[0], StoreError), failures
    message = str(failures[0])
    assert "pw-s3cret" not in message and "postgres:***@" in message, message
    assert "checkpoint" in message and "--resume" in message, message
    said = console.file.getvalue()  # type: ignore[attr-defined]
    assert "trying again in 0.2 s (attempt 2 of 4)" in said and "pw-s3cret" not in said, said
    saved = json.loads(options.checkpoint.read_text())
    assert not saved["finished"] and saved["cursor"] is not None
    try:
        resumed = run_backfill(store, replace(options, resume=True), console,
                               PlainProgress(console), install_signal_handlers=False)
    finally:
        store.close()
    assert resumed.finished and resumed.resumed_from == saved["cursor"]
    figures = _check(url, library)
    record("db_fault", kind="outage", backend="postgresql", rows=rows,
           seconds_until_clean_stop=round(waited, 1), resumes=1,
           seconds=round(time.monotonic() - started, 1), **figures)
    print(f"stopped cleanly {waited:.1f} s after the server went down: {message}")


# -- permanent errors -------------------------------------------------------------------------


def _refuse_writes(url: str) -> tuple[str, Callable[[], None], str, Callable[[], None]]:
    """Make writes fail for good. PostgreSQL: the backfill connects as a role that may only
    read (permission denied); SQLite: a trigger reads a column that does not exist. Returns the
    URL to run with, the fix, the advice expected in the message and a clean-up."""
    if not tables.is_postgres(url):
        with tables.connect(url) as conn:
            conn.exec_driver_sql("CREATE TRIGGER broken BEFORE UPDATE ON images "
                                 "BEGIN SELECT no_such_column FROM images; END")

        def fix() -> None:
            with tables.connect(url) as conn:
                conn.exec_driver_sql("DROP TRIGGER broken")
        return url, fix, "is missing", lambda: None
    role = f"reader_{uuid.uuid4().hex[:8]}"
    with tables.connect(url) as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD 's3cret-pw'")
        conn.exec_driver_sql(f"GRANT SELECT ON images TO {role}")

    def fix() -> None:
        with tables.connect(url) as conn:
            conn.exec_driver_sql(f"GRANT UPDATE ON images TO {role}")
            conn.exec_driver_sql(f"GRANT INSERT ON row_updates TO {role}")
    def drop() -> None:
        with tables.connect(url) as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")

    reader = sa.make_url(url).set(username=role, password="s3cret-pw")
    return (reader.render_as_string(hide_password=False), fix,
            f"GRANT SELECT, UPDATE ON images TO {role}", drop)


def test_a_permanent_error_stops_at_once_with_advice(db_url: str, tmp_path: Path) -> None:
    library = make_library(db_url, tmp_path / "library", 300)
    library.heal()
    url, fix, advice, clean_up = _refuse_writes(db_url)
    options = BackfillOptions(
        engine=EngineOptions(batch_size=50, write_backoff=0.05), workers=1,
        checkpoint=tmp_path / "checkpoint.json", error_log=tmp_path / "errors.log",
        root=library.root)
    store = open_store(url)
    writes: list[int] = []
    write = store.write
    store.write = lambda selection, outcomes: (writes.append(len(outcomes)),  # type: ignore
                                               write(selection, outcomes))[1]
    console = Console(file=io.StringIO(), width=200)
    try:
        with pytest.raises(StoreError) as failure:
            run_backfill(store, options, console, PlainProgress(console),
                         install_signal_handlers=False)
        message = str(failure.value)
        assert advice in message and "--resume" in message, message
        assert "s3cret-pw" not in message
        assert not failure.value.transient
        assert len(writes) == 1, writes  # not retried
        print(message)
        fix()
        resumed = run_backfill(store, replace(options, resume=True), console,
                               PlainProgress(console), install_signal_handlers=False)
    finally:
        store.close()
        clean_up()
    assert resumed.finished
    _check(db_url, library)
    record("db_fault", kind="permanent", backend="postgresql" if tables.is_postgres(db_url)
           else "sqlite", cause="permission denied" if tables.is_postgres(db_url)
           else "missing column", write_attempts=1, resumed=True)


# -- which errors are retried -----------------------------------------------------------------


def _raised(conn: sa.Connection, statement: str) -> sa.exc.SQLAlchemyError:
    try:
        conn.exec_driver_sql(statement)
    except sa.exc.SQLAlchemyError as exc:
        conn.rollback()
        return exc
    raise AssertionError(f"{statement} did not fail")


def test_real_errors_are_sorted_into_transient_and_permanent(db_url: str, tmp_path: Path
                                                             ) -> None:
    """Errors raised by the real drivers (not built by hand), sorted as sql_errors says."""
    from pixelgrade.stores.sql_errors import advice, is_transient

    tables.bare_table(db_url, ["a.png"])
    engine = sa.create_engine(database_url(db_url), connect_args={"timeout": 0.1}
                              if not tables.is_postgres(db_url) else {})
    try:
        with engine.connect() as conn:
            missing = _raised(conn, "UPDATE images SET no_such_column = 1")
            assert not is_transient(missing)
            assert "pixelgrade migrate" in advice(missing, "images", None)
            assert not is_transient(_raised(conn, "SELECT * FROM no_such_table"))
            if tables.is_postgres(db_url):
                for state, transient in (("40001", True), ("40P01", True), ("57P03", True),
                                         ("42501", False), ("22012", False)):
                    raised = _raised(conn, "DO $$ BEGIN RAISE EXCEPTION 'test' USING "
                                           f"ERRCODE = '{state}'; END $$")
                    assert is_transient(raised) is transient, state
                # A session cut from outside: 57P01 on its next statement.
                pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
                conn.rollback()
                with engine.connect() as other:
                    other.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
                    other.commit()
                assert is_transient(_raised(conn, "SELECT 1"))
            else:
                # Another connection holds the write lock past the busy timeout.
                with engine.connect() as other:
                    other.exec_driver_sql("BEGIN IMMEDIATE")
                    locked = _raised(conn, "UPDATE images SET quality_score = 1")
                    other.rollback()
                assert "database is locked" in str(locked) and is_transient(locked)
    finally:
        engine.dispose()


def test_a_lock_lost_with_its_session_is_taken_again_or_the_run_stops(pg_url: str) -> None:
    """The table lock dies with the session holding it; the holder takes it again before its
    next batch, or stops if another run took it meanwhile."""
    from pixelgrade.errors import BackfillLockedError
    from pixelgrade.stores import Selection

    tables.pixelgrade_table(pg_url, ["a.png", "b.png"])
    first, second = open_store(pg_url), open_store(pg_url)
    admin = sa.create_engine(database_url(pg_url), isolation_level="AUTOCOMMIT")

    def cut_every_session() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = current_database() AND pid <> "
                                 "pg_backend_pid()"))

    try:
        with first.lock():
            cut_every_session()
            assert len(first.fetch_todo(Selection(), None, 10)) == 2  # reconnects, relocks
            with (pytest.raises(BackfillLockedError, match="another backfill is running"),
                  second.lock()):
                pass
            cut_every_session()
            # The lock is free until ``first`` reads again: ``second`` takes it.
            with (second.lock(),
                  pytest.raises(StoreError, match="lost when its database session was cut")):
                first.fetch_todo(Selection(), None, 10)
    finally:
        first.close()
        second.close()
        admin.dispose()


# -- the engine's retry rule --------------------------------------------------------------------


class _Flaky:
    """A collection of 1..10 whose reads and writes fail as told (``fail[call]`` = how many
    more times that call fails, ``transient`` whether the failures are transient)."""

    def __init__(self, fail: dict[str, int], transient: bool) -> None:
        self.fail = dict(fail)
        self.transient = transient
        self.calls: list[str] = []
        self.written: list[int] = []

    def _maybe_fail(self, call: str) -> None:
        self.calls.append(call)
        if self.fail.get(call, 0) > 0:
            self.fail[call] -= 1
            raise StoreError(f"{call} failed (test)", transient=self.transient)

    def next_batch(self, after: Any, limit: int) -> list[int]:
        self._maybe_fail("read")
        start = 0 if after is None else after
        return list(range(start + 1, min(start + limit, 10) + 1))

    def key(self, item: int) -> int:
        return item

    def write(self, results: Any) -> int:
        self._maybe_fail("write")
        self.written.extend(results)
        return len(results)


def _engine_run(collection: _Flaky) -> tuple[Any, list[float]]:
    import asyncio

    from pixelgrade.backfill.engine import Engine

    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    async def process(item: int) -> int:
        return item

    engine = Engine(collection, process, EngineOptions(batch_size=5, write_backoff=0.5),
                    sleep=sleep)
    return asyncio.run(engine.run()), pauses


def test_transient_read_and_write_failures_are_retried_with_backoff() -> None:
    collection = _Flaky({"read": 2, "write": 3}, transient=True)
    summary, pauses = _engine_run(collection)
    assert summary.exhausted and collection.written == list(range(1, 11))
    assert sorted(pauses) == [0.5, 0.5, 1.0, 1.0, 2.0]  # reads: 0.5, 1; writes: 0.5, 1, 2


def test_permanent_failures_are_not_retried() -> None:
    for call in ("read", "write"):
        collection = _Flaky({call: 1}, transient=False)
        with pytest.raises(StoreError, match=f"{call} failed"):
            _engine_run(collection)
        assert collection.calls.count(call) == 1 and collection.written == []


def test_a_transient_failure_that_lasts_stops_the_run_after_the_attempts() -> None:
    collection = _Flaky({"write": 10}, transient=True)
    with pytest.raises(StoreError, match="write failed"):
        _engine_run(collection)
    assert collection.calls.count("write") == EngineOptions().write_attempts
