"""The watcher's bookkeeping on its own, with a clock the test moves: claims, stale reads,
the retry schedule and its memory bound, the poll cursor."""

from __future__ import annotations

import uuid

import pytest

from pixelgrade.stores import Row
from pixelgrade.watch import Ledger


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _rows(*keys: object) -> list[Row]:
    return [Row(key, f"{key}.jpg") for key in keys]


def test_a_row_is_claimed_once_until_it_is_finished_or_released() -> None:
    clock = Clock()
    ledger = Ledger(clock=clock)
    sweep, notify = object(), object()
    assert [r.id for r in ledger.claim(_rows(1, 2), clock(), sweep)] == [1, 2]
    assert [r.id for r in ledger.claim(_rows(2, 3), clock(), notify)] == [3]
    assert ledger.in_flight() == 3
    assert ledger.release(sweep) == 2  # abandoned: both are free again
    clock.now += 1
    assert [r.id for r in ledger.claim(_rows(1, 2), clock(), notify)] == [1, 2]


def test_a_read_older_than_a_result_cannot_claim_its_row() -> None:
    clock = Clock()
    ledger = Ledger(clock=clock)
    owner = object()
    read_at = clock()  # a sweep reads row 1 (no score yet)...
    ledger.claim(_rows(1), clock(), owner)  # ...a notification claims it first...
    clock.now += 1
    ledger.finish(1, transient_failure=False)  # ...and writes its score.
    assert ledger.claim(_rows(1), read_at, object()) == []  # the sweep's read is stale
    clock.now += 1
    assert len(ledger.claim(_rows(1), clock(), object())) == 1  # a later read is not


def test_transient_failures_wait_longer_each_time() -> None:
    clock = Clock()
    ledger = Ledger(retry_base=30, retry_max=100, clock=clock)
    delays = []
    for _ in range(4):
        clock.now += 1000
        assert ledger.claim(_rows(7), clock(), object())
        delays.append(ledger.finish(7, transient_failure=True))
    assert delays == [(1, 30), (2, 60), (3, 100), (4, 100)]
    clock.now += 99
    assert ledger.claim(_rows(7), clock(), object()) == []  # not due yet
    assert ledger.claim(_rows(7), clock(), object(), honour_backoff=False)  # news: try now
    assert ledger.finish(7, transient_failure=False) == (5, None)
    assert ledger.waiting() == 0


def test_the_retry_schedule_forgets_its_oldest_rows_first() -> None:
    clock = Clock()
    ledger = Ledger(memory=3, clock=clock)
    for key in range(5):
        ledger.claim(_rows(key), clock(), object())
        ledger.finish(key, transient_failure=True)
    assert ledger.waiting() == 3
    clock.now += 1
    assert [r.id for r in ledger.claim(_rows(0, 1, 2, 3, 4), clock(), object())] == [0, 1]


def test_the_poll_cursor_is_the_highest_integer_key() -> None:
    ledger = Ledger()
    assert ledger.poll_cursor() is None
    ledger.see([3, 9, 5])
    assert ledger.poll_cursor() == 9
    ledger.see([uuid.uuid4()])
    assert ledger.poll_cursor() is None  # no order to resume from: read everything


def test_bad_delays_are_refused() -> None:
    with pytest.raises(ValueError):
        Ledger(retry_base=0)
    with pytest.raises(ValueError):
        Ledger(retry_base=10, retry_max=5)


def test_news_about_a_row_in_flight_is_handed_back_once_it_is_finished() -> None:
    """A notification for a row being scored (its URL may have changed meanwhile) is kept: the
    row is read again after its result, once."""
    clock = Clock()
    ledger = Ledger(clock=clock)
    ledger.claim(_rows(1, 2), clock(), object())
    assert ledger.claim(_rows(1), clock(), object(), honour_backoff=False,
                        remember_in_flight=True) == []
    assert ledger.claim(_rows(2), clock(), object()) == []  # a poll's read: not remembered
    assert ledger.take_again() == []  # still in flight
    ledger.finish(2, transient_failure=False)
    ledger.finish(1, transient_failure=False)
    assert ledger.take_again() == [1]
    assert ledger.take_again() == []
