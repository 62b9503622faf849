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
* a stop request (Ctrl-C, SIGTERM) stops taking new batches and new rows: rows of the batches
  in flight that have not started yet (waiting for their ``--rate`` slot) are left to do, the
  rows that started finish and commit, the checkpoint moves to the last of them and the run
  returns ``interrupted=True``; a second request abandons the in-flight rows too (they simply
  stay to do);
* a database call (reading a batch or writing one) that fails with a *transient* error (an
  exception whose ``transient`` attribute is true: a lost connection, a restarting server, see
  :mod:`pixelgrade.stores.sql_errors`) is retried with exponential backoff, each time on a
  fresh connection; writes are guarded, so repeating one is harmless. A permanent error (a
  missing column, permission denied), or a transient one that outlasts the attempts, stops
  the run with its checkpoint at the last committed batch;
* ``before_write`` sees each batch's results before they are written, so what must be
  recorded about them (the error log) is on disk before the checkpoint can pass them, even
  if the process is killed between the two.

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
T = TypeVar("T")


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
    #: Attempts at a database read or write that fails with a transient error before the run
    #: gives up (waits between them: ``write_backoff`` seconds, doubling each time).
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
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 limiter: RateLimiter | None = None,
                 before_write: Callable[[list[Result]], None] | None = None,
                 on_retry: Callable[[BaseException, int, float], None] | None = None) -> None:
        self.collection = collection
        self.process = process
        self.options = options
        self.cursor = start_after
        self.retry_items = list(retry_items)
        self.on_batch = on_batch
        self.before_write = before_write
        #: Told (error, attempt that failed, seconds until the next) before each retry.
        self.on_retry = on_retry
        #: ``options.rate``'s pacing of items as they start; ``RateLimiter(None)`` when
        #: ``process`` paces its own I/O instead (the image backfill: see backfill/run.py).
        self.limiter = limiter or RateLimiter(options.rate)
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

    async def _process_batch(self, items: list[Item]) -> list[Result | _NotStarted]:
        async def one(item: Item) -> Result | _NotStarted:
            await self.limiter.acquire()
            # Slots are handed out in order (the limiter's lock is FIFO), so once a stop is
            # requested every later row is refused too: the rows that ran are a prefix.
            if self.stopping:
                return NOT_STARTED
            return await self.process(item)
        return list(await asyncio.gather(*(one(item) for item in items)))

    async def _write(self, results: list[Result]) -> int:
        if self.before_write is not None:
            self.before_write(results)
        return await self._database(self.collection.write, results)

    async def _read(self, after: Any, limit: int) -> list[Item]:
        return await self._database(self.collection.next_batch, after, limit)

    async def _database(self, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` in a thread, retried with backoff while it fails transiently."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await asyncio.to_thread(call, *args)
            except Exception as exc:
                if (not getattr(exc, "transient", False)
                        or attempt >= self.options.write_attempts or self._stop_requests > 1):
                    raise
                wait = self.options.write_backoff * 2 ** (attempt - 1)
                if self.on_retry is not None:
                    self.on_retry(exc, attempt, wait)
                await self._sleep(wait)

    async def run(self) -> EngineSummary:
        options = self.options
        summary = EngineSummary(cursor=self.cursor)
        started = time.monotonic()
        remaining = options.limit
        ahead = 1 if options.delay else max(1, options.batches_ahead)
        fetch_cursor = self.cursor
        retry_queue = collections.deque(self.retry_items)
        in_flight: collections.deque[
            tuple[list[Item], bool, asyncio.Task[list[Result | _NotStarted]], float]]
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
                        batch = await self._read(fetch_cursor, size)
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
                outcomes = await self._wait(task)
                in_flight.popleft()
                results = _started_prefix(outcomes)
                if len(results) < len(batch):
                    summary.exhausted = False  # rows were left to do
                    batch = batch[:len(results)]
                    if not batch:
                        continue
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

    async def _wait(self, task: asyncio.Task[list[Result | _NotStarted]]
                    ) -> list[Result | _NotStarted]:
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


class _NotStarted:
    """Internal: the result of a row that a stop request kept from starting."""


NOT_STARTED = _NotStarted()


def _started_prefix(outcomes: list[Result | _NotStarted]) -> list[Result]:
    """The results before the first row that did not start."""
    started: list[Result] = []
    for outcome in outcomes:
        if isinstance(outcome, _NotStarted):
            break
        started.append(outcome)
    return started
