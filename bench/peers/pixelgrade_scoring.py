"""pixelgrade's full scoring as a peer: ``score_bytes`` on each file read from disk.

The same kind of pool as ``pixelgrade backfill`` (a forkserver with the scoring code
preloaded, one OpenCV thread per worker, one worker per core), each worker reading the file
itself, as the other peers do. The pool is started and warmed on every file before the clock.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any


def _init() -> None:
    import cv2

    cv2.setNumThreads(1)  # as pixelgrade's own pool does


def _score_file(path: str) -> int:
    from pixelgrade.scoring import score_bytes

    return score_bytes(Path(path).read_bytes()).score or 0


def child(config: dict[str, Any]) -> dict[str, Any]:
    """``{"folder", "names", "processes"}`` -> ``{"images", "seconds", "cpu_seconds",
    "others"}``, ``cpu_seconds`` being the CPU the pool used in the measured window and ``others``
    being the share of the machine other processes used meanwhile (measured here, while the
    forkserver's workers are alive: the parent never reaps them, so cannot count them)."""
    from backfill import machine_busy_seconds, tree_cpu_seconds

    cores = os.cpu_count() or 1
    paths = [str(Path(config["folder"]) / name) for name in config["names"]]
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pixelgrade.scoring"])
    with ProcessPoolExecutor(config["processes"], mp_context=context,
                             initializer=_init) as pool:
        list(pool.map(_score_file, sorted(set(paths)) * 2, chunksize=1))  # warm every worker
        busy, tree = machine_busy_seconds(), tree_cpu_seconds()
        started = time.perf_counter()
        count = sum(1 for _ in pool.map(_score_file, paths, chunksize=2))
        seconds = time.perf_counter() - started
        cpu = tree_cpu_seconds() - tree
        others = (machine_busy_seconds() - busy) - cpu
    return {"images": count, "seconds": seconds, "cpu_seconds": cpu,
            "others": max(0.0, others) / (seconds * cores)}
