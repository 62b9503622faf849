"""The backfill engine: keyset batches, a pipeline, checkpoints, signals. Knows no images.

The engine walks a :class:`Collection` in key order, ``batch_size`` items at a time, hands each
item to an async ``process`` function, writes each batch's results in one call, then saves a
checkpoint whose cursor is the batch's last key. What an item is, how it is processed and how
results are written are the caller's (see :mod:`pixelgrade.backfill.images`); the engine owns
the order of events that makes the run safe:

* a batch's results are written **before** the checkpoint moves past it, and batches are
  written in key order, so the checkpoint never claims work that is not committed;
* batches are processed ahead of the writer (``batches_ahead``) so fetching and scoring never
  wait for the database;
* a stop request (Ctrl-C, SIGTERM) stops taking new batches, lets the ones in flight finish and
  commit, saves the checkpoint and returns ``interrupted=True``; a second request abandons
  the in-flight batches (their rows simply stay to do);
* a failed write is retried with backoff (writes are guarded, so repeating one is harmless),
  then the run stops with its checkpoint at the last committed batch.

Inspired by Shopify's job-iteration: the task declares the collection and the per-item work,
the framework owns cursors, batching, throttling, interruption and progress.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pixelgrade.backfill.ratelimit import RateLimiter

Item = TypeVar("Item")
Result = TypeVar("Result")


class Collection(Protocol[Item, Result]):
    """What the engine iterates and where results go."""

    def next_batch(self, after: Any, limit: int) -> list[Item]:
        """Up to ``limit`` items with key > ``after`` (None: from the start), in key order."""
        ...

    def key(self, item: Item) -> Any: ...

    def write(self, results: Sequence[Result]) -> int:
        """Persist one batch's results (one transaction); returns how many were written."""
        ...


@dataclass(frozen=True)
class EngineOptions:
    batch_size: int = 100
    #: Pause after each batch, seconds (the seed's ``--delay``); a delay turns look-ahead off.
    delay: float = 0.0
    #: Items per second ceiling (None: no ceiling).
    rate: float | None = None
    #: Stop after this many items (None: all).
    limit: int | None = None
    #: Batches fetched and processed while earlier ones are being written.
    batches_ahead: int = 2
    #: Write attempts before the run gives up on the database.
    write_attempts: int = 4
    write_backoff: float = 1.0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("--batch-size must be at least 1")
        if self.delay < 0:
            raise ValueError("--delay cannot be negative")
        if self.limit is not None and self.limit < 1:
            raise ValueError("--limit must be at least 1")


@dataclass
class BatchDone(Generic[Result]):
    """Told to the ``on_batch`` callback after a batch is committed."""

    index: int
    items: int
    results: list[Result]
    written: int
    cursor: Any
    retry: bool
    seconds: float


@dataclass
class EngineSummary:
    processed: int = 0
    written: int = 0
    batches: int = 0
    interrupted: bool = False
    exhausted: bool = False
    seconds: float = 0.0
    cursor: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class Engine(Generic[Item, Result]):
    """Runs ``process`` over a :class:`Collection`; see the module docstring."""

    def __init__(self, collection: Collection[Item, Result],
                 process: Callable[[Item], Awaitable[Result]], options: EngineOptions, *,
                 start_after: Any = None, retry_items: Sequence[Item] = (),
                 on_batch: Callable[[BatchDone[Result]], None] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.collection = collection
        self.process = process
        self.options = options
        self.cursor = start_after
        self.retry_items = list(retry_items)
        self.on_batch = on_batch
        self.limiter = RateLimiter(options.rate)
        self._sleep = sleep
        self._stop_requests = 0
        self._stopped = asyncio.Event()

    def request_stop(self) -> None:
        """Ask the run to stop (safe to call from a signal handler via the loop)."""
        self._stop_requests += 1
        self._stopped.set()

    @property
    def stopping(self) -> bool:
        return self._stop_requests > 0

    async def _process_batch(self, items: list[Item]) -> list[Result]:
        async def one(item: Item) -> Result:
            await self.limiter.acquire()
            return await self.process(item)
        return list(await asyncio.gather(*(one(item) for item in items)))

    async def _write(self, results: list[Result]) -> int:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await asyncio.to_thread(self.collection.write, results)
            except Exception:
                if attempt >= self.options.write_attempts or self._stop_requests > 1:
                    raise
                await self._sleep(self.options.write_backoff * 2 ** (attempt - 1))

    async def run(self) -> EngineSummary:
        options = self.options
        summary = EngineSummary(cursor=self.cursor)
        started = time.monotonic()
        remaining = options.limit
        ahead = 1 if options.delay else max(1, options.batches_ahead)
        fetch_cursor = self.cursor
        retry_queue = collections.deque(self.retry_items)
        in_flight: collections.deque[tuple[list[Item], bool, asyncio.Task[list[Result]], float]]
        in_flight = collections.deque()
        more = True
        try:
            while True:
                while more and not self.stopping and len(in_flight) < ahead and (
                        remaining is None or remaining > 0):
                    size = options.batch_size if remaining is None else min(
                        options.batch_size, remaining)
                    if retry_queue:
                        batch = [retry_queue.popleft() for _ in range(min(size, len(retry_queue)))]
                        retry = True
                    else:
                        batch = await asyncio.to_thread(self.collection.next_batch,
                                                        fetch_cursor, size)
                        retry = False
                        if not batch:
                            more = False
                            summary.exhausted = True
                            break
                        fetch_cursor = self.collection.key(batch[-1])
                    if remaining is not None:
                        remaining -= len(batch)
                    task = asyncio.create_task(self._process_batch(batch))
                    in_flight.append((batch, retry, task, time.monotonic()))
                if not in_flight:
                    break
                batch, retry, task, batch_started = in_flight[0]
                results = await self._wait(task)
                in_flight.popleft()
                written = await self._write(results)
                if not retry:
                    self.cursor = self.collection.key(batch[-1])
                summary.processed += len(batch)
                summary.written += written
                summary.batches += 1
                summary.cursor = self.cursor
                if self.on_batch is not None:
                    self.on_batch(BatchDone(summary.batches, len(batch), results, written,
                                            self.cursor, retry,
                                            time.monotonic() - batch_started))
                if options.delay and (more or retry_queue) and not self.stopping:
                    await self._pause(options.delay)
        except _Abandon:
            summary.exhausted = False  # every row may have been read, not every row written
        finally:
            for _, _, task, _ in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.gather(*(t for _, _, t, _ in in_flight), return_exceptions=True)
        summary.interrupted = self.stopping and not summary.exhausted
        summary.seconds = time.monotonic() - started
        return summary

    async def _wait(self, task: asyncio.Task[list[Result]]) -> list[Result]:
        """Await a batch; a second stop request abandons it."""
        while True:
            if self._stop_requests > 1:
                raise _Abandon
            self._stopped.clear()
            stop_wait = asyncio.create_task(self._stopped.wait())
            done, _ = await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            if task in done:
                return task.result()

    async def _pause(self, seconds: float) -> None:
        self._stopped.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), timeout=seconds)


class _Abandon(Exception):
    """Internal: a second stop request arrived; leave in-flight batches unwritten."""
