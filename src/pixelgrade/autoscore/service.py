"""Score these rows now: the one service behind the webhook, ``POST /api/images/{id}/score``,
uploads and re-scores.

A row's key goes into a bounded queue (:meth:`ScoreService.submit`); a few worker tasks take
what is waiting (up to ``batch_size`` keys at a time), read those rows with
``store.fetch_rows(Selection(), keys)`` (only rows still without a score come back: a row the
app scored meanwhile is left alone), score them with the backfill's
:class:`~pixelgrade.backfill.images.ImageScorer` and write each result with the guarded
``store.write(Selection(), ...)``. Uploads and re-scores bring rows (or bytes) of their own and
call :meth:`ScoreService.score_data` and :meth:`ScoreService.finish` directly, so every path
writes, logs and counts the same way:

* scoring survives a scoring process that crashes or hangs: the ImageScorer replaces its
  pool, and the image that killed it is recorded ``failed`` with kind ``worker_crash`` (or
  ``scoring_timeout``);
* failures are appended to the error log (:class:`~pixelgrade.backfill.errorlog.ErrorLog`,
  the format of ``watch`` and the backfill) *before* the write, as ``watch`` does;
* what happened is reported to a :class:`~pixelgrade.service.counters.Counters`.

When the queue is full, :meth:`~ScoreService.submit` raises :class:`ServiceBusy` at once (the
webhook answers 503 with ``Retry-After``); the row keeps no score, so ``watch``'s next sweep
or a backfill finds it. Stopping (:meth:`~ScoreService.aclose`) abandons what is still
queued or in flight the same way: nothing is lost, it is only left to do.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from pixelgrade.backfill.checkpoint import now_iso
from pixelgrade.backfill.errorlog import ErrorLog, ErrorRecord
from pixelgrade.backfill.images import ImageScorer, Locator, RowResult
from pixelgrade.errors import ScoringTimeoutError, StoreError, WorkerCrashError
from pixelgrade.scoring import ScoringConfig
from pixelgrade.service.counters import Counters, NoCounters, Path
from pixelgrade.sources.http import HttpFetcher
from pixelgrade.stores.base import Row, Selection, Store
from pixelgrade.stores.sql import key_to_json

log = logging.getLogger("pixelgrade.autoscore")

#: Keys waiting to be scored, at most (``submit`` raises :class:`ServiceBusy` beyond).
QUEUE_SIZE = 1000
#: Worker tasks: batches read, scored and written at the same time (not scoring processes:
#: those are the ImageScorer's pool).
TASKS = 4
#: Keys a worker takes from the queue together (one ``fetch_rows`` for all of them).
BATCH_SIZE = 16
#: What a full queue asks callers to wait before trying again, seconds.
RETRY_AFTER = 30
#: A transient database error on a write is tried again after these pauses, seconds.
WRITE_RETRIES = (0.5, 2.0)


class ServiceBusy(Exception):
    """The queue is full: try again in ``retry_after`` seconds (the row keeps no score until
    then, or until a sweep finds it)."""

    def __init__(self, depth: int, retry_after: int) -> None:
        super().__init__(f"{depth} rows are waiting to be scored, the most this server "
                         f"queues; try again in {retry_after} s (the row keeps no score "
                         "until then; `pixelgrade watch`'s next sweep or a backfill also "
                         "finds it)")
        self.depth = depth
        self.retry_after = retry_after


class ServiceStopped(Exception):
    """The service is not running (not started yet, or stopping)."""


@dataclass(frozen=True)
class Done:
    """What became of one row.

    ``status``: ``scored``, ``skipped``, ``failed`` (written), ``retry_later`` (a transient
    failure, or a database error on the write: left without a score), ``not_written``
    (scored, but the row was scored by someone else meanwhile: that result is kept) or
    ``not_needed`` (the row has a score already, or no longer exists: nothing was done).
    """

    key: Any
    status: str
    score: int | None = None
    kind: str = ""
    message: str = ""
    result: RowResult | None = None

    @property
    def written(self) -> bool:
        return self.status in ("scored", "skipped", "failed")

    def to_dict(self) -> dict[str, Any]:
        return {"id": key_to_json(self.key), "status": self.status, "score": self.score,
                "kind": self.kind or None, "message": self.message or None}


@dataclass
class _Item:
    key: Any
    path: Path
    #: time.time() of the row's insert, when known (for ``insert_to_score``).
    inserted_at: float | None
    future: asyncio.Future[Done]


class ScoreService:
    """Scores rows of ``store`` by key, in the background (see the module docstring).

    Use it as ``async with ScoreService(...) as service:`` (or :meth:`start` and
    :meth:`aclose`) inside the event loop that serves requests. ``scorer`` is the run's
    :class:`ImageScorer`; build it with ``on_pool_replaced=counters.worker_restarted`` so that
    replaced pools are counted. ``error_log``: where failures are appended (None: nowhere).
    """

    def __init__(self, store: Store, scorer: ImageScorer, *, error_log: ErrorLog | None = None,
                 counters: Counters | None = None, queue_size: int = QUEUE_SIZE,
                 tasks: int = TASKS, batch_size: int = BATCH_SIZE,
                 retry_after: int = RETRY_AFTER) -> None:
        if queue_size < 1 or tasks < 1 or batch_size < 1:
            raise ValueError("queue_size, tasks and batch_size must be at least 1")
        self.store = store
        self.scorer = scorer
        self.error_log = error_log
        self.counters: Counters = counters if counters is not None else NoCounters()
        self.queue_size = queue_size
        self.tasks = tasks
        self.batch_size = batch_size
        self.retry_after = retry_after
        self.selection = Selection()
        self._queue: asyncio.Queue[_Item] | None = None
        self._queued: dict[str, _Item] = {}
        self._depths: Counter[str] = Counter()
        self._tasks: list[asyncio.Task[None]] = []
        self._attempts: Counter[str] = Counter()
        self._stopping = False

    @classmethod
    def create(cls, store: Store, pool: Executor, workers: int, config: ScoringConfig,
               fetcher: HttpFetcher | None, locator: Locator, *,
               counters: Counters | None = None, **options: Any) -> ScoreService:
        """A service with an :class:`ImageScorer` of its own over ``pool`` (``workers``
        processes), whose replaced pools it counts and shuts down when closed. ``options``:
        those of the constructor."""
        counters = counters if counters is not None else NoCounters()
        scorer = ImageScorer(pool, workers, config, fetcher, locator,
                             on_pool_replaced=counters.worker_restarted)
        service = cls(store, scorer, counters=counters, **options)
        service._owns_scorer = True
        return service

    # -- running ---------------------------------------------------------------------------

    async def start(self, *, warm: bool = True) -> None:
        """Start the worker tasks (in the running event loop). ``warm``: start the scoring
        processes first, as ``watch`` does, so the first rows do not wait for them (a second
        or two on a cold machine: the whole tail of the insert-to-score latency otherwise)."""
        if self._tasks:
            return
        if warm:
            loop = asyncio.get_running_loop()
            pool = self.scorer.pool
            await asyncio.gather(*(loop.run_in_executor(pool, abs, 0)
                                   for _ in range(self.scorer.workers)))
        self._queue = asyncio.Queue(self.queue_size)
        self._stopping = False
        self._tasks = [asyncio.create_task(self._work(), name=f"pixelgrade-autoscore-{n}")
                       for n in range(self.tasks)]

    async def aclose(self) -> None:
        """Stop: rows still queued or in flight are abandoned (they keep no score, and the
        next sweep finds them)."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for item in self._queued.values():
            if not item.future.done():
                item.future.cancel()
        self._queued.clear()
        self._depths.clear()
        self._queue = None
        if self._owns_scorer:
            await asyncio.to_thread(self.scorer.close)  # the pools that replaced broken ones

    async def __aenter__(self) -> ScoreService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def alive(self) -> bool:
        """Whether the workers are running (for a health check)."""
        return bool(self._tasks) and not self._stopping and not any(
            task.done() for task in self._tasks)

    @property
    def depth(self) -> int:
        """Keys waiting to be scored now."""
        return self._queue.qsize() if self._queue is not None else 0

    # -- by key ----------------------------------------------------------------------------

    def submit(self, key: Any, path: Path = "webhook", *, inserted_at: float | None = None
               ) -> asyncio.Future[Done]:
        """Queue ``key`` (a value of the id column) to be scored; returns at once, with a
        future of its :class:`Done`. A key already waiting is queued once (its future is
        returned). Raises :class:`ServiceBusy` when the queue is full, :class:`ServiceStopped`
        when the service is not running."""
        if self._queue is None or self._stopping:
            raise ServiceStopped("the scoring service is not running")
        name = _name(key)
        waiting = self._queued.get(name)
        if waiting is not None and not waiting.future.done():
            return waiting.future
        item = _Item(key, path, inserted_at, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            raise ServiceBusy(self._queue.qsize(), self.retry_after) from None
        self._queued[name] = item
        self._depth(path, +1)
        return item.future

    async def score(self, key: Any, path: Path = "api", *, inserted_at: float | None = None
                    ) -> Done:
        """:meth:`submit` ``key`` and wait for its result."""
        return await asyncio.shield(self.submit(key, path, inserted_at=inserted_at))

    async def _work(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            items = [await queue.get()]
            while len(items) < self.batch_size and not queue.empty():
                items.append(queue.get_nowait())
            for item in items:
                self._queued.pop(_name(item.key), None)
                self._depth(item.path, -1)
            try:
                await self._batch(items)
            except asyncio.CancelledError:
                for item in items:
                    if not item.future.done():
                        item.future.cancel()
                raise
            except Exception as exc:  # a bug must not kill the worker: say so, go on
                log.exception("scoring a batch of %d rows failed", len(items))
                for item in items:
                    if not item.future.done():
                        item.future.set_result(Done(item.key, "retry_later", kind="error",
                                                    message=str(exc)))

    async def _batch(self, items: list[_Item]) -> None:
        try:
            rows = await asyncio.to_thread(self.store.fetch_rows, self.selection,
                                           [item.key for item in items])
        except StoreError as exc:
            log.warning("cannot read rows %s: %s (they keep no score and are tried again by "
                        "the next sweep)", ", ".join(_name(i.key) for i in items), exc)
            for item in items:
                item.future.set_result(Done(item.key, "retry_later", kind="database",
                                            message=str(exc)))
            return
        by_name = {_name(row.id): row for row in rows}
        todo = [(item, by_name[_name(item.key)]) for item in items
                if _name(item.key) in by_name]
        for item in items:
            if _name(item.key) not in by_name:
                item.future.set_result(Done(
                    item.key, "not_needed",
                    message="the row has a score already, or does not exist"))
        if not todo:
            return
        results = await asyncio.gather(*(self.scorer(row) for _, row in todo))
        for (item, _), done in zip(todo, await self.finish(
                list(results), [item.path for item, _ in todo],
                [item.inserted_at for item, _ in todo]), strict=True):
            if not item.future.done():
                item.future.set_result(done)

    # -- rows and bytes brought by the caller (uploads, re-scores) -------------------------

    async def score_row(self, row: Row, path: Path, *, overwrite: bool = False,
                        raise_errors: bool = False) -> Done:
        """Score ``row`` now (not through the queue) and write the result: guarded, or,
        with ``overwrite`` (a re-score), whatever the row holds. ``raise_errors``: a
        database error on the write raises (else the row is left ``retry_later``)."""
        result = await self.scorer(row)
        return (await self.finish([result], [path], overwrite=overwrite,
                                  raise_errors=raise_errors))[0]

    async def score_data(self, data: bytes, path: Path = "upload") -> dict[str, Any]:
        """Score image bytes in the scoring processes, surviving a process that dies on them:
        the pool is replaced, and :class:`~pixelgrade.errors.WorkerCrashError` (or its
        subclass :class:`~pixelgrade.errors.ScoringTimeoutError`, for a hang) is raised,
        after the error log and the counters have recorded it. Returns the report as a dict
        (``status``, ``score``, ``reason``...)."""
        scorer = self.scorer
        try:
            # The ImageScorer's crash-safe call (the backfill's): pool replaced, image alone.
            return await scorer._in_pool(scorer.score_data_function, data)
        except WorkerCrashError as exc:
            kind = "scoring_timeout" if isinstance(exc, ScoringTimeoutError) else "worker_crash"
            self.refused(path, kind, str(exc), url=f"({path}: {len(data):,} bytes)")
            raise

    def refused(self, path: Path, kind: str, message: str, *, url: str | None = None) -> None:
        """Record an image that failed before it had a row (an upload refused): an error-log
        line without an id, and a ``failed`` image in the counters."""
        self.counters.image_done(path, "failed", kind)
        if self.error_log is not None:
            try:
                self.error_log.append([ErrorRecord(id=None, url=url, kind=kind,
                                                   message=message, transient=False,
                                                   attempt=1, time=now_iso())])
            except Exception as exc:
                log.error("cannot append to the error log: %s", exc)

    async def finish(self, results: Sequence[RowResult], paths: Sequence[Path],
                     inserted_at: Sequence[float | None] | None = None, *,
                     overwrite: bool = False, raise_errors: bool = False) -> list[Done]:
        """Log, write and count ``results`` (one path per result): the one write path.

        Failures go to the error log first (so a kill after the write cannot lose a failed
        row's reason); each outcome is then written with the guarded ``store.write`` (or
        ``set_result`` with ``overwrite``), one row at a time so that each row's answer says
        whether it was written."""
        inserted = list(inserted_at) if inserted_at is not None else [None] * len(results)
        self._log_failures(results)
        written = await self._write(results, overwrite, raise_errors)
        now = time.time()
        done = []
        for result, path, was_written, at in zip(results, paths, written, inserted,
                                                  strict=True):
            item = _done(result, was_written)
            self.counters.image_done(path, item.status, item.kind)  # type: ignore[arg-type]
            if at is not None and item.written:
                self.counters.insert_to_score(path, max(0.0, now - at))
            done.append(item)
        return done

    def _log_failures(self, results: Sequence[RowResult]) -> None:
        if self.error_log is None:
            return
        records = []
        stamp = now_iso()
        for result in results:
            if result.failure is None:
                continue
            name = _name(result.row.id)
            self._attempts[name] += 1
            record = result.error_record(self._attempts[name], stamp)
            if record is not None:
                records.append(record)
        try:
            self.error_log.append(records)
        except Exception as exc:  # a full disk must not stop the scores being written
            log.error("cannot append to the error log: %s", exc)

    async def _write(self, results: Sequence[RowResult], overwrite: bool,
                     raise_errors: bool) -> list[bool | None]:
        """Per result: True written, False left alone by the guard, None nothing to write
        (a transient failure) or the write failed (logged)."""
        def write_all() -> list[bool | None]:
            written: list[bool | None] = []
            for result in results:
                outcome = result.outcome
                if outcome is None:
                    written.append(None)
                    continue
                written.append(self._write_one(outcome, overwrite, raise_errors))
            return written

        return await asyncio.to_thread(write_all)

    def _write_one(self, outcome: Any, overwrite: bool, raise_errors: bool) -> bool | None:
        for pause in (*WRITE_RETRIES, None):
            try:
                if overwrite:  # refused (False) only when the row's URL changed meanwhile
                    return bool(self.store.set_result(outcome))  # type: ignore[attr-defined]
                return self.store.write(self.selection, [outcome]) == 1
            except StoreError as exc:
                if pause is None or not exc.transient:
                    if raise_errors:
                        raise
                    log.warning("cannot write the result of row %s: %s (it keeps no score "
                                "and is tried again by the next sweep)", _name(outcome.id),
                                exc)
                    return None
                time.sleep(pause)
        return None

    def _depth(self, path: Path, change: int) -> None:
        self._depths[path] += change
        self.counters.queue_depth(path, max(0, self._depths[path]))


def _done(result: RowResult, written: bool | None) -> Done:
    outcome, failure = result.outcome, result.failure
    kind = failure.kind if failure is not None else ""
    message = failure.message if failure is not None else ""
    if outcome is None:
        return Done(result.row.id, "retry_later", None, kind, message, result)
    if written is None:
        return Done(result.row.id, "retry_later", None, "database",
                    "the result could not be written (see the server's log)", result)
    if not written:
        return Done(result.row.id, "not_written", outcome.score, kind,
                    "the row was scored by someone else meanwhile; that result is kept",
                    result)
    return Done(result.row.id, outcome.status, outcome.score, kind, message, result)


def _name(key: Any) -> str:
    """One spelling of a key, whichever way it arrived (5, "5", a UUID or its text)."""
    return str(key)
