"""The per-row work of the image backfill: find the bytes, score them, say what to write.

:class:`ChunkScorer` (the backfill): rows are grouped into chunks of a few, and each chunk is
fetched *and* scored in a worker process (:func:`pixelgrade.backfill.work.score_chunk`) run by
an executor (:mod:`pixelgrade.backfill.executors`: local processes or a Dask cluster). This
process only dispatches chunks and turns their small result dicts into :class:`RowResult`;
image bytes never reach it. A bounded number of chunks is in flight, so memory stays bounded
however many rows wait.

:class:`ImageScorer` (``watch`` and the gallery's re-score, one image at a time): an http(s)
URL is fetched here, asynchronously (:class:`~pixelgrade.sources.http.HttpFetcher`); a local
path is read by the scoring process itself. At most ``concurrency + 2 x workers`` images are
held between download and score.

Each row ends in one of three ways:

* scored or skipped (vector image): an :class:`~pixelgrade.stores.Outcome` to write;
* failed for good (404, not an image, over the size limit, a decoder that kills its process):
  an outcome with status ``failed`` and the reason, plus an error-log line;
* failed for now (timeout, 5xx, 429): no outcome (the row stays NULL), an error-log line
  marked transient, retried by ``--resume``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pixelgrade.backfill.errorlog import ErrorRecord
from pixelgrade.backfill.executors import ChunkCrashed, ChunkExecutor, ChunkTask, ChunkTimedOut
from pixelgrade.backfill.work import DETAIL_KEYS, WorkSettings, score_chunk
from pixelgrade.errors import (
    FetchError,
    ImageTooLargeError,
    ScoringTimeoutError,
    WorkerCrashError,
)
from pixelgrade.pool import scoring_pool
from pixelgrade.scoring import ScoringConfig, score_bytes
from pixelgrade.sources.files import read_file, resolve_local
from pixelgrade.sources.http import HttpFetcher, is_url, redact_url
from pixelgrade.sources.storage import StorageBucket
from pixelgrade.stores.base import Outcome, Row
from pixelgrade.stores.sql import key_to_json

#: What a row whose scoring process died is recorded with.
WORKER_CRASH_MESSAGE = (
    "the scoring process died on this image (the decoder crashed, or the process was killed, "
    "e.g. for memory); recorded as failed so the run goes on")


@dataclass(frozen=True)
class Failure:
    """Why a row has no score (for the error log)."""

    kind: str
    message: str
    transient: bool


@dataclass(frozen=True)
class RowResult:
    row: Row
    location: str | None
    outcome: Outcome | None
    failure: Failure | None

    @property
    def kind(self) -> str:
        """``scored``, ``skipped``, ``failed`` (all written) or ``retry_later`` (left NULL)."""
        return "retry_later" if self.outcome is None else self.outcome.status

    def error_record(self, attempt: int, time: str) -> ErrorRecord | None:
        """The error-log line for this row, or None when nothing went wrong."""
        if self.failure is None:
            return None
        return ErrorRecord(id=key_to_json(self.row.id), url=self.location,
                           kind=self.failure.kind, message=self.failure.message,
                           transient=self.failure.transient, attempt=attempt, time=time)


class BatchCounts(Protocol):
    """The running counts a backfill or watch report keeps."""

    processed: int
    written: int
    scored: int
    skipped: int
    failed: int
    retry_later: int
    not_written_already_done: int


def count_batch(counts: BatchCounts, results: Sequence[RowResult], written: int) -> None:
    """Add one written batch to ``counts``. Outcomes the guarded write skipped are rows that
    someone else scored meanwhile."""
    for result in results:
        kind = result.kind
        setattr(counts, kind, getattr(counts, kind) + 1)
    outcomes = sum(1 for result in results if result.outcome is not None)
    counts.not_written_already_done += max(0, outcomes - written)
    counts.processed += len(results)
    counts.written += written


def make_pool(workers: int) -> ProcessPoolExecutor:
    return scoring_pool(workers)


def score_data(data: bytes, config: ScoringConfig) -> dict[str, Any]:
    """Pool function: score bytes fetched by the parent."""
    return score_bytes(data, config).to_dict()


def score_path(path: str, config: ScoringConfig) -> dict[str, Any]:
    """Pool function: read a local file and score it."""
    try:
        data = read_file(path, config.max_bytes)
    except ImageTooLargeError as exc:
        return {"status": "failed", "reason": str(exc), "kind": "too_large"}
    except FetchError as exc:
        return {"status": "fetch_error", "reason": str(exc), "kind": exc.kind,
                "transient": exc.transient}
    return score_bytes(data, config).to_dict()


class Locator:
    """Turns the URL column's value into a URL or a local path.

    ``template`` (``--url-template``) may use ``{path}`` (the stored value, leading ``/``
    removed) and ``{id}``; ``root`` is the folder local paths must lead into (see
    :func:`~pixelgrade.sources.files.resolve_local`; None: no local paths); with
    ``storage`` (``--bucket``), stored paths are objects in that Supabase Storage bucket.
    """

    def __init__(self, template: str | None = None, root: Path | None = None,
                 storage: StorageBucket | None = None) -> None:
        self.template = template
        self.root = root
        self.storage = storage

    def __call__(self, row: Row) -> str:
        value = (row.location or "").strip()
        if not value:
            raise FetchError("the row has no image URL or path", kind="no_location")
        if self.storage is not None and not is_url(value):
            return self.storage.url_for(value)
        if self.template and not is_url(value):
            value = (self.template.replace("{path}", value.lstrip("/"))
                     .replace("{id}", str(row.id)))
        if is_url(value):
            return value
        return resolve_local(value, self.root)


#: Default longest wait for one image's score (seconds). An image at the 100 MP limit takes
#: about 2 s here; the rest is room for a slow or busy machine.
SCORE_TIMEOUT = 120.0


def _stop_processes(pool: Executor) -> None:
    """Kill a process pool's workers: the only way to stop one stuck in native code. The pool
    is broken afterwards (its other futures fail with BrokenProcessPool)."""
    kill = getattr(pool, "kill_workers", None)  # public from Python 3.14
    if callable(kill):
        kill()
        return
    processes = getattr(pool, "_processes", None) or {}  # CPython 3.11-3.13's own table
    for process in list(processes.values()):
        process.kill()


class ImageScorer:
    """``await scorer(row)`` -> :class:`RowResult`. One per run."""

    #: The pool functions; replaceable so tests can stand in a decoder that crashes.
    score_data_function: Callable[[bytes, ScoringConfig], dict[str, Any]] = staticmethod(
        score_data)
    score_path_function: Callable[[str, ScoringConfig], dict[str, Any]] = staticmethod(
        score_path)

    def __init__(self, pool: Executor, workers: int, config: ScoringConfig,
                 fetcher: HttpFetcher | None, locator: Locator, *,
                 pace: Callable[[], Awaitable[object]] | None = None,
                 score_timeout: float | None = SCORE_TIMEOUT,
                 on_pool_replaced: Callable[[], object] | None = None) -> None:
        self.pool = pool
        #: Called each time a broken (or hung) pool is replaced: the service's
        #: worker-restarts counter.
        self._on_pool_replaced = on_pool_replaced
        #: Longest wait for one image's score, queueing in the pool included (None: no limit).
        self.score_timeout = score_timeout
        #: Awaited before a local file is read (``--rate``); URLs are paced by the fetcher.
        self._pace = pace
        self.workers = workers
        self._replacements: list[ProcessPoolExecutor] = []
        self._isolation = asyncio.Lock()
        self.config = config
        self.fetcher = fetcher
        self.locator = locator
        self._scoring_slots = asyncio.Semaphore(max(1, 2 * workers))
        # Rows between "download started" and "score received": bounds the image bytes held in
        # memory however much faster the network is than the CPU (downloads in flight plus
        # images waiting for a scoring process).
        concurrency = fetcher.concurrency if fetcher is not None else 0
        self._pipeline_slots = asyncio.Semaphore(max(1, concurrency + 2 * workers))

    async def __call__(self, row: Row) -> RowResult:
        async with self._pipeline_slots:
            return await self._score_row(row)

    async def _score_row(self, row: Row) -> RowResult:
        try:
            location = self.locator(row)
        except FetchError as exc:
            return self._failed(row, None, exc.kind, str(exc), transient=exc.transient)
        shown = shown_location(location)
        try:
            if is_url(location):
                if self.fetcher is None:
                    raise FetchError("http(s) URLs are not enabled for this run", kind="config")
                data = await self.fetcher.fetch(location)
                async with self._scoring_slots:
                    report = await self._in_pool(self.score_data_function, data)
                del data
            else:
                if self._pace is not None:
                    await self._pace()
                async with self._scoring_slots:
                    report = await self._in_pool(self.score_path_function, location)
        except ScoringTimeoutError as exc:
            return self._failed(row, shown, "scoring_timeout", str(exc), transient=False)
        except WorkerCrashError as exc:
            return self._failed(row, shown, "worker_crash", str(exc), transient=False)
        except ImageTooLargeError as exc:
            return self._failed(row, shown, "too_large", str(exc), transient=False)
        except FetchError as exc:
            return self._failed(row, shown, exc.kind, str(exc), transient=exc.transient)
        return row_result(row, shown, report)

    async def _in_pool(self, function: Callable[[Any, ScoringConfig], dict[str, Any]],
                       argument: Any) -> dict[str, Any]:
        """Run ``function(argument, config)`` in the pool, surviving a worker that dies or
        hangs.

        A decoder that crashes (a segfault on hostile bytes) or a worker killed for memory
        breaks the whole pool, failing every image in flight. A score not back within
        ``score_timeout`` (a decoder stuck in a loop) cannot be interrupted, so the pool's
        processes are stopped, which breaks it the same way. The pool is replaced, and each
        image that was in flight is tried again alone in a fresh process: the ones that pass
        are scored as usual, the one that kills its process again raises WorkerCrashError,
        the one that times out again ScoringTimeoutError.
        """
        pool = self.pool
        try:
            return await self._run(pool, function, argument)
        except BrokenProcessPool:
            pass
        except TimeoutError:
            _stop_processes(pool)
        if self.pool is pool:  # the first image to notice replaces the pool for everyone
            self.pool = scoring_pool(self.workers)
            self._replacements.append(self.pool)
            if self._on_pool_replaced is not None:
                self._on_pool_replaced()
        async with self._isolation:
            solo = scoring_pool(1)
            try:
                return await self._run(solo, function, argument)
            except BrokenProcessPool as exc:
                raise WorkerCrashError(WORKER_CRASH_MESSAGE) from exc
            except TimeoutError as exc:
                _stop_processes(solo)
                raise ScoringTimeoutError(
                    f"scoring this image took longer than {self.score_timeout:g} s, alone in "
                    "a process (the decoder may be stuck on hostile bytes); the process was "
                    "stopped and the row recorded as failed so the run goes on") from exc
            finally:
                solo.shutdown(wait=False, cancel_futures=True)

    async def _run(self, pool: Executor, function: Callable[[Any, ScoringConfig], Any],
                   argument: Any) -> Any:
        future = asyncio.get_running_loop().run_in_executor(pool, function, argument,
                                                            self.config)
        return await asyncio.wait_for(future, self.score_timeout)

    def close(self) -> None:
        """Shut down the pools this scorer made to replace broken ones."""
        for pool in self._replacements:
            pool.shutdown(wait=True, cancel_futures=True)
        self._replacements.clear()

    def _failed(self, row: Row, shown: str | None, kind: str, message: str, *,
                transient: bool) -> RowResult:
        return failed_result(row, shown, kind, message, transient=transient)


def row_result(row: Row, shown: str | None, report: dict[str, Any]) -> RowResult:
    """The :class:`RowResult` of a worker's result dict (see :mod:`pixelgrade.backfill.work`)."""
    if report["status"] == "fetch_error":
        return failed_result(row, shown, report["kind"], report["reason"],
                             transient=report["transient"])
    details = {key: report[key] for key in DETAIL_KEYS if key in report}
    outcome = Outcome(row.id, report["status"], report.get("score"), details,
                      source=row.location)
    failure = None
    if report["status"] == "failed":
        failure = Failure(report.get("kind", "decode"), report["reason"], transient=False)
    return RowResult(row, shown, outcome, failure)


def failed_result(row: Row, shown: str | None, kind: str, message: str, *,
                  transient: bool) -> RowResult:
    """A row without a score: recorded ``failed`` (with the reason) unless ``transient``."""
    from pixelgrade.scoring import SCORER_VERSION

    failure = Failure(kind, message, transient)
    outcome = None if transient else Outcome(
        row.id, "failed", None, {"reason": message, "kind": kind,
                                 "scorer_version": SCORER_VERSION}, source=row.location)
    return RowResult(row, shown, outcome, failure)


def shown_location(location: str) -> str:
    """A location fit for the error log and messages (no credentials in URLs)."""
    return redact_url(location) if is_url(location) else location


#: A row whose scoring outlasted ``WorkSettings.score_timeout`` alone in a process.
_TIMED_OUT: dict[str, Any] = {"status": "scoring_timeout"}


class _Pending:
    """A row waiting for its chunk."""

    __slots__ = ("location", "row", "waiter")

    def __init__(self, row: Row, location: str, waiter: asyncio.Future[RowResult]) -> None:
        self.row = row
        self.location = location
        self.waiter = waiter


class ChunkScorer:
    """``await scorer(row)`` -> :class:`RowResult`; rows are fetched and scored in chunks.

    The rows that arrive together (the engine hands over a batch's rows at once) are grouped
    into chunks of up to ``chunk_size``; a row arriving alone (under ``--rate``) is sent alone,
    without waiting for company. At most ``executor.slots`` chunks are in flight; the others
    wait here as rows, holding no image bytes.

    A chunk whose process dies (:class:`~pixelgrade.backfill.executors.ChunkCrashed`): each
    of its rows is tried again alone in a fresh process; the row that kills that process too is
    recorded ``failed`` with kind ``worker_crash``, the others are scored as usual. ``task`` is
    the function the workers run (:func:`~pixelgrade.backfill.work.score_chunk`; tests stand in
    one that crashes).
    """

    def __init__(self, executor: ChunkExecutor, settings: WorkSettings, locator: Locator, *,
                 chunk_size: int = 8, task: ChunkTask = score_chunk) -> None:
        if chunk_size < 1:
            raise ValueError("--chunk-size must be at least 1")
        self.executor = executor
        self.settings = settings
        self.locator = locator
        self.chunk_size = chunk_size
        self.task = task
        self._pending: list[_Pending] = []
        self._flush_scheduled = False
        self._slots = asyncio.Semaphore(max(1, executor.slots))
        self._chunks: set[asyncio.Task[None]] = set()

    async def __call__(self, row: Row) -> RowResult:
        try:
            location = self.locator(row)
        except FetchError as exc:
            return failed_result(row, None, exc.kind, str(exc), transient=exc.transient)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[RowResult] = loop.create_future()
        self._pending.append(_Pending(row, location, waiter))
        if len(self._pending) >= self.chunk_size:
            self._dispatch()
        elif not self._flush_scheduled:
            # After the rows handed over in this turn of the event loop have joined the queue.
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await waiter

    def _flush(self) -> None:
        self._flush_scheduled = False
        while self._pending:
            self._dispatch()

    def _dispatch(self) -> None:
        chunk = self._pending[:self.chunk_size]
        del self._pending[:self.chunk_size]
        task = asyncio.create_task(self._run(chunk))
        self._chunks.add(task)
        task.add_done_callback(self._chunks.discard)

    async def _run(self, chunk: list[_Pending]) -> None:
        try:
            reports = await self._score([pending.location for pending in chunk])
        except BaseException as exc:
            for pending in chunk:
                if pending.waiter.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    pending.waiter.cancel()
                else:
                    pending.waiter.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for pending, report in zip(chunk, reports, strict=True):
            if pending.waiter.done():  # abandoned (a second Ctrl-C)
                continue
            shown = shown_location(pending.location)
            if report is None:
                result = failed_result(pending.row, shown, "worker_crash",
                                       WORKER_CRASH_MESSAGE, transient=False)
            elif report is _TIMED_OUT:
                result = failed_result(pending.row, shown, "scoring_timeout",
                                       self._timeout_message(), transient=False)
            else:
                result = row_result(pending.row, shown, report)
            pending.waiter.set_result(result)

    def _timeout_message(self) -> str:
        return (f"scoring this image took longer than {self.settings.score_timeout:g} s, alone "
                "in a process (the decoder may be stuck on hostile bytes); the process was "
                "stopped and the row recorded as failed so the run goes on")

    async def _score(self, locations: list[str]) -> list[dict[str, Any] | None]:
        """The chunk's result dicts; None for a row that killed its process, ``_TIMED_OUT``
        for one whose scoring outlasted ``score_timeout`` alone in a process."""
        async with self._slots:
            try:
                return list(await self.executor.run(self.task, locations, self.settings))
            except ChunkCrashed:
                pass
        return list(await asyncio.gather(*(self._alone(location) for location in locations)))

    async def _alone(self, location: str) -> dict[str, Any] | None:
        try:
            return await self.executor.run_alone(self.task, location, self.settings)
        except ChunkTimedOut:
            return _TIMED_OUT
        except ChunkCrashed:
            return None

    async def aclose(self) -> None:
        """Cancel the chunks still in flight (after an abandoned run) and wait for them."""
        for pending in self._pending:
            pending.waiter.cancel()
        self._pending.clear()
        chunks = list(self._chunks)
        for chunk in chunks:
            chunk.cancel()
        if chunks:
            await asyncio.gather(*chunks, return_exceptions=True)
