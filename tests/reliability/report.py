"""Figures the reliability tests record for ``docs/reliability.md``.

Each reliability test calls :func:`record` with what it tried and what it saw (kills survived,
faults injected, bad inputs tried, rows lost...). When ``PIXELGRADE_RELIABILITY_REPORT`` names a
file, each record is appended to it as one JSON line; ``scripts/reliability.py`` sets it, runs
the tests and turns the lines into the document. Otherwise recording does nothing.

:func:`full_size` says whether the run is the full-size one (``make stress`` sets
``PIXELGRADE_STRESS=1``); tests pick their sizes from it so that ``make test`` stays quick.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

REPORT_ENV = "PIXELGRADE_RELIABILITY_REPORT"
STRESS_ENV = "PIXELGRADE_STRESS"


def full_size() -> bool:
    """True in ``make stress`` (``PIXELGRADE_STRESS=1``)."""
    return os.environ.get(STRESS_ENV, "") not in ("", "0")


def sized(quick: int, full: int) -> int:
    """``full`` in a stress run, ``quick`` otherwise."""
    return full if full_size() else quick


def record(check: str, **figures: Any) -> None:
    """Append ``{"check": check, **figures}`` to the report file, if one is set.

    ``figures`` must be JSON-serialisable: counts, seconds, megabytes, short strings.
    """
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    line = {"check": check, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "full_size": full_size(), **figures}
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line, sort_keys=True) + "\n")
