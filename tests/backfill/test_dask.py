"""The Dask executors with real processes: a ``distributed.LocalCluster`` of worker processes,
a real PostgreSQL database, a real HTTP server (conftest.py), a real SIGKILL.

* a worker killed mid-run loses nothing: every row scored exactly once (counted by a database
  trigger), with the scores the local executor gives;
* a chunk that keeps killing its workers (``KilledWorker``) is split, and only the row that
  kills is recorded ``worker_crash``;
* ``pixelgrade backfill --executor dask-local`` through the CLI; an unreachable ``--scheduler``
  is a clean error with exit code 1.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import dask
import pytest
from distributed import LocalCluster
from rich.console import Console

from pixelgrade.backfill import BackfillOptions, EngineOptions, run_backfill
from pixelgrade.backfill.executors_dask import DaskExecutor
from pixelgrade.backfill.images import ChunkScorer, Locator, RowResult
from pixelgrade.backfill.progress import PlainProgress, Tally
from pixelgrade.backfill.work import Credentials, WorkSettings
from pixelgrade.stores import Row, open_store
from tests.backfill.conftest import ImageServer, jpeg
from tests.backfill.crashy import score_chunk_or_die
from tests.backfill.test_backfill import FAST_HTTP, _cli
from tests.reliability.report import record, sized
from tests.stores import tables

#: Small photos served by the test server (about 10 ms each to score).
IMAGES = ["/good.jpg", "/good.png", "/good.webp", "/other.jpg", "/wrong-type.jpg"]


def _options(tmp_path: Path, executor: str, *, batch_size: int = 20, workers: int = 2
             ) -> BackfillOptions:
    return BackfillOptions(engine=EngineOptions(batch_size=batch_size, write_backoff=0.05),
                           workers=workers, concurrency=8, executor=executor, chunk_size=4,
                           checkpoint=tmp_path / f"{executor}-checkpoint.json",
                           error_log=tmp_path / f"{executor}-errors.log", http=FAST_HTTP)


def _spawned_workers() -> list[int]:
    """Pids of this process's children started by multiprocessing's spawn (the LocalCluster's
    worker processes), from /proc."""
    me = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                parent = handle.read().rsplit(b")", 1)[1].split()[1].decode()
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read()
        except OSError:
            continue
        if parent == me and b"spawn_main" in command:
            found.append(int(entry))
    return found


class _KillAWorkerAfterFirstBatch(PlainProgress):
    """Once batch 1 is committed, SIGKILL one Dask worker process (with chunks in flight)."""

    killed: int | None = None

    def batch(self, tally: Tally, index: int, succeeded: int, failed: int,
              retry: int = 0) -> None:
        super().batch(tally, index, succeeded, failed, retry)
        if index == 1:
            workers = _spawned_workers()
            assert len(workers) == 2, workers
            self.killed = workers[0]
            os.kill(self.killed, signal.SIGKILL)


def _scores(url: str) -> dict[str, int]:
    """Score per URL, checking that each URL got the same score on every row."""
    found: dict[str, int] = {}
    for row in tables.rows(url).values():
        assert found.setdefault(row["url"], row["quality_score"]) == row["quality_score"]
    return found


def test_killing_a_dask_worker_mid_run_loses_nothing(pg_url: str, image_server: ImageServer,
                                                      tmp_path: Path) -> None:
    n = sized(240, 2000)
    locations = [image_server.url(IMAGES[i % len(IMAGES)]) for i in range(n)]
    ids = tables.pixelgrade_table(pg_url, locations)
    tables.count_updates(pg_url)
    output = Console(file=open(os.devnull, "w"), width=200)  # noqa: SIM115
    progress = _KillAWorkerAfterFirstBatch(output)

    started = time.monotonic()
    store = open_store(pg_url)
    try:
        report = run_backfill(store, _options(tmp_path, "dask-local"), output, progress,
                              install_signal_handlers=False)
    finally:
        store.close()
    seconds = time.monotonic() - started

    assert progress.killed is not None
    with pytest.raises(ProcessLookupError):
        os.kill(progress.killed, 0)  # it really is gone
    assert report.finished and not report.interrupted
    assert (report.processed, report.written, report.scored) == (n, n, n)
    assert (report.failed, report.retry_later, report.not_written_already_done) == (0, 0, 0)
    assert tables.updates(pg_url) == {str(i): 1 for i in ids}  # each row written once
    assert not (tmp_path / "dask-local-errors.log").exists() or not (
        tmp_path / "dask-local-errors.log").read_text().strip()

    # The same rows scored by the local executor get the same scores.
    local_db = f"sqlite:///{tmp_path / 'local.db'}"
    tables.pixelgrade_table(local_db, [image_server.url(name) for name in IMAGES])
    store = open_store(local_db)
    try:
        run_backfill(store, _options(tmp_path, "local"), output, PlainProgress(output),
                     install_signal_handlers=False)
    finally:
        store.close()
    assert _scores(pg_url) == _scores(local_db)
    record("dask_worker_killed", rows=n, workers=2, workers_killed=1, scored=report.scored,
           written_once=len(tables.updates(pg_url)), failed=report.failed,
           rows_lost=n - report.scored, seconds=round(seconds, 1))


def test_a_chunk_that_keeps_killing_workers_is_split(tmp_path: Path) -> None:
    names = ["a.jpg", "b.jpg", "crash.jpg", "c.jpg"]
    for name in names:
        (tmp_path / name).write_bytes(jpeg())
    rows = [Row(i, str(tmp_path / name)) for i, name in enumerate(names)]

    async def run() -> list[RowResult]:
        # A task is given up (KilledWorker) the first time a worker dies running it, not the
        # fourth: each death costs a worker restart, seconds on a busy machine.
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            executor = await DaskExecutor.local_cluster(2)
        scorer = ChunkScorer(executor, WorkSettings(), Locator(root=tmp_path), chunk_size=4,
                             task=score_chunk_or_die)
        try:
            return list(await asyncio.gather(*(scorer(row) for row in rows)))
        finally:
            await scorer.aclose()
            await executor.aclose()

    results = asyncio.run(run())
    by_name = {Path(result.row.location or "").name: result for result in results}
    crashed = by_name["crash.jpg"]
    assert crashed.failure is not None and crashed.failure.kind == "worker_crash"
    assert crashed.outcome is not None and crashed.outcome.status == "failed"
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        outcome = by_name[name].outcome
        assert outcome is not None and outcome.status == "scored", by_name[name]


def test_dask_local_through_the_cli(tmp_path: Path) -> None:
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (tmp_path / name).write_bytes(jpeg())
    db = f"sqlite:///{tmp_path / 'library.db'}"
    ids = tables.pixelgrade_table(db, ["a.jpg", "b.jpg", "c.jpg", "missing.jpg"])

    result = _cli("backfill", "--db", db, "--executor", "dask-local", "--workers", "2",
                  "--checkpoint", str(tmp_path / "checkpoint.json"),
                  "--error-log", str(tmp_path / "errors.log"))

    assert result.exit_code == 0, result.output
    assert "Fetching and scoring on a Dask LocalCluster, 2 worker threads" in result.output
    assert "4 images" in result.output and "3 scored" in result.output
    rows = tables.rows(db)
    assert [rows[i]["quality_status"] for i in ids] == ["scored"] * 3 + ["failed"]
    assert rows[ids[3]]["quality_details"]["kind"] == "not_found"


def test_an_existing_cluster_through_the_cli(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(jpeg())
    db = f"sqlite:///{tmp_path / 'library.db'}"
    ids = tables.pixelgrade_table(db, ["a.jpg", "a.jpg", "gone.jpg"])
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        dry = _cli("backfill", "--db", db, "--executor", "dask", "--scheduler", address,
                   "--dry-run")
        result = _cli("backfill", "--db", db, "--executor", "dask", "--scheduler", address,
                      "--checkpoint", str(tmp_path / "checkpoint.json"),
                      "--error-log", str(tmp_path / "errors.log"))

    assert dry.exit_code == 0, dry.output
    assert "Found 3 images without quality scores" in dry.output
    assert result.exit_code == 0, result.output
    assert f"Fetching and scoring on the Dask scheduler at {address}, 1 worker thread" in (
        " ".join(result.output.split()))
    rows = tables.rows(db)
    assert [rows[i]["quality_status"] for i in ids] == ["scored", "scored", "failed"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_scheduler_is_a_clean_error(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'library.db'}"
    tables.pixelgrade_table(db, ["a.jpg"])
    address = f"tcp://127.0.0.1:{_free_port()}"

    result = _cli("backfill", "--db", db, "--executor", "dask", "--scheduler", address,
                  "--checkpoint", str(tmp_path / "checkpoint.json"))

    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert f"cannot reach the Dask scheduler at {address}" in text
    assert "--executor dask-local" in text
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert tables.rows(db)[1]["quality_status"] is None

    missing = _cli("backfill", "--db", db, "--executor", "dask")
    assert missing.exit_code == 1 and "needs --scheduler" in " ".join(missing.output.split())


def test_storage_credentials_never_show_in_a_repr() -> None:
    settings = WorkSettings(credentials=Credentials(
        {"https://project.supabase.co": {"apikey": "s3cret-key"}}))
    assert "s3cret-key" not in repr(settings)
    assert "s3cret-key" not in str(settings.credentials)
    import pickle

    copy = pickle.loads(pickle.dumps(settings))  # how they reach the workers
    assert copy.credentials.headers == {"https://project.supabase.co": {"apikey": "s3cret-key"}}


def test_without_dask_installed_the_error_says_how_to_install_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    monkeypatch.delitem(sys.modules, "pixelgrade.backfill.executors_dask")
    db = f"sqlite:///{tmp_path / 'library.db'}"
    tables.pixelgrade_table(db, ["a.jpg"])

    result = _cli("backfill", "--db", db, "--executor", "dask-local")

    assert result.exit_code == 1, result.output
    assert "pip install 'pixelgrade[dask]'" in " ".join(result.output.split())
