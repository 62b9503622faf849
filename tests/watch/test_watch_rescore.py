"""``watch`` scores a row again when the application changes its URL (issue 15, item 2).

The URL is changed by a connection of the test's own; ``pixelgrade init``'s table carries the
URL-change trigger on both databases. Timings are measured, not slept: PostgreSQL announces the
changed row (LISTEN), SQLite's poll finds it off the re-opened rows' index, both long before
the next sweep (there is none in these tests: ``sweep_interval`` is an hour).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.backfill.conftest import ImageServer
from tests.stores import tables
from tests.watch.conftest import done, insert, running, wait_for


def _change_url(url: str, key: int, location: str) -> float:
    """The app points row ``key`` at another picture; returns when (monotonic)."""
    with tables.connect(url) as conn:
        conn.execute(sa.text("UPDATE images SET url = :url WHERE id = :id"),
                     {"url": location, "id": key})
    return time.monotonic()


def _scored_for(url: str, key: int, location: str) -> dict[str, Any] | None:
    """Row ``key`` once it holds a result computed for ``location``."""
    row = tables.rows(url)[key]
    if row["quality_status"] and row["quality_source"] == location:
        return row
    return None


def _db(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_a_changed_url_is_scored_again_long_before_the_next_sweep(
        kind: str, tmp_path: Path, image_server: ImageServer,
        request: pytest.FixtureRequest) -> None:
    url = _db(kind, tmp_path, request)
    first = [image_server.url(p) for p in ("/good.jpg", "/good.png", "/good.webp")]
    ids = tables.pixelgrade_table(url, first)
    with running(url, tmp_path) as run:
        assert run.watcher.report.mode == ("listen" if kind == "postgresql" else "poll")
        assert done(url, ids)
        later = insert(url, 4, [image_server.url("/good.jpg")])  # row 1 is now below the
        wait_for(lambda: done(url, later), "the new row")        # high-water mark
        before = tables.rows(url)
        changed = image_server.url("/other.jpg")
        at = _change_url(url, 1, changed)
        row = wait_for(lambda: _scored_for(url, 1, changed), "row 1 scored for its new URL")
        took = time.monotonic() - at
        report = run.watcher.report
    assert row["quality_score"] is not None and row["url"] == changed
    assert row["quality_details"] != before[1]["quality_details"]  # another picture
    after = tables.rows(url)
    assert all(after[i] == before[i] for i in (2, 3, 4))  # the others untouched
    via = [e["via"] for e in run.events.all() if e.get("id") == 1]
    assert via == ["startup", "notify" if kind == "postgresql" else "poll"]
    # A second or two on PostgreSQL (LISTEN); a few 0.1 s polls on SQLite. Generous bounds
    # for a loaded machine, still far below the sweep's hour.
    assert took < 5.0, took
    assert report.sweeps == 1  # the startup sweep only
    assert image_server.hits["/other.jpg"] == 1


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_a_score_for_the_old_url_is_refused_and_the_new_url_is_scored(
        kind: str, tmp_path: Path, image_server: ImageServer,
        request: pytest.FixtureRequest) -> None:
    """The URL changes while watch is scoring the old picture: that score is refused by the
    URL-checked write (counted as written by someone else), and the row, re-opened by the
    trigger, is scored for its new URL. On PostgreSQL the notification of the change arrives
    while the row is in flight: it is kept, and the row read again once the first result is
    in."""
    url = _db(kind, tmp_path, request)
    tables.pixelgrade_table(url, [])
    image_server.delay = 0.8  # under the tests' 1.5 s read timeout
    with running(url, tmp_path) as run:
        insert(url, 1, [image_server.url("/delay/old.jpg")])
        wait_for(lambda: image_server.hits["/delay/old.jpg"], "the old picture's download")
        changed = image_server.url("/other.jpg")
        _change_url(url, 1, changed)
        row = wait_for(lambda: _scored_for(url, 1, changed), "row 1 scored for its new URL")
        wait_for(lambda: run.watcher.report.processed == 2, "both results counted")
        report = run.watcher.report
    assert row["url"] == changed and row["quality_score"] is not None
    assert report.not_written_already_done == 1 and report.written == 1
    assert report.scored == 2  # two pictures scored, one of them written
    assert image_server.hits["/other.jpg"] == 1
