"""Score many files or URLs: directory expansion, reading, and a process pool that keeps order.

The library behind ``pixelgrade score`` and ``pixelgrade demo``; importable on its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path

from pixelgrade.errors import PixelgradeError
from pixelgrade.pool import scoring_pool
from pixelgrade.scoring import QualityReport, ScoringConfig, score_bytes
from pixelgrade.sources import HttpPolicy, is_url, read_bytes


def expand_locations(locations: Iterable[str]) -> list[str]:
    """Keep URLs and files as given; replace a directory by its files, recursively and sorted.

    Hidden files and folders (names starting with ``.``) inside a directory are left out.
    """
    expanded: list[str] = []
    for location in locations:
        if not is_url(location) and os.path.isdir(location):
            root = Path(location)
            expanded.extend(
                str(path)
                for path in sorted(root.rglob("*"))
                if path.is_file()
                and not any(part.startswith(".") for part in path.relative_to(root).parts)
            )
        else:
            expanded.append(location)
    return expanded


def score_location(location: str, config: ScoringConfig | None = None,
                   policy: HttpPolicy | None = None) -> QualityReport:
    """Read and score one path or URL (under ``policy``, default :class:`HttpPolicy`). Never
    raises for unreadable or bad input."""
    config = config or ScoringConfig()
    try:
        data = read_bytes(location, config.max_bytes, policy)
    except PixelgradeError as exc:
        status = getattr(exc, "status", "failed")
        return QualityReport(status=status, reason=str(exc))
    return score_bytes(data, config)


def score_locations(
    locations: list[str], config: ScoringConfig | None = None, workers: int = 1,
    policy: HttpPolicy | None = None,
) -> Iterator[tuple[str, QualityReport]]:
    """Yield ``(location, report)`` in input order, scoring on ``workers`` processes."""
    config = config or ScoringConfig()
    if workers <= 1 or len(locations) < 2:
        for location in locations:
            yield location, score_location(location, config, policy)
        return
    with scoring_pool(workers) as pool:
        chunk = max(1, min(16, len(locations) // (workers * 4)))
        reports = pool.map(partial(score_location, config=config, policy=policy), locations,
                           chunksize=chunk)
        yield from zip(locations, reports, strict=True)


def default_workers(count: int) -> int:
    """One process per core for big batches; a single process when a pool would not pay off."""
    return 1 if count < 4 else max(1, min(os.cpu_count() or 1, count))
