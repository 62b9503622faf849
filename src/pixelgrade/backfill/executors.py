"""Where chunks of rows are fetched and scored: local processes, or a Dask cluster.

An executor runs a chunk task (:func:`pixelgrade.backfill.work.score_chunk`) on a list of
locations and returns its result dicts. Three kinds (``pixelgrade backfill --executor``):

* ``local`` (default): a pool of scoring processes on this machine (:mod:`pixelgrade.pool`);
* ``dask``: the workers of an existing ``dask.distributed`` cluster (``--scheduler
  tcp://HOST:8786``), see :mod:`pixelgrade.backfill.executors_dask`;
* ``dask-local``: a ``distributed.LocalCluster`` of worker processes started for the run.

Either way the driver (cursor, checkpoint, guarded writes) stays in the calling process. When
the process running a chunk dies (a decoder crash, the kernel's OOM killer, a lost machine),
:meth:`ChunkExecutor.run` raises :class:`ChunkCrashed` and the caller retries the chunk's rows
one by one with :meth:`ChunkExecutor.run_alone`, each in a process of its own, so the one row
that kills its process is known.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from pixelgrade.backfill.work import SCORING_TIMEOUT_EXIT, WorkSettings
from pixelgrade.errors import ExecutorError
from pixelgrade.pool import scoring_pool

#: ``score_chunk`` or a stand-in with its signature (tests use one that crashes).
ChunkTask = Callable[[Sequence[str], WorkSettings], list[dict[str, Any]]]

EXECUTORS = ("local", "dask", "dask-local")

class ChunkCrashed(Exception):
    """The process (or Dask worker) running a chunk died before returning its results."""


class ChunkTimedOut(ChunkCrashed):
    """The process running one location alone stopped itself: scoring it took longer than
    ``WorkSettings.score_timeout`` (told apart from a crash by its exit status, where the
    executor can see it: local processes)."""


class ChunkExecutor(Protocol):
    #: Processes (threads, on Dask) that take chunks at once; --concurrency is shared among them.
    workers: int

    @property
    def slots(self) -> int:
        """Chunks to keep in flight so that no worker waits for the next one."""
        ...

    def describe(self) -> str: ...

    async def start(self) -> None:
        """Have the workers ready, so the first chunks do not pay for their start-up."""
        ...

    async def run(self, task: ChunkTask, locations: Sequence[str],
                  settings: WorkSettings) -> list[dict[str, Any]]:
        """``task(locations, settings)`` on a worker; :class:`ChunkCrashed` if it died."""
        ...

    async def run_alone(self, task: ChunkTask, location: str,
                        settings: WorkSettings) -> dict[str, Any]:
        """One location in a process that runs nothing else; :class:`ChunkCrashed` if it
        died."""
        ...


#: Local scoring processes per core (``LocalExecutor``): see its docstring.
PROCESSES_PER_CORE = 2


class LocalExecutor:
    """Chunks in a pool of local processes (forkserver started), two per core: ``--workers``
    (one per core by default) times :data:`PROCESSES_PER_CORE`.

    Each process downloads its chunk's images in a thread while it scores the ones that have
    arrived, but a chunk holds its process until its slowest download is over (a stalled
    server: up to the HTTP policy's timeouts); with a second process per core the core scores
    the other process's chunk meanwhile. Both scoring at once just share the core. The cost
    is memory: twice the processes (~150 MB each on the benchmark's mix).

    (A shared semaphore letting only one process per core score at a time was tried and
    dropped: a process that died while holding it, the very case the crash recovery is for,
    sometimes left ``ProcessPoolExecutor`` waiting forever; reproduced on Python 3.11.)

    A process that dies breaks the whole pool (every chunk in flight fails with
    ``BrokenProcessPool``): the first chunk to notice replaces the pool, and each failed chunk
    raises :class:`ChunkCrashed`. :meth:`run_alone` uses a fresh one-process pool per location,
    at most one per core at a time.
    """

    def __init__(self, workers: int, *, processes_per_core: int = PROCESSES_PER_CORE) -> None:
        if workers < 1:
            raise ValueError("--workers must be at least 1")
        self.cores = workers
        #: Processes that take chunks (``--concurrency`` is shared among them).
        self.workers = workers * max(1, processes_per_core)
        self.pool: ProcessPoolExecutor = scoring_pool(self.workers)
        self._broken: list[ProcessPoolExecutor] = []
        self._solo_slots = asyncio.Semaphore(self.cores)
        #: Chunks submitted to the pool and not finished (still running if abandoned).
        self._submitted: set[Future[list[dict[str, Any]]]] = set()

    @property
    def slots(self) -> int:
        return self.workers + self.cores

    def describe(self) -> str:
        return f"{self.workers} local processes on {self.cores} cores"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self.pool, abs, 0)
                               for _ in range(self.workers)))

    async def run(self, task: ChunkTask, locations: Sequence[str],
                  settings: WorkSettings) -> list[dict[str, Any]]:
        pool = self.pool
        try:
            submitted = pool.submit(task, list(locations), settings)
            self._submitted.add(submitted)
            submitted.add_done_callback(self._submitted.discard)
            return await asyncio.wrap_future(submitted)
        except BrokenProcessPool as exc:
            if self.pool is pool:  # the first chunk to notice replaces the pool for everyone
                self._broken.append(pool)
                self.pool = scoring_pool(self.workers)
            raise ChunkCrashed(str(exc)) from exc

    async def run_alone(self, task: ChunkTask, location: str,
                        settings: WorkSettings) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        async with self._solo_slots:
            solo = scoring_pool(1)
            processes: list[Any] = []
            try:
                submitted = solo.submit(task, [location], settings)
                # The pool's one process, to read its exit status if it dies (CPython's own
                # table: ProcessPoolExecutor has no public way to it).
                processes = list((getattr(solo, "_processes", None) or {}).values())
                return (await asyncio.wrap_future(submitted))[0]
            except BrokenProcessPool as exc:
                for process in processes:
                    await loop.run_in_executor(None, process.join, 5)
                if any(process.exitcode == SCORING_TIMEOUT_EXIT for process in processes):
                    raise ChunkTimedOut(str(exc)) from exc
                raise ChunkCrashed(str(exc)) from exc
            finally:
                solo.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Shut the pools down. Chunks still running were abandoned (a second Ctrl-C): their
        processes are terminated rather than waited for, as a download may take minutes."""
        if any(not submitted.done() for submitted in list(self._submitted)):
            # ProcessPoolExecutor has no public way to stop running work before Python 3.14
            # (terminate_workers), hence its private process table.
            for process in list((getattr(self.pool, "_processes", None) or {}).values()):
                process.terminate()
        self.pool.shutdown(wait=True, cancel_futures=True)
        for pool in self._broken:
            pool.shutdown(wait=True, cancel_futures=True)
        self._broken.clear()


@contextlib.asynccontextmanager
async def open_executor(kind: str, workers: int, scheduler: str | None = None
                        ) -> AsyncIterator[ChunkExecutor]:
    """The executor ``--executor KIND`` names, started; closed on exit.

    ``workers`` is the number of processes for ``local`` and ``dask-local`` (one thread
    each); ``scheduler`` the address of the Dask scheduler for ``dask``.
    """
    if kind not in EXECUTORS:
        raise ExecutorError(f"unknown executor {kind!r}: use one of {', '.join(EXECUTORS)}")
    if kind == "dask" and not scheduler:
        raise ExecutorError("--executor dask needs --scheduler tcp://HOST:8786 (the address "
                            "`dask scheduler` prints), or use --executor dask-local")
    if kind != "dask" and scheduler:
        raise ExecutorError(f"--scheduler is for --executor dask, not {kind}")
    if kind == "local":
        local = LocalExecutor(workers)
        try:
            await local.start()
            yield local
        finally:
            local.close()
        return
    from pixelgrade.backfill.executors_dask import DaskExecutor

    dask = await (DaskExecutor.connect(scheduler) if kind == "dask"
                  else DaskExecutor.local_cluster(workers))
    try:
        yield dask
    finally:
        await dask.aclose()
