"""``/metrics``: what a watch run on a real SQLite table counts, and one registry per app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from pixelgrade import __version__
from pixelgrade.service.health import HealthCheck
from pixelgrade.service.metrics import ServiceMetrics, seconds_since
from pixelgrade.service.routes import metrics_app
from pixelgrade.stores import open_store
from pixelgrade.watch import Watcher, WatchLog
from tests.backfill.conftest import ImageServer
from tests.stores import tables
from tests.watch.conftest import EventStream, options


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, by name and labels."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def images(found: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> dict[tuple[str, str],
                                                                                  float]:
    """``pixelgrade_images_total`` by (status, kind)."""
    return {(dict(labels)["status"], dict(labels)["kind"]): count
            for (name, labels), count in found.items() if name == "pixelgrade_images_total"}


def _watch_once(url: str, tmp_path: Path, metrics: ServiceMetrics) -> Any:
    store = open_store(url)
    try:
        return Watcher(store, options(tmp_path, once=True), WatchLog(EventStream(), as_json=True),
                       metrics).run(install_signal_handlers=False)
    finally:
        store.close()


def test_metrics_after_a_watch_run_match_what_was_written(image_server: ImageServer,
                                                         tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'library.db'}"
    locations = [image_server.url("/good.jpg"), image_server.url("/other.jpg"),
                 image_server.url("/vector.svg"), image_server.url("/gone.jpg"),
                 image_server.url("/error.jpg")]
    tables.pixelgrade_table(url, locations)  # `pixelgrade init`'s table: it has created_at
    with tables.connect(url) as conn:  # inserted ten seconds ago
        conn.execute(sa.text("UPDATE images SET created_at = datetime('now', '-10 seconds')"))
    metrics = ServiceMetrics(store="sqlite")
    report = _watch_once(url, tmp_path, metrics)

    with TestClient(metrics_app(metrics, HealthCheck())) as client:
        answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = samples(answer.text)
    statuses = [row["quality_status"] for row in tables.rows(url).values()]
    assert images(found) == {("scored", ""): 2, ("skipped", ""): 1, ("failed", "http_404"): 1,
                             ("retry_later", "http_500"): 1}
    assert statuses.count("scored") == report.scored == 2
    assert statuses.count("skipped") == 1 and statuses.count("failed") == 1
    assert statuses.count(None) == 1  # the 500: left to retry
    # Insert to score: one observation per row written, each about ten seconds.
    written = report.written
    assert value(found, "pixelgrade_insert_to_score_seconds_count", path="watch") == written == 4
    total = value(found, "pixelgrade_insert_to_score_seconds_sum", path="watch")
    assert 4 * 9 <= total <= 4 * 60
    assert value(found, "pixelgrade_insert_to_score_seconds_bucket", path="watch",
                 le="5.0") == 0
    assert value(found, "pixelgrade_insert_to_score_seconds_bucket", path="watch",
                 le="30.0") == 4
    assert value(found, "pixelgrade_info", version=__version__, store="sqlite") == 1
    assert value(found, "pixelgrade_worker_restarts_total") == 0


def test_no_insert_to_score_time_without_a_creation_column(image_server: ImageServer,
                                                          tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'library.db'}"
    tables.bare_table(url, [image_server.url("/good.jpg")])
    metrics = ServiceMetrics(store="sqlite")
    _watch_once(url, tmp_path, metrics)
    found = samples(metrics.render().decode())
    assert images(found) == {("scored", ""): 1}
    assert value(found, "pixelgrade_insert_to_score_seconds_count", path="watch") == 0


def test_two_metrics_do_not_share_counts() -> None:
    first, second = ServiceMetrics(store="sqlite"), ServiceMetrics(store="postgresql")
    first.image_done("watch", "scored")
    first.image_done("watch", "failed", "decode")
    first.worker_restarted()
    first.queue_depth("watch", 7)
    first.insert_to_score("watch", 0.3)
    one, two = samples(first.render().decode()), samples(second.render().decode())
    assert images(one) == {("scored", ""): 1, ("failed", "decode"): 1}
    assert images(two) == {}
    assert value(one, "pixelgrade_worker_restarts_total") == 1
    assert value(two, "pixelgrade_worker_restarts_total") == 0
    assert value(one, "pixelgrade_queue_depth", path="watch") == 7
    assert ("pixelgrade_queue_depth", frozenset({("path", "watch")})) not in two
    assert value(one, "pixelgrade_insert_to_score_seconds_bucket", path="watch", le="0.5") == 1
    assert value(two, "pixelgrade_info", version=__version__, store="postgresql") == 1
    assert value(two, "pixelgrade_info", version=__version__, store="sqlite") == 0


def test_creation_times_as_stores_return_them() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    now = datetime(2026, 5, 1, 9, 30, 12, tzinfo=UTC)
    assert seconds_since("2026-05-01 09:30:02", now) == 10  # SQLite's CURRENT_TIMESTAMP
    assert seconds_since("2026-05-01T09:30:11.5+00:00", now) == 0.5  # the REST API
    assert seconds_since("2026-05-01T11:30:10+02:00", now) == 2
    assert seconds_since(datetime(2026, 5, 1, 9, 30, 11), now) == 1  # naive: UTC
    assert seconds_since(datetime(2026, 5, 1, 10, 30, 9, tzinfo=timezone(timedelta(hours=1))),
                         now) == 3
    assert seconds_since("yesterday", now) is None
    assert seconds_since(None, now) is None and seconds_since(17, now) is None


def test_a_scoring_process_that_dies_is_counted(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from pixelgrade import samples as photos
    from pixelgrade.backfill.images import ImageScorer
    from tests.backfill.crashy import score_path_or_die

    monkeypatch.setattr(ImageScorer, "score_path_function", staticmethod(score_path_or_die))
    good = photos.encode(photos.load_photo("coffee.png"), "JPEG", quality=90)
    for name in ("a.jpg", "crash.jpg", "b.jpg"):
        (tmp_path / name).write_bytes(good)
    url = f"sqlite:///{tmp_path / 'library.db'}"
    tables.pixelgrade_table(url, ["a.jpg", "crash.jpg", "b.jpg"])
    metrics = ServiceMetrics(store="sqlite")
    _watch_once(url, tmp_path, metrics)
    found = samples(metrics.render().decode())
    assert images(found) == {("scored", ""): 2, ("failed", "worker_crash"): 1}
    assert value(found, "pixelgrade_worker_restarts_total") >= 1


class Recording:
    """A Counters that keeps every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def image_done(self, *args: Any) -> None:
        self.calls.append(("image_done", args))

    def queue_depth(self, *args: Any) -> None:
        self.calls.append(("queue_depth", args))

    def insert_to_score(self, *args: Any) -> None:
        self.calls.append(("insert_to_score", args))

    def worker_restarted(self) -> None:
        self.calls.append(("worker_restarted", ()))


def test_the_notified_queue_depth(pg_url: str, image_server: ImageServer,
                                  tmp_path: Path) -> None:
    """On PostgreSQL with the trigger: each notified id raises the depth, reading them brings
    it back to zero; every row is told once, with its insert-to-score time."""
    from tests.watch.conftest import done, insert, running, wait_for

    tables.pixelgrade_table(pg_url, [])
    recording = Recording()
    store = open_store(pg_url)
    try:
        with running(store, tmp_path) as watch:
            watch.watcher.counters = recording  # before any row: the scorer is not told
            assert watch.watcher.report.mode == "listen"
            ids = insert(pg_url, 1, [image_server.url("/good.jpg")] * 5)
            wait_for(lambda: done(pg_url, ids), "the five rows")
            wait_for(lambda: sum(1 for name, _ in recording.calls if name == "image_done") == 5,
                     "five results told")
    finally:
        store.close()
    depths = [args[1] for name, args in recording.calls if name == "queue_depth"]
    assert max(depths) >= 1 and depths[-1] == 0, depths
    assert [args for name, args in recording.calls if name == "image_done"] == [
        ("watch", "scored", "")] * 5
    latencies = [args[1] for name, args in recording.calls if name == "insert_to_score"]
    assert len(latencies) == 5 and all(0 <= s < 30 for s in latencies), latencies
