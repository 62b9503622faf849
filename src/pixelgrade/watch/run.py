"""The watcher: score rows as other programs insert them, until stopped.

How new rows are found:

* **PostgreSQL with pixelgrade's trigger** (installed by ``pixelgrade migrate``): a LISTEN
  connection receives each new row's id (:mod:`pixelgrade.watch.listen`). Ids arriving within
  ``window`` seconds are read together (``store.fetch_rows``: only rows still without a score).
* **SQLite, Supabase, PostgreSQL without the trigger**: a poll every ``interval`` seconds reads
  the rows still to do above the highest integer key seen (every row still to do, for UUID or
  text keys), then the rows below it that a URL change re-opened (``store.fetch_reopened``).
* **Re-opened rows.** ``pixelgrade migrate`` installs, on every backend, a trigger that clears
  the result of a row whose URL changes and keeps the old URL in ``quality_source``
  (:func:`pixelgrade.stores.schema.reopen_statements`). Such a row is announced by the notify
  trigger like a new one; a poll finds it with ``fetch_reopened``, which reads a partial
  index holding only the rows whose URL differs from their source and that have no score,
  so a poll costs what there is to find, not the table's size (the plans are in
  :mod:`pixelgrade.stores.sql`). Why not re-read every row to do below the high-water mark:
  rows that failed for now, or were never scorable, would be read every poll, without bound.
  A score computed for the old URL is refused by the URL-checked write (``Outcome.source``)
  and counted as written by someone else; a notification that arrives while its row is in
  flight is kept and the row read again once its result is in (:mod:`pixelgrade.watch.
  ledger`). Without the source column (a table ``migrate`` has not brought up to date),
  re-opened rows below the highest key seen are left to the sweeps.
* **Sweeps**, in every case: one at start (rows inserted while ``watch`` was down), then one
  every ``sweep_interval`` seconds and one whenever the LISTEN connection comes back (missed
  notifications, transient failures due for their retry). A sweep is the backfill's keyset walk
  from the first row.

What is done with a row is the backfill's, unchanged: :class:`~pixelgrade.backfill.images.
ImageScorer` fetches and scores it in the scoring processes, and the backfill
:class:`~pixelgrade.backfill.engine.Engine` writes each batch with ``store.write`` (guarded:
a row someone else scored meanwhile is left alone; retried with backoff if the database
hiccups). Permanent failures are recorded as ``failed`` and transient ones stay NULL and are
retried by later sweeps with a growing delay (:mod:`pixelgrade.watch.ledger`); both are
appended to the error log in the backfill's format, before the batch is written (so a kill
after the commit cannot lose a failed row's reason). A row is never scored by two paths at once.

Stopping (SIGINT, SIGTERM, or :meth:`Watcher.stop`): nothing new is started, the images in
flight are finished and written, and :meth:`Watcher.run` returns; a second request abandons
the images in flight (their rows stay to do; the next start's sweep finds them).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pixelgrade.backfill.checkpoint import now_iso
from pixelgrade.backfill.engine import BatchDone, Engine, EngineOptions
from pixelgrade.backfill.errorlog import ErrorLog
from pixelgrade.backfill.images import (
    ImageScorer,
    Locator,
    RowResult,
    count_batch,
    make_pool,
)
from pixelgrade.errors import StoreError
from pixelgrade.scoring import ScoringConfig
from pixelgrade.service.counters import Counters, NoCounters
from pixelgrade.service.metrics import seconds_since
from pixelgrade.sources.http import HttpFetcher, HttpPolicy
from pixelgrade.sources.storage import StorageBucket
from pixelgrade.stores.base import NotifyChannel, Outcome, Row, Selection, Store
from pixelgrade.watch.ledger import Ledger
from pixelgrade.watch.listen import Listener
from pixelgrade.watch.log import WatchLog

#: Notified ids waiting to be read; past this, they are dropped and a sweep finds their rows.
QUEUE_LIMIT = 10_000
#: Batches of new rows (notified or polled) scored at the same time. Batches are independent,
#: so a slow URL holds up only the rows of its own batch.
LIVE_BATCHES = 4
#: Longest pause after repeated database errors, seconds.
ERROR_BACKOFF_MAX = 60.0
#: Seconds between polls when none is given: a SQLite file is local, so a poll (two index
#: seeks) costs nothing and a new row waits about a quarter of a second for it; elsewhere each
#: poll is a query or a request to a server (a hosted Supabase project counts them).
POLL_INTERVAL_SQLITE = 0.5
POLL_INTERVAL = 2.0
#: Longest wait for the event loop to answer a liveness probe, seconds.
LIVENESS_TIMEOUT = 30.0


@dataclass(frozen=True)
class WatchOptions:
    """How ``watch`` runs. Times are in seconds."""

    #: Rows per batch (one guarded write each).
    batch_size: int = 100
    workers: int = 1
    concurrency: int = 16
    error_log: Path = Path("watch-errors.log")
    #: Between polls (when the database does not announce new rows; ``watch`` gives
    #: :func:`poll_interval` of its store when --interval is not given).
    interval: float = POLL_INTERVAL
    #: Between sweeps of every row still to do.
    sweep_interval: float = 60.0
    #: One sweep, then return.
    once: bool = False
    #: LISTEN when the store offers notifications (False: always poll).
    listen: bool = True
    #: Notified ids arriving within this window are read and scored together.
    window: float = 0.2
    #: First delay before a transient failure is tried again; doubled each time up to
    #: ``retry_max``.
    retry_base: float = 30.0
    retry_max: float = 3600.0
    #: Longest wait between attempts to reopen the LISTEN connection.
    reconnect_max: float = 30.0
    write_attempts: int = 4
    write_backoff: float = 1.0
    url_template: str | None = None
    root: Path | None = None
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    http: HttpPolicy | None = None
    storage: StorageBucket | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("--batch-size must be at least 1")
        if self.interval <= 0 or self.sweep_interval <= 0:
            raise ValueError("--interval and --sweep-interval must be more than 0 seconds")
        if self.workers < 1 or self.concurrency < 1:
            raise ValueError("--workers and --concurrency must be at least 1")


@dataclass
class WatchReport:
    """Counts since start (``--json`` prints them in the ``stopped`` line)."""

    store: str
    mode: str = ""
    processed: int = 0
    written: int = 0
    scored: int = 0
    skipped: int = 0
    failed: int = 0
    retry_later: int = 0
    not_written_already_done: int = 0
    notifications: int = 0
    sweeps: int = 0
    polls: int = 0
    reconnects: int = 0
    errors: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Batches:
    """What the engine works through for ``watch``: claimed rows, written with the same guarded
    ``store.write`` as the backfill. Base of the two kinds below."""

    def __init__(self, store: Store, selection: Selection) -> None:
        self.store = store
        self.selection = selection
        #: Read the rows' creation times before each write (only when something counts the
        #: insert-to-score time: it costs a query per batch).
        self.measure_latency = False
        #: The last batch written: its rows' creation times (when the store has them) and
        #: when the write ended, for the insert-to-score time (:meth:`Watcher._count`).
        self.created: dict[Any, Any] = {}
        self.written_at = 0.0

    def key(self, item: Row) -> Any:
        return item.id

    def write(self, results: Sequence[RowResult]) -> int:
        outcomes: list[Outcome] = [r.outcome for r in results if r.outcome is not None]
        self.created = _created_times(self.store, [o.id for o in outcomes]) if (
            self.measure_latency) else {}
        written = self.store.write(self.selection, outcomes)
        self.written_at = time.time()
        return written

    def next_batch(self, after: Any, limit: int) -> list[Row]:
        raise NotImplementedError


class _Given(_Batches):
    """Rows already read and claimed (new rows: notified or polled), handed out once."""

    def __init__(self, store: Store, selection: Selection, rows: Sequence[Row]) -> None:
        super().__init__(store, selection)
        self._rows = list(rows)

    def next_batch(self, after: Any, limit: int) -> list[Row]:
        batch, self._rows = self._rows[:limit], self._rows[limit:]
        return batch


class _Todo(_Batches):
    """Rows still to do after ``after`` (None: from the first), in key order, minus those
    claimed elsewhere or waiting for a retry: a sweep. The cursor is its own, moved past the
    rows it leaves too, so they are not read again by this sweep."""

    def __init__(self, store: Store, selection: Selection, ledger: Ledger, owner: object,
                 after: Any = None) -> None:
        super().__init__(store, selection)
        self.ledger = ledger
        self.owner = owner
        self.cursor = after
        self.rows_read = 0

    def next_batch(self, after: Any, limit: int) -> list[Row]:
        while True:
            fetched_at = self.ledger.clock()
            rows = self.store.fetch_todo(self.selection, self.cursor, limit)
            if not rows:
                return []
            self.cursor = rows[-1].id
            self.rows_read += len(rows)
            self.ledger.see(row.id for row in rows)
            kept = self.ledger.claim(rows, fetched_at, self.owner)
            if kept:
                return kept


class Watcher:
    """Scores new rows of ``store`` until stopped; see the module docstring.

    ``run()`` blocks (it owns an event loop); ``stop()`` may be called from any thread;
    ``ready`` is set once the startup sweep is done and new rows are being watched for.
    """

    def __init__(self, store: Store, options: WatchOptions, log: WatchLog | None = None,
                 counters: Counters | None = None) -> None:
        self.store = store
        self.options = options
        self.log = log or WatchLog()
        #: Told each image's result, the notified rows waiting, insert-to-score times and
        #: scoring pools replaced (``watch --metrics-port``: Prometheus).
        self.counters: Counters = counters or NoCounters()
        self.selection = Selection()
        self.report = WatchReport(store=store.describe())
        self.ready = threading.Event()
        self.ledger = Ledger(retry_base=options.retry_base, retry_max=options.retry_max)
        self.listener: Listener | None = None
        self._error_log = ErrorLog(options.error_log, example="watch-errors.log")
        self._engine_options = EngineOptions(batch_size=options.batch_size,
                                             write_attempts=options.write_attempts,
                                             write_backoff=options.write_backoff)
        self._engines: set[Engine[Row, RowResult]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop_lock = threading.Lock()
        self._stop_requests = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scorer: ImageScorer | None = None
        self._crash: BaseException | None = None

    # -- control -------------------------------------------------------------------------

    def run(self, *, install_signal_handlers: bool = True) -> WatchReport:
        """Watch until stopped (or, with ``once``, for one sweep). Holds the table's backfill
        lock: one backfill or watch per table at a time."""
        with self.store.lock("watch"):
            report = asyncio.run(self._main(install_signal_handlers))
        self.log.note("stopped", _summary(report), **report.to_dict())
        return report

    def stop(self) -> None:
        """Ask the watcher to stop (thread-safe); a second call abandons the work in flight."""
        with self._stop_lock:  # held so the loop cannot close in between
            if self._loop is None:
                self._stop_requests += 1  # not started yet (or over): it will not start work
            else:
                self._loop.call_soon_threadsafe(self._request_stop, None)

    def _request_stop(self, signal_name: str | None) -> None:
        self._stop_requests += 1
        if signal_name is not None:
            if self._stop_requests == 1:
                message = (f"{signal_name}: finishing the images in flight, then stopping "
                           "(press again to stop at once)")
            else:
                message = (f"{signal_name} again: abandoning the images in flight (their rows "
                           "stay to do)")
            self.log.note("stopping", message, signal=signal_name)
        self._stopping.set()
        for engine in list(self._engines):
            engine.request_stop()

    @property
    def stopping(self) -> bool:
        return self._stop_requests > 0

    def liveness(self) -> str | None:
        """A liveness probe (``/healthz``, :mod:`pixelgrade.service.health`): None while the
        watch runs and its event loop answers; else what is wrong. Any thread."""
        loop = self._loop
        if loop is None:
            return "watch is not running (not started yet, or stopped)"
        if self.stopping:
            return "stopping: finishing the images in flight"
        try:
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result(LIVENESS_TIMEOUT)
        except RuntimeError:  # the loop closed meanwhile
            return "watch is not running (stopped)"
        except TimeoutError:
            return f"the watch loop has not answered for {LIVENESS_TIMEOUT:g} s (blocked)"
        return None

    # -- the run -------------------------------------------------------------------------

    async def _main(self, install_signal_handlers: bool) -> WatchReport:
        options = self.options
        self._stopping = asyncio.Event()
        self._sweep_now = asyncio.Event()
        self._queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_LIMIT)
        self._live_slots = asyncio.Semaphore(LIVE_BATCHES)
        self._overflowing = False
        with self._stop_lock:
            self._loop = asyncio.get_running_loop()
            if self._stop_requests:
                self._stopping.set()
        started = time.monotonic()
        remove_handlers = self._install_handlers() if install_signal_handlers else (
            lambda: None)
        listen_task: asyncio.Task[None] | None = None
        try:
            async with AsyncExitStack() as stack:
                http = (options.http or HttpPolicy(max_bytes=options.scoring.max_bytes)
                        ).trusting(options.url_template, options.storage.project_url
                                   if options.storage else None)
                credentials = options.storage.credentials() if options.storage else {}
                fetcher = await stack.enter_async_context(
                    HttpFetcher(http, concurrency=options.concurrency,
                                origin_headers=credentials))
                pool = stack.enter_context(make_pool(options.workers))
                self._scorer = ImageScorer(
                    pool, options.workers, options.scoring, fetcher,
                    Locator(options.url_template, options.root, options.storage),
                    on_pool_replaced=self.counters.worker_restarted)
                stack.callback(self._scorer.close)
                channel = None
                if options.listen and not options.once:
                    channel = await asyncio.to_thread(self.store.notify_channel)
                self.report.mode = "once" if options.once else "listen" if channel else "poll"
                self.log.note("start", f"pixelgrade watch on {self.store.describe()}",
                              store=self.store.describe(), mode=self.report.mode)
                # Scoring processes started now, so the first image is not slowed by it.
                loop = asyncio.get_running_loop()
                await asyncio.gather(*(loop.run_in_executor(pool, abs, 0)
                                       for _ in range(options.workers)))
                if channel is not None:
                    # LISTEN before the first sweep: a row inserted from now on is either
                    # announced or found by the sweep.
                    listener, listen_task = self._start_listener(channel)
                    await self._first(listener.attempted.wait())
                await self._guarded(self._sweep("startup"))
                if not (options.once or self.stopping):
                    self._announce(channel)
                    self.ready.set()
                    async with asyncio.TaskGroup() as loops:
                        loops.create_task(self._sweeper())
                        loops.create_task(self._notified() if channel else self._poller())
                # Stopping: let the batches in flight finish.
                while self._tasks:
                    await asyncio.gather(*list(self._tasks), return_exceptions=True)
                if self._crash is not None:
                    raise self._crash
        finally:
            if listen_task is not None:
                listen_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listen_task
            if self.listener is not None:
                self.report.reconnects = self.listener.reconnects
            remove_handlers()
            self.report.seconds = round(time.monotonic() - started, 3)
            with self._stop_lock:
                self._loop = None  # stop() after the end: nothing to do
        return self.report

    def _start_listener(self, channel: NotifyChannel) -> tuple[Listener, asyncio.Task[None]]:
        listener = Listener(channel, self._deliver, self.log, on_restored=self._sweep_now.set,
                            reconnect_max=self.options.reconnect_max)
        self.listener = listener
        return listener, asyncio.create_task(listener.run())

    def _announce(self, channel: NotifyChannel | None) -> None:
        every = f"a sweep every {self.options.sweep_interval:g} s"
        if channel is not None:
            how = f"LISTEN {channel.channel}, {every}"
        else:
            how = f"a poll every {self.options.interval:g} s, {every}"
            if getattr(self.store, "dialect_name", "") == "postgresql":
                self.log.note("hint", "the table has no pixelgrade_notify trigger (or it is "
                              "disabled): polling. `pixelgrade migrate` installs it, and new "
                              "rows are then announced as they are inserted")
        self.log.note("watching", f"watching for new rows: {how}", mode=self.report.mode,
                      channel=channel.channel if channel else None,
                      interval=self.options.interval,
                      sweep_interval=self.options.sweep_interval)

    # -- the loops -----------------------------------------------------------------------

    async def _sweeper(self) -> None:
        """A sweep every ``sweep_interval`` seconds, or at once when asked (``_sweep_now``)."""
        failures = 0
        while True:
            wait = self.options.sweep_interval if not failures else min(
                ERROR_BACKOFF_MAX, self.options.sweep_interval, 2.0 ** failures)
            if await self._idle(wait, self._sweep_now):
                return
            self._sweep_now.clear()
            failures = 0 if await self._guarded(self._sweep("sweep")) else failures + 1

    async def _poller(self) -> None:
        failures = 0
        while True:
            wait = self.options.interval if not failures else min(
                ERROR_BACKOFF_MAX, self.options.interval * 2 ** failures)
            if await self._idle(wait):
                return
            failures = 0 if await self._guarded(self._poll()) else failures + 1

    async def _notified(self) -> None:
        """Read and score the notified rows, a batch at a time (up to ``LIVE_BATCHES`` at
        once)."""
        self.counters.queue_depth("watch", self._queue.qsize())
        while True:
            payloads = await self._next_payloads()
            if payloads is None:
                return
            if not await self._guarded(self._read_notified(payloads)):
                self._sweep_now.set()  # the database failed: the sweep finds these rows later

    async def _next_payloads(self) -> list[str] | None:
        """The next notified ids (None when stopping): the first to arrive, plus those that
        arrive within ``window`` seconds, up to a batch."""
        queue = self._queue
        if queue.empty():
            got = asyncio.ensure_future(queue.get())
            stop = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({got, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not got.done():
                got.cancel()
                return None
            payloads = [got.result()]
        else:
            payloads = [queue.get_nowait()]
        if self.stopping:
            return None
        if queue.qsize() < self.options.batch_size - 1:
            await self._idle(self.options.window)
        while len(payloads) < self.options.batch_size and not queue.empty():
            payloads.append(queue.get_nowait())
        self.counters.queue_depth("watch", queue.qsize())
        if queue.empty():
            self._overflowing = False
        return list(dict.fromkeys(payloads))

    def _deliver(self, payload: str) -> None:
        """From the listener: a row's id, as text."""
        self.report.notifications += 1
        try:
            self._queue.put_nowait(payload)
            self.counters.queue_depth("watch", self._queue.qsize())
        except asyncio.QueueFull:
            if not self._overflowing:
                self._overflowing = True
                self.log.note("overflow", f"more than {QUEUE_LIMIT} new rows waiting: the "
                              "rest are left to the next sweep (starting now)")
            self._sweep_now.set()

    # -- units of work -------------------------------------------------------------------

    async def _sweep(self, via: str) -> None:
        """Every row still to do, from the first (except rows in flight or waiting for their
        retry), through the backfill engine."""
        self.report.sweeps += 1
        owner = object()
        collection = _Todo(self.store, self.selection, self.ledger, owner)
        before = self.report.processed
        await self._run_engine(collection, owner, via)
        if via == "startup":
            done = self.report.processed - before
            self.log.note("sweep", f"startup sweep: {done} image{'s' if done != 1 else ''} "
                          "that had no score", via=via, processed=done)

    async def _poll(self) -> None:
        """Rows still to do above the highest key seen (all of them for non-integer keys),
        then the re-opened rows below it, handed out as batches scored alongside each
        other."""
        self.report.polls += 1
        cursor = self.ledger.poll_cursor()
        await self._poll_rows(self.store.fetch_todo, cursor)
        if cursor is not None:  # with None, the read above covered every row to do
            await self._poll_rows(self.store.fetch_reopened, None)

    async def _poll_rows(self, fetch: Callable[[Selection, Any, int], list[Row]],
                         cursor: Any) -> None:
        """Claim and start the rows ``fetch`` finds after ``cursor``, a batch at a time."""
        while not self.stopping:
            fetched_at = self.ledger.clock()
            rows = await asyncio.to_thread(fetch, self.selection, cursor,
                                           self.options.batch_size)
            if not rows:
                return
            cursor = rows[-1].id
            self.ledger.see(row.id for row in rows)
            owner = object()
            kept = self.ledger.claim(rows, fetched_at, owner)
            if kept:
                await self._start_live_batch(kept, owner, "poll")

    async def _read_notified(self, payloads: list[str]) -> None:
        keys = []
        for payload in payloads:
            try:
                keys.append(self.store.key_from_json(payload))
            except (TypeError, ValueError):
                self.log.note("error", f"notification {payload!r} is not a key of "
                              f"{self.store.spec.table}: ignored", payload=payload)
        if not keys:
            return
        fetched_at = self.ledger.clock()
        rows = await asyncio.to_thread(self.store.fetch_rows, self.selection, keys)
        owner = object()
        # A notification is news (a new row, or a new URL): no waiting for a retry slot, and a
        # row in flight is read again once its result is in (its URL may have changed).
        kept = self.ledger.claim(rows, fetched_at, owner, honour_backoff=False,
                                 remember_in_flight=True)
        if kept:
            await self._start_live_batch(kept, owner, "notify")

    async def _start_live_batch(self, rows: list[Row], owner: object, via: str) -> None:
        """Score ``rows`` in a task of their own (waits for a free slot first)."""
        await self._live_slots.acquire()
        if self.stopping:
            self._live_slots.release()
            self.ledger.release(owner)
            return

        async def work() -> None:
            try:
                await self._guarded(self._run_engine(
                    _Given(self.store, self.selection, rows), owner, via))
            finally:
                self._live_slots.release()

        task = asyncio.create_task(work())
        self._tasks.add(task)
        task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        """A live batch ended; one that raised (a bug, not a database error) stops the watch,
        and ``run`` raises it once the rest is finished."""
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        if self._crash is None:
            self._crash = task.exception()
            self._request_stop(None)

    async def _run_engine(self, collection: _Batches, owner: object, via: str) -> None:
        """The backfill engine over ``collection``; claims still held at the end (work
        abandoned, or a write that failed for good) are released."""
        if self.stopping:
            self.ledger.release(owner)
            return
        assert self._scorer is not None
        collection.measure_latency = not isinstance(self.counters, NoCounters)
        engine: Engine[Row, RowResult] = Engine(
            collection, self._scorer, self._engine_options,
            on_batch=lambda done: self._record(done, via, collection),
            before_write=self._log_failures)
        self._engines.add(engine)
        try:
            await engine.run()
        finally:
            self._engines.discard(engine)
            self.ledger.release(owner)

    def _log_failures(self, results: list[RowResult]) -> None:
        """Append the batch's failures to the error log, *before* the batch is written (the
        engine's ``before_write``), as the backfill does: a watch killed between the commit
        and the log would otherwise leave a ``failed`` row with no line saying why, and the
        row is never tried again. A kill (or a failed write) before the commit costs a
        duplicate line instead: the row stays to do and is tried, and logged, again."""
        now = now_iso()
        records = []
        for result in results:
            record = result.error_record(self.ledger.next_attempt(result.row.id), now)
            if record is not None:
                records.append(record)
        self._error_log.append(records)

    def _record(self, done: BatchDone[RowResult], via: str, collection: _Batches) -> None:
        """After a batch is written: counts, retry schedule and a log line per image (its
        error-log records were appended before the write, by :meth:`_log_failures`)."""
        for result in done.results:
            attempts, retry_in = self.ledger.finish(result.row.id,
                                                    transient_failure=result.outcome is None)
            self.log.row(result, via, attempt=attempts, retry_in=retry_in)
        count_batch(self.report, done.results, done.written)
        self._count(done, collection)
        self._read_again(self.ledger.take_again())

    def _count(self, done: BatchDone[RowResult], collection: _Batches) -> None:
        """Tell :attr:`counters` each image's result, and the insert-to-score time of the rows
        written. The guarded write says only how many rows it wrote: when it left some alone
        (scored by someone else meanwhile), that many of the batch's last outcomes are counted
        ``not_written``, so the written statuses add up to the rows written."""
        left_alone = sum(1 for r in done.results if r.outcome is not None) - done.written
        written_at = datetime.fromtimestamp(collection.written_at, UTC)
        for result in reversed(done.results):
            kind = result.failure.kind if result.failure is not None else ""
            if result.outcome is not None and left_alone > 0:
                left_alone -= 1
                self.counters.image_done("watch", "not_written")
                continue
            self.counters.image_done("watch", result.kind, kind)  # type: ignore[arg-type]
            if result.outcome is not None and result.row.id in collection.created:
                seconds = seconds_since(collection.created[result.row.id], written_at)
                if seconds is not None:
                    self.counters.insert_to_score("watch", seconds)

    def _read_again(self, keys: Sequence[Any]) -> None:
        """Rows announced while they were in flight go back in the notification queue (read
        there like any notified row: only if they are still to do)."""
        for key in keys:
            try:
                self._queue.put_nowait(str(key))
            except asyncio.QueueFull:
                self._sweep_now.set()
                return

    # -- helpers -------------------------------------------------------------------------

    async def _guarded(self, work: Awaitable[None]) -> bool:
        """Run ``work``; a database error is logged (the rows stay to do) instead of ending
        the watch. Returns whether it succeeded."""
        try:
            await work
        except StoreError as exc:
            self.report.errors += 1
            self.log.note("error", f"{exc} (the rows stay to do and are tried again)",
                          error=str(exc))
            return False
        return True

    async def _idle(self, seconds: float, wake: asyncio.Event | None = None) -> bool:
        """Wait ``seconds`` (less if ``wake`` is set); True if stopping."""
        waits = [asyncio.ensure_future(self._stopping.wait())]
        if wake is not None:
            waits.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        return self.stopping

    async def _first(self, awaitable: Awaitable[Any]) -> None:
        """Wait for ``awaitable`` or a stop request, whichever comes first."""
        await self._idle_for(asyncio.ensure_future(awaitable))

    async def _idle_for(self, task: asyncio.Future[Any]) -> None:
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()

    def _install_handlers(self) -> Callable[[], None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._request_stop, signal.Signals(sig).name)

        def remove() -> None:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        return remove


def poll_interval(store: Store) -> float:
    """The default seconds between polls for ``store`` (see :data:`POLL_INTERVAL_SQLITE`)."""
    return POLL_INTERVAL_SQLITE if getattr(store, "dialect_name", "") == "sqlite" else (
        POLL_INTERVAL)


def watch(store: Store, options: WatchOptions, log: WatchLog | None = None, *,
          install_signal_handlers: bool = True, counters: Counters | None = None
          ) -> WatchReport:
    """Watch ``store`` until stopped (SIGINT/SIGTERM), or for one sweep with ``once``."""
    return Watcher(store, options, log, counters).run(
        install_signal_handlers=install_signal_handlers)


def _created_times(store: Store, ids: list[Any]) -> dict[Any, Any]:
    """The creation times of ``ids`` when the store has them (``store.created_times``), else
    nothing; a failure to read them costs only the insert-to-score times of this batch."""
    read = getattr(store, "created_times", None)
    if read is None or not ids:
        return {}
    try:
        return dict(read(ids))
    except StoreError:
        return {}


def _summary(report: WatchReport) -> str:
    text = (f"stopped after {report.seconds:.0f} s: {report.processed} images, "
            f"{report.scored} scored, {report.skipped} skipped, {report.failed} failed, "
            f"{report.retry_later} to retry")
    if report.not_written_already_done:
        text += f"; {report.not_written_already_done} were scored by someone else meanwhile"
    return text
