"""A stand-in for the scoring of uploaded bytes that kills its process on marked bytes, as a
decoder segfault would (importable by the scoring workers: they inherit the test's sys.path).
See tests/backfill/crashy.py for the same on files and chunks."""

from __future__ import annotations

import os
from typing import Any

from pixelgrade.backfill.images import score_data
from pixelgrade.scoring import ScoringConfig

#: Bytes that make :func:`score_data_or_die` kill its process (appended after a PNG's end).
CRASH_MARK = b"pixelgrade-test-crash-me"


def score_data_or_die(data: bytes, config: ScoringConfig) -> dict[str, Any]:
    if CRASH_MARK in data:
        os._exit(139)  # no exception, no cleanup: the process is simply gone
    return score_data(data, config)
