"""Helpers for the ``watch`` tests: a watcher running in a thread of the test, its events, and
rows inserted by a connection of the test's own (another program, as far as ``watch`` knows).

Waits poll the database or the watcher's events against a deadline; no test sleeps a fixed time
to let something happen.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from pixelgrade.sources.http import HttpPolicy
from pixelgrade.stores import Store, open_store
from pixelgrade.watch import Watcher, WatchLog, WatchOptions
from tests.backfill.conftest import image_server  # noqa: F401  (the fixture, shared)
from tests.stores import tables

#: Failures fail fast (one retry, short timeouts), as in the backfill tests.
FAST_HTTP = HttpPolicy(allow_private_network=True,  # the image server is on loopback
                       connect_timeout=5.0, read_timeout=1.5, total_timeout=10.0, retries=1,
                       backoff_base=0.01, backoff_max=0.02, max_retry_after=5.0, http2=False)
#: Long enough for a loaded 2-core machine; a healthy run takes well under a second per row.
DEADLINE = 20.0


def wait_for(condition: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    """Poll ``condition`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.02)


class EventStream:
    """A text stream for :class:`WatchLog` (JSON mode) that keeps the parsed events."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []

    def write(self, text: str) -> int:
        with self._lock:
            self._events.extend(json.loads(line) for line in text.splitlines() if line)
        return len(text)

    def flush(self) -> None:
        pass

    def all(self, event: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self._events if event is None or e["event"] == event]

    def rows(self) -> dict[Any, dict[str, Any]]:
        """The last line of each image, by id."""
        return {e["id"]: e for e in self.all() if "id" in e and "via" in e}


@dataclass
class Running:
    watcher: Watcher
    events: EventStream
    thread: threading.Thread
    errors: list[BaseException] = field(default_factory=list)


def options(tmp_path: Path, **overrides: Any) -> WatchOptions:
    """Test settings: one scoring process, fast HTTP failures, quick polls, no periodic sweep
    unless the test asks for one (so what scored a row is never in doubt)."""
    values: dict[str, Any] = {
        "workers": 1, "concurrency": 8, "error_log": tmp_path / "errors.log",
        "http": FAST_HTTP, "interval": 0.1, "sweep_interval": 3600.0, "window": 0.05,
        "write_backoff": 0.05, "root": tmp_path,
    }
    values.update(overrides)
    return WatchOptions(**values)


@contextmanager
def running(store_or_url: Store | str, tmp_path: Path, **overrides: Any) -> Iterator[Running]:
    """A watcher in a thread; stopped (and checked to have stopped cleanly) on exit."""
    store = open_store(store_or_url) if isinstance(store_or_url, str) else store_or_url
    events = EventStream()
    watcher = Watcher(store, options(tmp_path, **overrides), WatchLog(events, as_json=True))
    state = Running(watcher, events, threading.Thread())

    def run() -> None:
        try:
            watcher.run(install_signal_handlers=False)
        except BaseException as exc:
            state.errors.append(exc)

    state.thread = threading.Thread(target=run, name="watch", daemon=True)
    state.thread.start()
    try:
        wait_for(lambda: watcher.ready.is_set() or not state.thread.is_alive(),
                 "the watcher to be ready")
        assert not state.errors, state.errors
        assert watcher.ready.is_set(), events.all()
        yield state
    finally:
        watcher.stop()
        state.thread.join(timeout=30)
        stuck = state.thread.is_alive()
        if isinstance(store_or_url, str):
            store.close()
    assert not stuck, "the watcher did not stop within 30 s"
    assert not state.errors, state.errors
    assert events.all("stopped"), events.all()


def insert(url: str, first_id: int, locations: Sequence[str], table: str = "images"
           ) -> list[int]:
    """Insert rows (ids ``first_id``...) in one transaction of a connection of our own."""
    ids = list(range(first_id, first_id + len(locations)))
    with tables.connect(url) as conn:
        for key, location in zip(ids, locations, strict=True):
            conn.execute(sa.text(f"INSERT INTO {table} (id, url) VALUES (:id, :url)"),
                         {"id": key, "url": location})
    return ids


def done(url: str, ids: Sequence[Any]) -> bool:
    """Every row of ``ids`` has a score or a recorded status."""
    rows = tables.rows(url)
    return all(rows[i]["quality_score"] is not None or rows[i].get("quality_status")
               for i in ids)
