"""What ``watch`` remembers between rows: which are in flight, which failed for now and when to
try them again, and the highest key seen.

* **In flight.** A row is *claimed* before it is scored and released once its result is
  written. A notification and a sweep (or two polls) that find the same row therefore score it
  once: the second finds it claimed and leaves it. A read that began before a row's result was
  written is stale for that row (it still saw it without a score), so its claim is refused too.
* **News about a row in flight.** A notification for a row being scored may mean its URL
  changed meanwhile: the score in flight is then refused by the URL-checked write, and the row
  is to do again. Such keys are remembered (``claim(..., remember_in_flight=True)``) and, once
  the row's result is in, handed back by :meth:`Ledger.take_again` to be read once more (a row
  whose write went through is no longer to do, and that read finds nothing).
* **Backoff.** A transient failure (timeout, 5xx, 429) leaves the row without a score; sweeps
  try it again after ``retry_base`` seconds, then twice as long after each further failure, up
  to ``retry_max``, so a dead URL is not fetched every few seconds. The schedule is kept in
  memory for at most ``memory`` rows (the oldest entries are forgotten first: such a row is
  simply tried again sooner).
* **High-water mark.** The largest integer key seen: polls read only rows above it. Keys that
  are not integers (UUIDs, text) have no useful order, and polls then read every row still to
  do (see :meth:`Ledger.poll_cursor`).

Claims are taken in the threads that read the database, so every method holds a lock.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pixelgrade.stores.base import Row

#: Rows whose retry schedule is remembered (about 100 bytes each).
RETRY_MEMORY = 100_000
#: Rows whose "result written at" time is remembered, to refuse claims from stale reads.
FINISHED_MEMORY = 10_000


class Ledger:
    """See the module docstring. ``clock`` is :func:`time.monotonic` unless a test says
    otherwise; every ``fetched_at`` handed in must come from the same clock."""

    def __init__(self, *, retry_base: float = 30.0, retry_max: float = 3600.0,
                 memory: int = RETRY_MEMORY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if retry_base <= 0 or retry_max < retry_base:
            raise ValueError("retry delays must be positive, the longest at least the first")
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.memory = memory
        self.clock = clock
        self._lock = threading.Lock()
        self._owners: dict[Any, object] = {}
        #: key -> (transient failures in a row, earliest next attempt)
        self._retry: OrderedDict[Any, tuple[int, float]] = OrderedDict()
        #: key -> when its result was written
        self._finished: OrderedDict[Any, float] = OrderedDict()
        self._high_water: int | None = None
        self._integer_keys = True
        #: Keys announced while in flight, and those of them finished since (to read again).
        self._announced: set[Any] = set()
        self._again: list[Any] = []

    # -- claims --------------------------------------------------------------------------

    def claim(self, rows: Sequence[Row], fetched_at: float, owner: object, *,
              honour_backoff: bool = True, remember_in_flight: bool = False) -> list[Row]:
        """Those of ``rows`` (read from the database at ``fetched_at``) that are now ``owner``'s
        to score: not in flight elsewhere, not finished since the read, and (with
        ``honour_backoff``) not waiting for their next retry. With ``remember_in_flight``, the
        keys refused because they are in flight are handed back by :meth:`take_again` once
        finished."""
        kept = []
        with self._lock:
            now = self.clock()
            for row in rows:
                key = row.id
                if key in self._owners:
                    if remember_in_flight:
                        self._announced.add(key)
                    continue
                if self._finished.get(key, float("-inf")) >= fetched_at:
                    continue
                if honour_backoff and key in self._retry and self._retry[key][1] > now:
                    continue
                self._owners[key] = owner
                kept.append(row)
        return kept

    def next_attempt(self, key: Any) -> int:
        """Which attempt at ``key`` the one in flight is (1 + transient failures in a row so
        far), without changing anything: what the error log records *before* the result is
        written, :meth:`finish` being called after."""
        with self._lock:
            return self._retry.get(key, (0, 0.0))[0] + 1

    def finish(self, key: Any, *, transient_failure: bool) -> tuple[int, float | None]:
        """Release ``key`` with its result written (or, for a transient failure, left for later).

        Returns (failures in a row including this one, seconds until the next attempt); a
        success or a permanent failure ends the schedule (next attempt None).
        """
        with self._lock:
            now = self.clock()
            self._owners.pop(key, None)
            if key in self._announced:
                self._announced.discard(key)
                self._again.append(key)
            self._finished[key] = now
            self._finished.move_to_end(key)
            while len(self._finished) > FINISHED_MEMORY:
                self._finished.popitem(last=False)
            failures = self._retry.pop(key, (0, 0.0))[0] + 1
            if not transient_failure:
                return failures, None
            delay = min(self.retry_max, self.retry_base * 2 ** (failures - 1))
            self._retry[key] = (failures, now + delay)
            while len(self._retry) > self.memory:
                self._retry.popitem(last=False)
            return failures, delay

    def take_again(self) -> list[Any]:
        """Keys announced while they were in flight and finished since (see the module
        docstring); each is handed back once."""
        with self._lock:
            again, self._again = self._again, []
            return again

    def release(self, owner: object) -> int:
        """Drop every claim ``owner`` still holds (work abandoned or failed to be written: the
        rows stay to do). Returns how many."""
        with self._lock:
            keys = [key for key, holder in self._owners.items() if holder is owner]
            for key in keys:
                del self._owners[key]
                self._announced.discard(key)  # still to do: any later read finds it
            return len(keys)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._owners)

    def waiting(self) -> int:
        """Rows whose next attempt is scheduled (transient failures)."""
        with self._lock:
            return len(self._retry)

    # -- the poll cursor -----------------------------------------------------------------

    def see(self, keys: Iterable[Any]) -> None:
        """Note keys read from the table (for :meth:`poll_cursor`)."""
        with self._lock:
            for key in keys:
                if type(key) is not int:
                    self._integer_keys = False
                elif self._high_water is None or key > self._high_water:
                    self._high_water = key

    def poll_cursor(self) -> int | None:
        """Where a poll starts: the highest integer key seen, or None (read every row still to
        do) before any key was seen or once a key was not an integer."""
        with self._lock:
            return self._high_water if self._integer_keys else None
