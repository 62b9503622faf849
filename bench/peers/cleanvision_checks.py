"""cleanvision (AGPL-3.0, benchmark-only) ``Imagelab.find_issues()`` on the same files.

Two runs, each in a fresh process (the caller's ``run_child``), ``n_jobs`` = one process per
core: its default checks (dark, light, odd_aspect_ratio, low_information, exact_duplicates,
near_duplicates, blurry, grayscale, odd_size; the two duplicate checks hash every image and
compare across the whole set), and its per-image property checks alone (the same list without
the duplicate checks), which is the part comparable to scoring one image. cleanvision refuses a
repeated file path, so it sees each test file once.
"""

from __future__ import annotations

import contextlib
import io
import resource
import time
from pathlib import Path
from typing import Any

DUPLICATE_CHECKS = ("exact_duplicates", "near_duplicates")


def child(config: dict[str, Any]) -> dict[str, Any]:
    """Run in a fresh process: ``{"folder", "names", "processes", "checks": "default" |
    "per-image"}`` -> ``{"images", "seconds", "checks", "found", "version"}``."""
    import cleanvision
    from cleanvision import Imagelab

    paths = [str(Path(config["folder"]) / name) for name in dict.fromkeys(config["names"])]
    checks = list(Imagelab.list_default_issue_types())
    if config["checks"] == "per-image":
        checks = [c for c in checks if c not in DUPLICATE_CHECKS]
    cpu = _cpu_seconds()
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        lab = Imagelab(filepaths=paths)
        lab.find_issues({c: {} for c in checks}, n_jobs=config["processes"], verbose=False)
    seconds = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu
    summary = lab.issue_summary
    found = {str(r["issue_type"]): int(r["num_images"]) for _, r in summary.iterrows()}
    return {"images": len(paths), "seconds": seconds, "cpu_seconds": cpu, "checks": checks,
            "found": found, "version": cleanvision.__version__}


def _cpu_seconds() -> float:
    """CPU of this process and of its children that have ended (cleanvision's pool workers
    are joined when ``find_issues`` returns)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total
