"""Prometheus metrics of a scoring service: :class:`ServiceMetrics` receives what
:class:`~pixelgrade.service.counters.Counters` is told and renders it in Prometheus' text
format (``GET /metrics``, :mod:`pixelgrade.service.routes`).

Each instance has a :class:`~prometheus_client.CollectorRegistry` of its own, never the
client's global one: two apps in one process (a test's, ``serve`` beside ``hook``) keep their
own counts, and creating a second instance never fails with "Duplicated timeseries".

The series::

    pixelgrade_images_total{path,status,kind}         counter: images finished
    pixelgrade_queue_depth{path}                      gauge: rows waiting to be scored
    pixelgrade_insert_to_score_seconds{path}          histogram: row inserted -> result written
    pixelgrade_worker_restarts_total                  counter: scoring pools replaced
    pixelgrade_info{version,store}                    always 1: what is running, on what

``store`` is the kind of database (``sqlite``, ``postgresql``, ``supabase``), never its
address: ``/metrics`` is answered without the sign-in token.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from pixelgrade import __version__
from pixelgrade.service.counters import Path, Status

#: The ``Content-Type`` of :meth:`ServiceMetrics.render`: the text format 0.0.4, which every
#: Prometheus reads (``generate_latest`` writes it; the series names need no escaping).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

#: Insert-to-score buckets, seconds: a row announced by LISTEN and scored at once takes
#: 0.05-1 s; polled rows wait up to ``--interval`` (2 s by default); rows found by a sweep
#: wait up to ``--sweep-interval`` (60 s by default). Slower than a minute is +Inf: something
#: is wrong, and the exact figure no longer matters.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServiceMetrics:
    """A :class:`~pixelgrade.service.counters.Counters` that keeps Prometheus series in a
    registry of its own; :meth:`render` gives the text a scrape receives.

    ``store`` labels ``pixelgrade_info``: the kind of database, e.g. ``store.dialect_name``.
    """

    def __init__(self, store: str = "", *, version: str = __version__) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._images = Counter(
            "pixelgrade_images", "Images finished, by how they arrived, what became of them "
            "and the failure kind.", ["path", "status", "kind"], registry=self.registry)
        self._queue = Gauge(
            "pixelgrade_queue_depth", "Rows waiting to be scored.", ["path"],
            registry=self.registry)
        self._latency = Histogram(
            "pixelgrade_insert_to_score_seconds", "Seconds from a row's creation time to its "
            "result being written.", ["path"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self._restarts = Counter(
            "pixelgrade_worker_restarts", "Scoring process pools replaced after a worker "
            "died or hung.", registry=self.registry)
        info = Gauge("pixelgrade_info", "The pixelgrade version and the kind of database "
                     "(always 1).", ["version", "store"], registry=self.registry)
        info.labels(version=version, store=store).set(1)

    # -- Counters ------------------------------------------------------------------------

    def image_done(self, path: Path, status: Status, kind: str = "") -> None:
        self._images.labels(path=path, status=status, kind=kind or "").inc()

    def queue_depth(self, path: Path, depth: int) -> None:
        self._queue.labels(path=path).set(max(0, depth))

    def insert_to_score(self, path: Path, seconds: float) -> None:
        self._latency.labels(path=path).observe(max(0.0, seconds))

    def worker_restarted(self) -> None:
        self._restarts.inc()

    # -- output --------------------------------------------------------------------------

    def render(self) -> bytes:
        """The registry in Prometheus' text format (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)


def seconds_since(created: Any, now: datetime | None = None) -> float | None:
    """Seconds from ``created`` (a row's creation time as the store returns it: a datetime, or
    ISO 8601 text as SQLite and the REST API hold it) to ``now``; None when it is not a time.
    A time without a zone is taken as UTC (what ``CURRENT_TIMESTAMP`` stores in SQLite)."""
    if isinstance(created, str):
        try:
            created = datetime.fromisoformat(created.strip())
        except ValueError:
            return None
    if not isinstance(created, datetime):
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return ((now or datetime.now(UTC)) - created).total_seconds()
