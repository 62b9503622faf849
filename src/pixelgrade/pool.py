"""The process pool that scores images, shared by ``score``, ``demo``, the gallery and the
backfill.

Workers are started by a *forkserver*, not forked from the caller: a parent that has already
used OpenCV or NumPy holds thread-pool locks that a plain ``fork()`` would copy in a locked
state, and the child would hang on its first OpenCV call (seen here: the demo builds its images
with OpenCV, then scores them). The forkserver is a clean process that imports the scoring
code once, so each worker starts in milliseconds with nothing locked.

``cpu_slots``: the backfill's workers download their own images, so it runs more processes than
cores (while one waits for its downloads, another scores) and caps how many score at once with a
semaphore shared by the pool's processes (see :func:`pixelgrade.backfill.work.score_gate`).
"""

from __future__ import annotations

import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def _init_worker(cpu_slots: Any = None) -> None:
    """Workers leave Ctrl-C to the parent (which finishes in-flight work first) and use one
    OpenCV thread each (the pool already uses every core)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import cv2

    cv2.setNumThreads(1)
    if cpu_slots is not None:
        from pixelgrade.backfill.work import score_gate

        score_gate().install(cpu_slots)


def scoring_pool(workers: int, *, cpu_slots: int | None = None) -> ProcessPoolExecutor:
    """A pool of ``workers`` scoring processes (see the module docstring); with ``cpu_slots``,
    at most that many of them score at once."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pixelgrade.scoring"])
    semaphore = None if cpu_slots is None else context.BoundedSemaphore(cpu_slots)
    return ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=_init_worker, initargs=(semaphore,))
