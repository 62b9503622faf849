"""A scoring process that dies on one image fails that image only; the run goes on.

Both scorers: :class:`ImageScorer` (``watch``, the gallery: one image per task) and
:class:`ChunkScorer` (the backfill: chunks of rows fetched and scored by the workers), whose
crashed chunk is split and each row retried alone in a fresh process.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pixelgrade import samples
from pixelgrade.backfill.executors import LocalExecutor
from pixelgrade.backfill.images import ChunkScorer, ImageScorer, Locator, RowResult
from pixelgrade.backfill.work import WorkSettings
from pixelgrade.pool import scoring_pool
from pixelgrade.scoring import ScoringConfig
from pixelgrade.stores import Row
from tests.backfill.crashy import score_chunk_or_die, score_path_or_die

NAMES = ["a.jpg", "b.jpg", "crash.jpg", "c.jpg", "d.jpg", "e.jpg"]


class CrashyScorer(ImageScorer):
    score_path_function = staticmethod(score_path_or_die)


def _rows(folder: Path) -> list[Row]:
    good = samples.encode(samples.load_photo("coffee.png"), "JPEG", quality=90)
    for name in NAMES:
        (folder / name).write_bytes(good)
    return [Row(i, str(folder / name)) for i, name in enumerate(NAMES)]


def _check(results: list[RowResult]) -> None:
    by_id = {result.row.id: result for result in results}
    crashed = by_id[2]
    assert crashed.outcome is not None and crashed.outcome.status == "failed"
    assert crashed.failure is not None and crashed.failure.kind == "worker_crash"
    assert "scoring process died on this image" in crashed.failure.message
    assert not crashed.failure.transient
    for row_id in (0, 1, 3, 4, 5, 99):
        outcome = by_id[row_id].outcome
        assert outcome is not None and outcome.status == "scored", by_id[row_id]


def test_a_worker_that_dies_fails_only_its_own_image(tmp_path: Path) -> None:
    rows = _rows(tmp_path)

    async def run() -> list[RowResult]:
        with scoring_pool(2) as pool:
            scorer = CrashyScorer(pool, 2, ScoringConfig(), None, Locator(root=tmp_path))
            try:
                first = await asyncio.gather(*(scorer(row) for row in rows))
                # The replaced pool keeps working for later images.
                later = await scorer(Row(99, str(tmp_path / "a.jpg")))
            finally:
                scorer.close()
        return [*first, later]

    _check(asyncio.run(run()))


def test_a_chunk_whose_worker_dies_is_retried_row_by_row(tmp_path: Path) -> None:
    rows = _rows(tmp_path)

    async def run() -> tuple[list[RowResult], int]:
        executor = LocalExecutor(2)
        try:
            scorer = ChunkScorer(executor, WorkSettings(), Locator(root=tmp_path), chunk_size=3,
                                 task=score_chunk_or_die)
            first = await asyncio.gather(*(scorer(row) for row in rows))
            # The replaced pool keeps working for later chunks.
            later = await scorer(Row(99, str(tmp_path / "a.jpg")))
            await scorer.aclose()
            return [*first, later], len(executor._broken)
        finally:
            executor.close()

    results, broken_pools = asyncio.run(run())
    _check(results)
    assert broken_pools == 1  # one pool lost, replaced once, not once per failed chunk
