"""Chunks on a Dask cluster (``--executor dask`` / ``dask-local``): workers fetch and score.

Each chunk is one task, ``client.submit(score_chunk, locations, settings, pure=False)``; the
driver keeps at most :attr:`DaskExecutor.slots` of them in flight (backpressure), and each
Dask worker process keeps its own HTTP fetcher across chunks (see
:mod:`pixelgrade.backfill.work`). What Dask guarantees is what makes a lost worker harmless:
the scheduler re-runs the tasks of a worker that dies on another worker, so its chunks are
scored anyway. A task that has been running on ``distributed.scheduler.allowed-failures`` + 1
workers that all died (default 3 + 1) fails with ``KilledWorker``: that chunk is reported as
crashed and its rows are tried one by one (the one that keeps killing workers is recorded
``worker_crash``).

Nothing secret is sent to the scheduler in the clear of a log: the only credentials are the
Storage headers inside :class:`~pixelgrade.backfill.work.Credentials`, whose repr hides them,
and the database URL never leaves the driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from typing import Any

from pixelgrade.backfill.executors import ChunkCrashed, ChunkTask
from pixelgrade.backfill.work import WorkSettings
from pixelgrade.errors import ExecutorError

_INSTALL = ("--executor dask and dask-local need the dask.distributed package: "
            "pip install 'pixelgrade[dask]' (or pip install 'dask[distributed]')")
try:
    import distributed
    from distributed.comm import parse_address, parse_host_port
except ImportError as exc:  # an optional dependency: say how to get it
    raise ExecutorError(f"{_INSTALL} ({exc})") from exc

#: Seconds to reach the scheduler, then to wait for its first worker.
CONNECT_TIMEOUT = 10.0
WORKER_WAIT = 30.0
DEFAULT_PORT = 8786


def _unreachable(address: str, cause: object) -> str:
    return (f"cannot reach the Dask scheduler at {address} ({cause}): check --scheduler "
            "(the address `dask scheduler` prints, e.g. tcp://10.0.0.5:8786), that the "
            "scheduler is running and that this machine can reach that port; or run on this "
            "machine alone with --executor dask-local or local")


async def _probe(address: str) -> None:
    """Fail fast, with a clear message, when nothing listens at a tcp/tls address (the Dask
    client would otherwise retry for its whole connect timeout)."""
    try:
        scheme, location = parse_address(address)
        if scheme not in ("tcp", "tls"):
            return
        host, port = parse_host_port(location, default_port=DEFAULT_PORT)
    except ValueError as exc:
        raise ExecutorError(f"--scheduler {address!r} is not a Dask address ({exc}): write it "
                            "as tcp://HOST:8786") from exc
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                           CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise ExecutorError(_unreachable(address, getattr(exc, "strerror", None) or
                                         exc or "timed out")) from exc
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


class DaskExecutor:
    """Chunks as Dask tasks; see the module docstring. Make one with :meth:`connect` or
    :meth:`local_cluster`, in the event loop that will use it: the client is asynchronous and
    shares that loop, so waiting for a chunk's result costs no thread."""

    def __init__(self, client: distributed.Client, cluster: distributed.LocalCluster | None,
                 where: str, workers: int) -> None:
        self.client = client
        self.cluster = cluster
        self.where = where
        self.workers = max(1, workers)
        self._alone = asyncio.Lock()

    @classmethod
    async def connect(cls, address: str | None) -> DaskExecutor:
        """A client of the scheduler at ``address``, once it has at least one worker."""
        if not address:
            raise ExecutorError("--executor dask needs --scheduler tcp://HOST:8786")
        await _probe(address)
        try:
            client = await distributed.Client(address, asynchronous=True,
                                              timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ExecutorError(_unreachable(address, exc)) from exc
        try:
            await client.wait_for_workers(1, timeout=WORKER_WAIT)
            workers = sum((await client.nthreads()).values())
        except TimeoutError as exc:
            await client.close()
            raise ExecutorError(
                f"the Dask scheduler at {address} has no workers after {WORKER_WAIT:g} s: "
                f"start some with `dask worker {address} --nthreads 1` on each machine "
                "(pixelgrade must be installed there too)") from exc
        except BaseException:
            await client.close()
            raise
        return cls(client, None, f"the Dask scheduler at {address}", workers)

    @classmethod
    async def local_cluster(cls, workers: int) -> DaskExecutor:
        """A ``LocalCluster`` of ``workers`` worker processes with one thread each."""
        if workers < 1:
            raise ValueError("--workers must be at least 1")
        cluster = await distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
            silence_logs=logging.ERROR, asynchronous=True)
        try:
            client = await distributed.Client(cluster, asynchronous=True, set_as_default=False)
            try:
                # Ctrl-C in the terminal reaches the workers too (same process group); the
                # driver finishes the chunks in flight, so they must not die of it.
                await client.register_plugin(_IgnoreInterrupts(), name="pixelgrade-sigint")
                await client.wait_for_workers(workers, timeout=WORKER_WAIT)
            except BaseException:
                await client.close()
                raise
        except BaseException:
            await cluster.close()
            raise
        return cls(client, cluster, "a Dask LocalCluster", workers)

    @property
    def slots(self) -> int:
        return 2 * self.workers

    def describe(self) -> str:
        return f"{self.where}, {self.workers} worker thread{'s' if self.workers > 1 else ''}"

    async def start(self) -> None:
        """Nothing to do: :meth:`connect` and :meth:`local_cluster` wait for the workers."""

    async def run(self, task: ChunkTask, locations: Sequence[str],
                  settings: WorkSettings) -> list[dict[str, Any]]:
        # Abandoned (cancelled) chunks are forgotten by the scheduler when the client closes.
        future = self.client.submit(task, list(locations), settings, pure=False)
        try:
            result: list[dict[str, Any]] = await future
        except distributed.KilledWorker as exc:
            raise ChunkCrashed(str(exc)) from exc
        return result

    async def run_alone(self, task: ChunkTask, location: str,
                        settings: WorkSettings) -> dict[str, Any]:
        """One row as a task of its own, one such task at a time: Dask holds every task that
        was on a worker when it died suspect (not only the running one), so rows tried alone
        side by side could be blamed for the one that crashes."""
        async with self._alone:
            return (await self.run(task, [location], settings))[0]

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.close()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                await self.cluster.close()


class _IgnoreInterrupts(distributed.WorkerPlugin):
    """Worker plugin (``setup`` runs in each worker process, restarted ones included): SIGINT
    ignored, as in the local pool's processes (:mod:`pixelgrade.pool`)."""

    def setup(self, worker: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
