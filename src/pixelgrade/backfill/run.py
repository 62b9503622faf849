"""The image backfill: store + engine + scorer + checkpoint + error log + progress.

``run_backfill`` is what ``pixelgrade backfill`` calls; ``dry_run`` is ``--dry-run``: it checks
the connection and the columns, counts the rows to do, scores a small sample without writing
anything and estimates how long the real run will take.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from pixelgrade.backfill import checkpoint as checkpoints
from pixelgrade.backfill.engine import BatchDone, Engine, EngineOptions
from pixelgrade.backfill.errorlog import ErrorLog
from pixelgrade.backfill.executors import ChunkExecutor, open_executor
from pixelgrade.backfill.failures import FailureTally
from pixelgrade.backfill.images import (
    SCORE_TIMEOUT,
    ChunkScorer,
    Locator,
    RowResult,
    count_batch,
)
from pixelgrade.backfill.progress import ProgressView, Tally
from pixelgrade.backfill.work import Credentials, WorkSettings
from pixelgrade.errors import CheckpointError, StoreError
from pixelgrade.scoring import SCORER_VERSION, ScoringConfig
from pixelgrade.sources.http import HttpPolicy
from pixelgrade.sources.storage import StorageBucket
from pixelgrade.stores.base import Outcome, Row, Selection, Store
from pixelgrade.stores.sql import key_to_json


@dataclass(frozen=True)
class BackfillOptions:
    engine: EngineOptions = field(default_factory=EngineOptions)
    selection: Selection = field(default_factory=Selection)
    workers: int = 1
    #: Downloads in flight, in total over the workers.
    concurrency: int = 16
    #: Where rows are fetched and scored: ``local``, ``dask`` (with ``scheduler``) or
    #: ``dask-local`` (see :mod:`pixelgrade.backfill.executors`).
    executor: str = "local"
    scheduler: str | None = None
    #: Rows per task sent to a worker.
    chunk_size: int = 8
    checkpoint: Path = Path("backfill-checkpoint.json")
    error_log: Path = Path("backfill-errors.log")
    resume: bool = False
    url_template: str | None = None
    root: Path | None = None
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    http: HttpPolicy | None = None
    storage: StorageBucket | None = None
    #: Longest one image's scoring may take before its process is stopped (see work.py).
    score_timeout: float | None = SCORE_TIMEOUT
    #: The command's settings, recorded in the checkpoint for ``--resume`` (no secrets).
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class BackfillReport:
    """The end-of-run summary (``--json`` prints it)."""

    store: str
    todo_at_start: int
    processed: int = 0
    written: int = 0
    scored: int = 0
    skipped: int = 0
    failed: int = 0
    retry_later: int = 0
    not_written_already_done: int = 0
    seconds: float = 0.0
    images_per_second: float = 0.0
    interrupted: bool = False
    finished: bool = False
    resumed_from: Any = None
    retried_from_error_log: int = 0
    checkpoint: str = ""
    error_log: str = ""
    #: Failures (permanent and to retry) by kind, largest first, each with its first fix.
    failures: FailureTally = field(default_factory=FailureTally)

    @property
    def nothing_succeeded(self) -> bool:
        """True when rows were tried, none was scored or skipped, and most failed: the run
        as configured cannot work (a guard refusing every URL, a wrong --root...)."""
        tried = self.scored + self.skipped + self.failed + self.retry_later
        return (tried > 0 and self.scored + self.skipped == 0
                and self.failed + self.retry_later > tried / 2)

    def to_dict(self) -> dict[str, Any]:
        figures = {key: key_to_json(value) if key == "resumed_from" else value
                   for key, value in asdict(self).items() if key != "failures"}
        return {**figures, "failures": self.failures.to_list()}


class _StoreCollection:
    """Adapts a store + selection to the engine's Collection."""

    def __init__(self, store: Store, selection: Selection) -> None:
        self.store = store
        self.selection = selection

    def next_batch(self, after: Any, limit: int) -> list[Row]:
        return self.store.fetch_todo(self.selection, after, limit)

    def key(self, item: Row) -> Any:
        return item.id

    def write(self, results: Sequence[RowResult]) -> int:
        outcomes: list[Outcome] = [r.outcome for r in results if r.outcome is not None]
        return self.store.write(self.selection, outcomes)


def _http_policy(options: BackfillOptions) -> HttpPolicy:
    """The run's HTTP rules; the origins the operator configured (``--url-template``, the
    Storage project) are trusted by the SSRF guard, exactly as configured."""
    policy = options.http or HttpPolicy(max_bytes=options.scoring.max_bytes)
    return policy.trusting(options.url_template,
                           options.storage.project_url if options.storage else None)


def _selection_key(selection: Selection) -> dict[str, Any]:
    return {"retry_failed": selection.retry_failed,
            "rescore_version": selection.rescore_version}


def run_backfill(store: Store, options: BackfillOptions, console: Console,
                 progress: ProgressView, *, verbose: bool = False,
                 install_signal_handlers: bool = True) -> BackfillReport:
    """Run the backfill to the end, or until interrupted. Holds the table's backfill lock."""
    with store.lock():
        return asyncio.run(_run(store, options, console, progress, verbose,
                                install_signal_handlers))


async def _run(store: Store, options: BackfillOptions, console: Console,
               progress: ProgressView, verbose: bool,
               install_signal_handlers: bool) -> BackfillReport:
    selection_key = _selection_key(options.selection)
    error_log = ErrorLog(options.error_log)
    previous = checkpoints.load(options.checkpoint)
    start_after = None
    retry_rows: list[Row] = []
    if options.resume:
        if previous is None:
            console.print(f"No checkpoint at {options.checkpoint}: starting from the beginning "
                          "(rows already scored are not redone).", highlight=False)
        else:
            previous.check_belongs_to(store.identity(), selection_key, options.checkpoint)
            start_after = store.key_from_json(previous.cursor)
        retry_ids = [store.key_from_json(i) for i in error_log.retry_ids()]
        # Rows past the cursor are picked up by the keyset scan anyway (with no cursor, all of
        # them are): retrying them too would fetch, score and log them twice.
        if retry_ids and start_after is not None:
            retry_rows = await asyncio.to_thread(store.fetch_rows, options.selection, retry_ids)
            retry_rows = [r for r in retry_rows if r.id <= start_after]
    elif previous is not None and not previous.finished:
        previous.check_belongs_to(store.identity(), selection_key, options.checkpoint)
        console.print(f"Note: an unfinished run left {options.checkpoint}; starting over from "
                      "the first row still to do (use --resume to continue where it stopped).",
                      highlight=False)

    todo = await asyncio.to_thread(store.count_todo, options.selection, start_after)
    total = todo + len(retry_rows)
    if options.engine.limit is not None:
        total = min(total, options.engine.limit)
    report = BackfillReport(store=store.describe(), todo_at_start=total,
                            resumed_from=start_after, retried_from_error_log=len(retry_rows),
                            checkpoint=str(options.checkpoint), error_log=str(options.error_log))
    state = checkpoints.Checkpoint(store=store.identity(), selection=selection_key,
                                   cursor=key_to_json(start_after),
                                   settings=dict(options.settings))
    if options.resume and previous is not None:
        state.started_at = previous.started_at
    attempts = error_log.attempts() if options.resume else {}

    tally = Tally(total=total, batches=math.ceil(total / options.engine.batch_size) if total
                  else 0, started=time.monotonic())

    def log_failures(results: list[RowResult]) -> None:
        # Before the write, so a kill between commit and checkpoint cannot leave a failed row
        # without its line; a kill before the commit means the row is tried (and logged) again,
        # as the next attempt.
        now = checkpoints.now_iso()
        records = []
        for result in results:
            attempt = attempts.get(json.dumps(key_to_json(result.row.id)), 0) + 1
            record = result.error_record(attempt, now)
            if record is not None:
                records.append(record)
        error_log.append(records)

    def on_batch(done: BatchDone[RowResult]) -> None:
        if verbose:
            for result in done.results:
                _print_row(console, result)
        count_batch(report, done.results, done.written)
        report.failures.add(done.results)
        succeeded = sum(1 for r in done.results if r.kind in ("scored", "skipped"))
        retry = sum(1 for r in done.results if r.kind == "retry_later")
        failed = len(done.results) - succeeded - retry
        state.cursor = key_to_json(done.cursor)
        state.processed, state.written = report.processed, report.written
        state.scored, state.skipped, state.failed = report.scored, report.skipped, report.failed
        state.retry_later = report.retry_later
        checkpoints.save(options.checkpoint, state)
        tally.done += done.items
        tally.succeeded += succeeded
        tally.failed += failed
        tally.retry_later += retry
        tally.updated = time.monotonic()
        progress.batch(tally, done.index, succeeded, failed, retry)

    async with AsyncExitStack() as stack:
        executor = await stack.enter_async_context(
            open_executor(options.executor, options.workers, options.scheduler))
        if options.executor != "local":
            console.print(f"Fetching and scoring on {executor.describe()}.", highlight=False,
                          markup=False)
        scorer = _scorer(options, executor)
        stack.push_async_callback(scorer.aclose)
        engine: Engine[Row, RowResult] = Engine(
            _StoreCollection(store, options.selection), scorer,
            _enough_ahead(options, executor), start_after=start_after, retry_items=retry_rows,
            on_batch=on_batch, before_write=log_failures,
            on_retry=lambda exc, attempt, wait: console.print(
                f"{exc}; trying again in {wait:g} s (attempt {attempt + 1} of "
                f"{options.engine.write_attempts})", highlight=False))
        remove_handlers = _install_handlers(engine, console) if install_signal_handlers \
            else (lambda: None)
        # The rate shown while running and at the end count from the same moment: when the
        # workers are up and the first row is taken.
        tally.started = time.monotonic()
        progress.start(tally)
        try:
            summary = await engine.run()
        except StoreError as exc:
            raise StoreError(
                f"{exc}. The checkpoint {options.checkpoint} holds the last committed batch "
                f"({report.processed} rows done in this run): fix the cause, then continue "
                "with `pixelgrade backfill --resume`") from exc
        finally:
            progress.stop()
            remove_handlers()
    report.seconds = round(summary.seconds, 3)
    # The figure the last progress line showed, not a second measurement of the same run.
    report.images_per_second = round(tally.rate(), 2) if tally.done else 0.0
    report.interrupted = summary.interrupted
    report.finished = summary.exhausted and not summary.interrupted
    state.finished = report.finished
    state.cursor = key_to_json(summary.cursor)
    checkpoints.save(options.checkpoint, state)
    return report


def _enough_ahead(options: BackfillOptions, executor: ChunkExecutor) -> EngineOptions:
    """The engine options, with enough batches read ahead to keep every chunk slot of the
    executor filled (a Dask cluster of 100 workers takes more rows at once than two batches of
    100): rows waiting cost a few hundred bytes each, images are never held here. Batches
    smaller than a chunk are a request for small steps (gentle pacing, a quick stop on
    Ctrl-C), so their read-ahead stays as configured."""
    batch_size = options.engine.batch_size
    needed = math.ceil(executor.slots * options.chunk_size / batch_size) + 1
    if batch_size < options.chunk_size or needed <= options.engine.batches_ahead:
        return options.engine
    return dataclasses.replace(options.engine, batches_ahead=needed)


def _scorer(options: BackfillOptions, executor: ChunkExecutor) -> ChunkScorer:
    """The per-row work: chunks fetched and scored by ``executor``'s workers, each with its
    share of ``--concurrency``."""
    rate = options.engine.rate
    http = _http_policy(options)
    http.guard()  # a bad --allow-host is reported here, not by every worker
    settings = WorkSettings(
        scoring=options.scoring,
        http=http,
        concurrency=max(1, math.ceil(options.concurrency / executor.workers)),
        credentials=Credentials(
            options.storage.credentials() if options.storage is not None else {}),
        score_timeout=options.score_timeout,
        # --rate spaces the rows as they are handed out (the engine) and, per worker, its
        # share of download attempts, so retries (a 429 storm) do not add to the rate.
        attempt_rate=rate / executor.workers if rate else None)
    return ChunkScorer(executor, settings,
                       Locator(options.url_template, options.root, options.storage),
                       chunk_size=options.chunk_size)


def _install_handlers(engine: Engine[Row, RowResult], console: Console) -> Callable[[], None]:
    loop = asyncio.get_running_loop()

    def stop(name: str) -> None:
        if engine.stopping:
            console.print(f"\n{name} again: abandoning the images in flight (their rows stay "
                          "to do).", highlight=False)
        else:
            console.print(f"\n{name}: finishing the images already started, then saving the "
                          "checkpoint (press again to stop at once).", highlight=False)
        engine.request_stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, signal.Signals(sig).name)

    def remove() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return remove


def _print_row(console: Console, result: RowResult) -> None:
    outcome, failure = result.outcome, result.failure
    label = f"#{key_to_json(result.row.id)} {result.location or ''}"
    if outcome is not None and outcome.status == "scored":
        console.print(f"  {outcome.score:>3}  {label}", highlight=False)
    elif outcome is not None and outcome.status == "skipped":
        console.print(f"  N/A  {label}  skipped: {(outcome.details or {}).get('reason')}",
                      highlight=False)
    elif failure is not None:
        when = "will retry" if failure.transient else "failed"
        console.print(f"  N/A  {label}  {when}: {failure.message}", highlight=False)


@dataclass
class DryRunReport:
    store: str
    todo: int
    sample: list[dict[str, Any]]
    sample_seconds: float
    images_per_second: float | None
    estimated_seconds: float | None
    capabilities: dict[str, bool]
    scorer_version: str = SCORER_VERSION
    #: The sample's failures by kind, each with its first fix.
    failures: FailureTally = field(default_factory=FailureTally)

    @property
    def sample_failed(self) -> int:
        return self.failures.total

    @property
    def cannot_succeed(self) -> bool:
        """True when every row of the sample would fail: the real run would score nothing."""
        return bool(self.sample) and self.sample_failed == len(self.sample)

    def to_dict(self) -> dict[str, Any]:
        figures = {key: value for key, value in asdict(self).items() if key != "failures"}
        return {**figures, "failures": self.failures.to_list(),
                "cannot_succeed": self.cannot_succeed}


def dry_run(store: Store, options: BackfillOptions, sample_size: int = 20) -> DryRunReport:
    """Check, count, score a sample; write nothing (no rows, no checkpoint, no error log)."""
    todo = store.count_todo(options.selection)
    rows = store.fetch_todo(options.selection, None, min(sample_size, todo)) if todo else []
    if options.engine.limit is not None:
        todo = min(todo, options.engine.limit)

    async def score_sample() -> tuple[list[RowResult], float]:
        # The executor starts its workers first, so their start-up does not count against
        # the estimate.
        async with open_executor(options.executor, options.workers,
                                 options.scheduler) as executor:
            scorer = _scorer(options, executor)
            started = time.monotonic()
            try:
                results = list(await asyncio.gather(*(scorer(row) for row in rows)))
            finally:
                await scorer.aclose()
            return results, time.monotonic() - started

    results, seconds = asyncio.run(score_sample()) if rows else ([], 0.0)
    rate = len(results) / seconds if results and seconds > 0 else None
    if rate is not None and options.engine.rate is not None:
        rate = min(rate, options.engine.rate)
    estimate = None
    if rate:
        batches = math.ceil(todo / options.engine.batch_size)
        estimate = todo / rate + max(0, batches - 1) * options.engine.delay
    sample = []
    for result in results:
        outcome, failure = result.outcome, result.failure
        sample.append({
            "id": key_to_json(result.row.id), "location": result.location,
            "status": outcome.status if outcome else "retry_later",
            "score": outcome.score if outcome else None,
            "reason": failure.message if failure else (outcome.details or {}).get("reason")
            if outcome else None,
        })
    capabilities = getattr(store, "capabilities", None)
    failures = FailureTally()
    failures.add(results)
    return DryRunReport(
        store=store.describe(), todo=todo, sample=sample, sample_seconds=round(seconds, 3),
        images_per_second=None if rate is None else round(rate, 2),
        estimated_seconds=None if estimate is None else round(estimate, 1),
        capabilities=asdict(capabilities) if capabilities is not None else {},
        failures=failures,
    )


__all__ = ["BackfillOptions", "BackfillReport", "CheckpointError", "DryRunReport", "dry_run",
           "run_backfill"]
