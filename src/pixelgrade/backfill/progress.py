"""Progress for people: a live Rich bar on a terminal, the seed's plain lines elsewhere.

Plain lines (logs, CI, ``nohup``) keep the original script's wording so existing habits and
log searches still work::

    Batch 3/50 complete: 10 succeeded, 0 failed
    Progress: 6% complete (30/500 images)
    Estimated time remaining: 2 minutes
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)


@dataclass
class Tally:
    total: int
    batches: int
    done: int = 0
    succeeded: int = 0
    failed: int = 0
    retry_later: int = 0
    started: float = 0.0
    #: When the last batch was counted (0: not yet): every figure shown for a batch, and the
    #: run's final images/s, count to this same moment.
    updated: float = 0.0

    def rate(self) -> float:
        elapsed = (self.updated or time.monotonic()) - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta_seconds(self) -> float | None:
        rate = self.rate()
        return (self.total - self.done) / rate if rate > 0 else None


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 1.5:
        return "1 second"
    if seconds < 90:
        return f"{round(seconds)} seconds"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} minutes"
    return f"{seconds / 3600:.1f} hours"


class PlainProgress:
    """The seed's lines, one group per batch (or every ``every_seconds`` on big runs)."""

    def __init__(self, console: Console, every_seconds: float = 5.0) -> None:
        self.console = console
        self.every_seconds = every_seconds
        self._last = 0.0

    def start(self, tally: Tally) -> None:
        self._last = time.monotonic()

    def batch(self, tally: Tally, index: int, succeeded: int, failed: int,
              retry: int = 0) -> None:
        now = time.monotonic()
        quiet = tally.batches > 20 and now - self._last < self.every_seconds
        if quiet and tally.done < tally.total:
            return
        self._last = now
        shown = max(tally.batches, index)
        percent = 100 * tally.done // tally.total if tally.total else 100
        to_retry = f", {retry} to retry" if retry else ""
        self.console.print(f"Batch {index}/{shown} complete: {succeeded} succeeded, "
                           f"{failed} failed{to_retry}", highlight=False)
        self.console.print(f"Progress: {percent}% complete ({tally.done}/{tally.total} images, "
                           f"{tally.rate():.1f} images/s)", highlight=False)
        if tally.done < tally.total:
            self.console.print(
                f"Estimated time remaining: {human_duration(tally.eta_seconds())}",
                highlight=False)

    def stop(self) -> None:
        pass


class RichProgress:
    """A live bar: batch i/n, percent, succeeded/failed, images/s, ETA."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]Scoring[/]"),
            BarColumn(),
            TaskProgressColumn(),
            MofNCompleteColumn(),
            TextColumn("batch {task.fields[batch]}"),
            TextColumn("[green]{task.fields[ok]} ok[/] [red]{task.fields[failed]} failed[/]"
                       "{task.fields[retry]}"),
            TextColumn("{task.fields[rate]} img/s"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task = None

    def start(self, tally: Tally) -> None:
        self.progress.start()
        self.task = self.progress.add_task("backfill", total=tally.total,
                                           batch=f"0/{tally.batches}", ok=0, failed=0, retry="",
                                           rate="-")

    def batch(self, tally: Tally, index: int, succeeded: int, failed: int,
              retry: int = 0) -> None:
        assert self.task is not None
        self.progress.update(self.task, completed=tally.done,
                             batch=f"{index}/{max(tally.batches, index)}",
                             ok=tally.succeeded, failed=tally.failed,
                             retry=f" [yellow]{tally.retry_later} to retry[/]"
                             if tally.retry_later else "",
                             rate=f"{tally.rate():.1f}")

    def stop(self) -> None:
        self.progress.stop()


class NoProgress:
    """No progress at all (``--quiet``): the end summary is the only output."""

    def start(self, tally: Tally) -> None:
        pass

    def batch(self, tally: Tally, index: int, succeeded: int, failed: int,
              retry: int = 0) -> None:
        pass

    def stop(self) -> None:
        pass


#: Whatever shows a run's progress.
ProgressView = PlainProgress | RichProgress | NoProgress


def make_progress(console: Console, live: bool | None = None) -> PlainProgress | RichProgress:
    live = console.is_terminal if live is None else live
    return RichProgress(console) if live else PlainProgress(console)
