"""The process pool that scores images, shared by ``score``, ``demo`` and the backfill.

Workers are started by a *forkserver*, not forked from the caller: a parent that has already
used OpenCV or NumPy holds thread-pool locks that a plain ``fork()`` would copy in a locked
state, and the child would hang on its first OpenCV call (seen here: the demo builds its images
with OpenCV, then scores them). The forkserver is a clean process that imports the scoring
code once, so each worker starts in milliseconds with nothing locked.
"""

from __future__ import annotations

import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor


def _init_worker() -> None:
    """Workers leave Ctrl-C to the parent (which finishes in-flight work first) and use one
    OpenCV thread each (the pool already uses every core)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import cv2

    cv2.setNumThreads(1)


def scoring_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` scoring processes (see the module docstring)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pixelgrade.scoring"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=_init_worker)
