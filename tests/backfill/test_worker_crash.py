"""A scoring process that dies on one image fails that image only; the run goes on."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pixelgrade import samples
from pixelgrade.backfill.images import ImageScorer, Locator
from pixelgrade.pool import scoring_pool
from pixelgrade.scoring import ScoringConfig
from pixelgrade.stores import Row
from tests.backfill.crashy import score_path_or_die


class CrashyScorer(ImageScorer):
    score_path_function = staticmethod(score_path_or_die)


def test_a_worker_that_dies_fails_only_its_own_image(tmp_path: Path) -> None:
    good = samples.encode(samples.load_photo("coffee.png"), "JPEG", quality=90)
    names = ["a.jpg", "b.jpg", "crash.jpg", "c.jpg", "d.jpg", "e.jpg"]
    for name in names:
        (tmp_path / name).write_bytes(good)
    rows = [Row(i, str(tmp_path / name)) for i, name in enumerate(names)]

    async def run() -> list:
        with scoring_pool(2) as pool:
            scorer = CrashyScorer(pool, 2, ScoringConfig(), None, Locator(root=tmp_path))
            try:
                first = await asyncio.gather(*(scorer(row) for row in rows))
                # The replaced pool keeps working for later images.
                later = await scorer(Row(99, str(tmp_path / "a.jpg")))
            finally:
                scorer.close()
        return [*first, later]

    results = asyncio.run(run())
    by_id = {result.row.id: result for result in results}
    crashed = by_id[2]
    assert crashed.outcome is not None and crashed.outcome.status == "failed"
    assert crashed.failure is not None and crashed.failure.kind == "worker_crash"
    assert "scoring process died on this image" in crashed.failure.message
    assert not crashed.failure.transient
    for row_id in (0, 1, 3, 4, 5, 99):
        outcome = by_id[row_id].outcome
        assert outcome is not None and outcome.status == "scored", by_id[row_id]
