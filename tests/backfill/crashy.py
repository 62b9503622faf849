"""Stand-in scoring functions that kill their process on one kind of file, as a decoder
segfault would. Importable by the scoring workers, local or Dask (they inherit the test's
sys.path)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from pixelgrade.backfill.images import score_path
from pixelgrade.backfill.work import WorkSettings, score_chunk
from pixelgrade.scoring import ScoringConfig


def _dies(location: str) -> bool:
    return "crash" in os.path.basename(location)


def score_path_or_die(path: str, config: ScoringConfig) -> dict[str, Any]:
    if _dies(path):
        os._exit(139)  # no exception, no cleanup: the process is simply gone
    return score_path(path, config)


def score_chunk_or_die(locations: Sequence[str], settings: WorkSettings
                       ) -> list[dict[str, Any]]:
    """:func:`score_chunk`, except that a chunk holding a ``crash`` file kills its process."""
    if any(_dies(location) for location in locations):
        os._exit(139)
    return score_chunk(locations, settings)
