"""The ScoreService on real databases (SQLite and PostgreSQL, ``db_url``), real scoring
processes and a real HTTP image server: what each row ends as, the error log (the format of
``watch``), the counters, a key queued twice, and stopping."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from pixelgrade.autoscore import ScoreService, ServiceBusy, ServiceStopped
from pixelgrade.backfill.errorlog import ErrorLog
from pixelgrade.backfill.images import Locator
from pixelgrade.pool import scoring_pool
from pixelgrade.scoring import ScoringConfig
from pixelgrade.sources.http import HttpFetcher
from pixelgrade.stores import SqlStore, TableSpec
from pixelgrade.stores.base import Outcome, Selection
from tests.autoscore.counting import Recorded
from tests.backfill.conftest import ImageServer, jpeg
from tests.stores import tables
from tests.watch.conftest import FAST_HTTP

#: The fields of every error-log line, as ``watch`` and the backfill write them.
ERROR_FIELDS = {"id", "url", "kind", "message", "transient", "attempt", "time"}


@asynccontextmanager
async def service(store: SqlStore, root: Path, log: Path, counters: Recorded,
                  **options: Any) -> AsyncIterator[ScoreService]:
    with scoring_pool(1) as pool:
        async with HttpFetcher(FAST_HTTP, concurrency=4) as fetcher:
            running = ScoreService.create(store, pool, 1, ScoringConfig(), fetcher,
                                          Locator(root=root), counters=counters,
                                          error_log=ErrorLog(log), **options)
            async with running:
                yield running


@pytest.fixture
def store(db_url: str) -> Any:
    tables.pixelgrade_table(db_url, [])
    opened = SqlStore(db_url, TableSpec())
    try:
        yield opened
    finally:
        opened.close()


def test_each_row_ends_written_left_to_retry_or_untouched(
        store: SqlStore, db_url: str, tmp_path: Path, image_server: ImageServer) -> None:
    (tmp_path / "photo.jpg").write_bytes(jpeg())
    locations = ["photo.jpg", "gone.jpg", image_server.url("/error.jpg"),
                 image_server.url("/good.png"), "photo.jpg"]
    with tables.connect(db_url) as conn:
        for key, location in enumerate(locations, start=1):
            conn.exec_driver_sql(f"INSERT INTO images (id, url) VALUES ({key}, '{location}')")
    store.write(Selection(), [Outcome(5, "scored", 42, {})])  # the app scored row 5
    tables.count_updates(db_url)
    counters = Recorded()
    log = tmp_path / "errors.log"

    async def run() -> dict[int, Any]:
        async with service(store, tmp_path, log, counters) as running:
            assert running.alive()
            futures = {key: running.submit(key, "api") for key in (1, 2, 3, 4, 5, 404)}
            assert running.submit(1, "api") is futures[1]  # queued once
            results = {key: await future for key, future in futures.items()}
        assert not running.alive()
        with pytest.raises(ServiceStopped):
            running.submit(1)
        return results

    done = asyncio.run(run())
    assert {key: d.status for key, d in done.items()} == {
        1: "scored", 2: "failed", 3: "retry_later", 4: "scored", 5: "not_needed",
        404: "not_needed"}
    assert done[2].kind == "not_found" and done[3].kind == "http_500"
    rows = tables.rows(db_url)
    assert rows[1]["quality_score"] == done[1].score and rows[5]["quality_score"] == 42
    assert rows[2]["quality_status"] == "failed"
    assert rows[3]["quality_score"] is None and rows[3]["quality_status"] is None
    assert tables.updates(db_url) == {"1": 1, "2": 1, "4": 1}
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert all(set(line) == ERROR_FIELDS for line in lines)
    assert [(line["id"], line["kind"], line["transient"]) for line in lines] == [
        (2, "not_found", False), (3, "http_500", True)]
    statuses = sorted(call[2] for call in counters.named("image_done"))
    assert statuses == ["failed", "retry_later", "scored", "scored"]
    assert {call[1] for call in counters.named("queue_depth")} == {"api"}


def test_a_full_queue_refuses_at_once(store: SqlStore, tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_bytes(jpeg())
    for _ in range(6):
        store.insert_image("photo.jpg")

    async def run() -> tuple[list[Any], list[ServiceBusy]]:
        async with service(store, tmp_path, tmp_path / "e.log", Recorded(), queue_size=2,
                           tasks=1) as running:
            accepted, refused = [], []
            for key in range(1, 7):  # in one turn of the loop: the worker takes nothing yet
                try:
                    accepted.append(running.submit(key))
                except ServiceBusy as exc:
                    refused.append(exc)
            assert running.depth == 2
            return [await future for future in accepted], refused

    done, refused = asyncio.run(run())
    assert [d.status for d in done] == ["scored", "scored"]
    assert len(refused) == 4 and refused[0].retry_after == 30
    assert "2 rows are waiting" in str(refused[0])
    assert sum(row["quality_score"] is not None for row in tables.rows(
        str(store.url.render_as_string(hide_password=False))).values()) == 2
