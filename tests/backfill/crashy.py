"""A stand-in scoring function that kills its process on one kind of file, as a decoder
segfault would. Importable by the scoring workers (they inherit the test's sys.path)."""

from __future__ import annotations

import os
from typing import Any

from pixelgrade.backfill.images import score_path
from pixelgrade.scoring import ScoringConfig


def score_path_or_die(path: str, config: ScoringConfig) -> dict[str, Any]:
    if "crash" in os.path.basename(path):
        os._exit(139)  # no exception, no cleanup: the process is simply gone
    return score_path(path, config)
