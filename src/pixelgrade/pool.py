"""The process pool that scores images, shared by ``score``, ``demo``, the gallery and the
backfill.

Workers are started by a *forkserver*, not forked from the caller: a parent that has already
used OpenCV or NumPy holds thread-pool locks that a plain ``fork()`` would copy in a locked
state, and the child would hang on its first OpenCV call (seen here: the demo builds its images
with OpenCV, then scores them). The forkserver is a clean process that imports the scoring
code once, so each worker starts in milliseconds with nothing locked.

Workers end with the process that made the pool, even when it is killed (SIGKILL, the OOM
killer) and has no chance to shut the pool down: a worker waits for work on a queue whose write
end it holds itself, so it would never see the parent go and would sleep forever, and with it
the forkserver and the resource tracker (four processes left behind by every killed backfill,
seen in the crash tests). Each worker watches its parent's sentinel and exits when it closes.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import wait


def _init_worker() -> None:
    """Workers leave Ctrl-C to the parent (which finishes in-flight work first) and use one
    OpenCV thread each (the pool already uses every core)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True,
                         name="exit-with-parent").start()
    import cv2

    cv2.setNumThreads(1)


def _exit_with(sentinel: int) -> None:
    """Exit at once when the parent process is gone (see the module docstring)."""
    wait([sentinel])
    os._exit(0)


def scoring_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` scoring processes (see the module docstring)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pixelgrade.scoring"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=_init_worker)
