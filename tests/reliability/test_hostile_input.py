"""Hostile input (see :mod:`tests.reliability.hostile`) in the real scoring processes.

Each corpus file is scored by ``score_bytes`` in a worker of :func:`pixelgrade.pool.scoring_pool`
(the forkserver pool the backfill uses), with a timeout: none may crash its worker (a broken
pool) or stall it; each must get its status and a reason that names the cause; each worker's
peak resident memory (VmHWM from ``/proc``, reset before every file) is measured and must stay
under :data:`BOUND_MB`. Then the same files go through a backfill on SQLite, which must finish
with every row recorded.

Measured on the development machine (busy, shared): at most about 85 MB per worker for every
file except the complete 100 MP grey PNG (a 97 KB zlib bomb exactly at the default
``--max-pixels``), which peaks at 255-285 MB depending on the heap the worker kept from earlier
files: hence :data:`BOUND_MB` = 350. The worst case the default limits allow is an RGB PNG of
100 MP, measured separately (540-590 MB): that figure is what to plan a worker count with, or
lower ``--max-pixels``.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from pixelgrade.backfill import BackfillOptions, BackfillReport, EngineOptions, run_backfill
from pixelgrade.backfill.executors import LocalExecutor
from pixelgrade.backfill.images import ChunkScorer, ImageScorer, Locator, RowResult
from pixelgrade.backfill.progress import PlainProgress
from pixelgrade.backfill.work import WorkSettings
from pixelgrade.pool import scoring_pool
from pixelgrade.scoring import ScoringConfig
from pixelgrade.stores import Row, open_store
from tests import images
from tests.reliability import hostile
from tests.reliability.report import record
from tests.scoring.test_bad_inputs import assert_reads_well
from tests.stores import tables

#: Peak resident memory allowed per scoring process for any corpus file, MB (see above).
BOUND_MB = 350
#: Longest a single file may take in a worker before it counts as a stall.
STALL_SECONDS = 60.0

pytestmark = pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    with scoring_pool(1) as executor:
        yield executor


def _in_worker(pool: ProcessPoolExecutor, data: bytes
               ) -> tuple[str, dict[str, Any] | None, float, float]:
    """("ok" | "crashed" | "stalled", report, peak MB, seconds) for one file in the pool."""
    started = time.monotonic()
    future = pool.submit(hostile.score_measured, data, ScoringConfig())
    try:
        report, peak_kb = future.result(timeout=STALL_SECONDS)
    except BrokenProcessPool:
        return "crashed", None, 0.0, time.monotonic() - started
    except FutureTimeout:
        return "stalled", None, 0.0, time.monotonic() - started
    return "ok", report, peak_kb / 1024, time.monotonic() - started


def test_corpus_is_large_enough() -> None:
    assert len(hostile.CORPUS) >= 25
    assert len({item.name for item in hostile.CORPUS}) == len(hostile.CORPUS)


def test_no_hostile_file_crashes_stalls_or_bloats_a_worker(pool: ProcessPoolExecutor) -> None:
    pool.submit(abs, 0).result()  # start the worker outside the measurements
    problems: list[str] = []
    crashed = stalled = 0
    peaks: dict[str, float] = {}
    slowest = 0.0
    for item in hostile.CORPUS:
        data = hostile.corpus_bytes()[item.name]
        state, report, peak_mb, seconds = _in_worker(pool, data)
        slowest = max(slowest, seconds)
        if state != "ok":
            crashed += state == "crashed"
            stalled += state == "stalled"
            problems.append(f"{item.name}: the worker {state}")
            if state == "crashed":
                pytest.fail(f"{item.name} crashed its scoring process")
            continue
        assert report is not None
        peaks[item.name] = peak_mb
        if report["status"] != item.status:
            problems.append(f"{item.name}: {report['status']} ({report['reason']}), "
                            f"expected {item.status}")
            continue
        said = report["reason"] if item.status != "scored" else report["format"]
        missing = [w for w in item.says if w.lower() not in (said or "").lower()]
        if missing:
            problems.append(f"{item.name}: {said!r} does not say {missing}")
        if item.status != "scored":
            assert_reads_well(report["reason"])
        if peak_mb >= BOUND_MB:
            problems.append(f"{item.name}: peak {peak_mb:.0f} MB, over the {BOUND_MB} MB bound")
    assert not problems, "\n".join(problems)
    assert crashed == stalled == 0
    worst = max(peaks, key=peaks.__getitem__)
    record("hostile_input", files=len(hostile.CORPUS), crashed=crashed, stalled=stalled,
           scored=sum(i.status == "scored" for i in hostile.CORPUS),
           failed=sum(i.status == "failed" for i in hostile.CORPUS),
           skipped=sum(i.status == "skipped" for i in hostile.CORPUS),
           peak_worker_mb=round(peaks[worst], 1), peak_file=worst, bound_mb=BOUND_MB,
           slowest_seconds=round(slowest, 2))


def _rgb_png_of_zeros(side: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)  # 8-bit RGB
    packer = zlib.compressobj(9)
    row = bytes(3 * side + 1)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return (images.PNG_SIGNATURE + images.png_chunk(b"IHDR", ihdr)
            + images.png_chunk(b"IDAT", idat) + images.png_chunk(b"IEND", b""))


def test_worst_case_memory_at_the_default_pixel_limit(pool: ProcessPoolExecutor) -> None:
    """An RGB PNG of exactly 100 MP (the default --max-pixels): Pillow holds 4 bytes a pixel,
    the grey copy 1 more, and heap the worker kept from earlier files up to 1 more (measured:
    540-590 MB). The bound is that arithmetic plus the worker's own ~100 MB."""
    data = _rgb_png_of_zeros(10_000)
    state, report, peak_mb, seconds = _in_worker(pool, data)
    assert state == "ok" and report is not None
    assert report["status"] == "scored" and report["width"] == 10_000
    pixels_mb = 10_000 * 10_000 / 2**20
    bound_mb = 6 * pixels_mb + 100
    assert peak_mb < bound_mb, f"{peak_mb:.0f} MB"
    record("worst_case_memory", file_kb=len(data) // 1024, megapixels=100,
           peak_worker_mb=round(peak_mb, 1), bound_mb=round(bound_mb),
           seconds=round(seconds, 2))


def test_a_backfill_over_the_corpus_goes_on(tmp_path: Path) -> None:
    """The corpus as local files in a SQLite table: the run finishes and every row ends with
    the corpus' status (a failed row's reason in the table and the error log)."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    for item in hostile.CORPUS:
        (folder / f"{item.name}.bin").write_bytes(hostile.corpus_bytes()[item.name])
    db = f"sqlite:///{tmp_path / 'hostile.db'}"
    ids = tables.pixelgrade_table(db, [f"uploads/{item.name}.bin" for item in hostile.CORPUS])
    options = BackfillOptions(engine=EngineOptions(batch_size=8, write_backoff=0.05),
                              workers=2, concurrency=4, checkpoint=tmp_path / "checkpoint.json",
                              error_log=tmp_path / "errors.log", root=tmp_path)
    started = time.monotonic()
    report = _backfill_or_hang(db, options, hard_timeout=120.0)
    seconds = time.monotonic() - started

    assert report.finished and report.processed == len(hostile.CORPUS)
    assert report.retry_later == 0
    rows = tables.rows(db)
    log = {r["id"]: r for r in map(json.loads, options.error_log.read_text().splitlines())}
    for row_id, item in zip(ids, hostile.CORPUS, strict=True):
        row = rows[row_id]
        assert row["quality_status"] == item.status, (item.name, row["quality_details"])
        if item.status == "failed":
            assert log[row_id]["kind"] not in ("worker_crash",), item.name
            assert row["quality_details"]["reason"] == log[row_id]["message"]
    record("hostile_backfill", rows=len(ids), scored=report.scored, failed=report.failed,
           skipped=report.skipped, retry_later=report.retry_later, worker_crashes=0,
           seconds=round(seconds, 1))


def _backfill_or_hang(db: str, options: BackfillOptions, *, hard_timeout: float
                      ) -> BackfillReport:
    """``run_backfill`` in a thread; fails the test if it is still running after
    ``hard_timeout`` seconds instead of freezing the suite."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        store = open_store(db)
        console = Console(file=io.StringIO(), width=200)
        try:
            outcome["report"] = run_backfill(store, options, console, PlainProgress(console),
                                             install_signal_handlers=False)
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc
        finally:
            store.close()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(hard_timeout)
    assert not thread.is_alive(), f"the backfill hung: still running after {hard_timeout:g} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["report"]


def test_a_stuck_decoder_is_stopped_and_the_run_goes_on(tmp_path: Path) -> None:
    """The backfill's workers: an image whose scoring never ends (a decoder looping on hostile
    bytes, stood in by :func:`hostile.score_chunk_or_stall`, which makes ``score_bytes`` loop
    on a marked file inside the real ``score_chunk``) gets its process stopped by the worker's
    own watchdog after ``score_timeout``; the chunk is split, the row tried alone, stopped
    again and recorded ``scoring_timeout``; the images beside it are scored."""
    good = images.jpeg()
    names = ["a.jpg", "b.jpg", "stalls.jpg", "c.jpg", "d.jpg"]
    for name in names:
        data = hostile.STALL_BYTES + good if name == "stalls.jpg" else good
        (tmp_path / name).write_bytes(data)
    rows = [Row(i, name) for i, name in enumerate(names)]
    timeout = 3.0

    async def run() -> list[RowResult]:
        executor = LocalExecutor(1)
        try:
            scorer = ChunkScorer(executor, WorkSettings(score_timeout=timeout),
                                 Locator(root=tmp_path), chunk_size=3,
                                 task=hostile.score_chunk_or_stall)
            results = await asyncio.wait_for(asyncio.gather(*(scorer(row) for row in rows)),
                                             60)
            await scorer.aclose()
            return list(results)
        finally:
            executor.close()

    started = time.monotonic()
    results = asyncio.run(run())
    seconds = time.monotonic() - started
    by_id = {result.row.id: result for result in results}
    stalled = by_id[2]
    assert stalled.outcome is not None and stalled.outcome.status == "failed"
    assert stalled.failure is not None and stalled.failure.kind == "scoring_timeout"
    assert "longer than 3 s" in stalled.failure.message
    for i in (0, 1, 3, 4):
        outcome = by_id[i].outcome
        assert outcome is not None and outcome.status == "scored", by_id[i]
    # Once in its chunk, once alone: two timeouts, plus process start-ups.
    assert seconds < 2 * timeout + 30, f"{seconds:.1f} s"
    record("stuck_decoder", rows=len(rows), stuck=1, stopped_after_seconds=timeout,
           others_scored=4, seconds=round(seconds, 1))


def test_a_stuck_decoder_in_watch_or_the_gallery_is_stopped(tmp_path: Path) -> None:
    """``watch`` and the gallery score one image per task (:class:`ImageScorer`): a task not
    back within ``score_timeout`` gets the pool's processes stopped, and the image is tried
    alone, timed out again and recorded ``scoring_timeout``; the others are scored."""

    class StallingScorer(ImageScorer):
        score_path_function = staticmethod(hostile.score_path_or_stall)

    good = images.jpeg()
    names = ["a.jpg", f"{hostile.STALL_MARK}.jpg", "b.jpg"]
    for name in names:
        (tmp_path / name).write_bytes(good)
    rows = [Row(i, name) for i, name in enumerate(names)]

    async def run() -> list[RowResult]:
        with scoring_pool(2) as pool:
            scorer = StallingScorer(pool, 2, ScoringConfig(), None, Locator(root=tmp_path),
                                    score_timeout=5.0)
            try:
                return list(await asyncio.wait_for(
                    asyncio.gather(*(scorer(row) for row in rows)), 60))
            finally:
                scorer.close()

    by_id = {result.row.id: result for result in asyncio.run(run())}
    stalled = by_id[1]
    assert stalled.failure is not None and stalled.failure.kind == "scoring_timeout"
    for i in (0, 2):
        outcome = by_id[i].outcome
        assert outcome is not None and outcome.status == "scored", by_id[i]

