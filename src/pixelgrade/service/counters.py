"""What the scoring services report as they go: one small interface, so that ``watch``, the
webhook, uploads and re-scores count the same things the same way, and a Prometheus registry
(:mod:`pixelgrade.service.metrics`) or nothing at all (:class:`NoCounters`) receives them.

``path`` names the way a row reached the scorer: ``watch`` (LISTEN, poll or sweep), ``webhook``
(a Supabase Database Webhook), ``api`` (``POST /api/images/{id}/score``), ``upload`` and
``rescore`` (the gallery's two writes).
"""

from __future__ import annotations

from typing import Literal, Protocol

#: How a row reached the scorer (see the module docstring).
Path = Literal["watch", "webhook", "api", "upload", "rescore"]

#: What became of one image: ``scored``/``skipped``/``failed`` were written; ``retry_later``
#: is a transient failure left NULL for a later try; ``not_written`` was scored but left
#: alone because someone else wrote the row first (or its URL changed meanwhile).
Status = Literal["scored", "skipped", "failed", "retry_later", "not_written"]


class Counters(Protocol):
    """Receives what a scoring service did. Every method must be cheap and must not raise."""

    def image_done(self, path: Path, status: Status, kind: str = "") -> None:
        """One image finished; ``kind`` is the failure kind (``decode``, ``http_404``,
        ``worker_crash``...) for ``failed`` and ``retry_later``, else empty."""
        ...

    def queue_depth(self, path: Path, depth: int) -> None:
        """Rows waiting to be scored on ``path`` now."""
        ...

    def insert_to_score(self, path: Path, seconds: float) -> None:
        """Time from the row's insert (its creation time) to its first result being written
        (not reported for a row re-opened by a URL change: its creation time says nothing
        about when its new picture came)."""
        ...

    def worker_restarted(self) -> None:
        """A scoring process died (or hung) and its pool was replaced."""
        ...


class NoCounters:
    """Counts nothing (the default when no metrics are asked for)."""

    def image_done(self, path: Path, status: Status, kind: str = "") -> None:
        pass

    def queue_depth(self, path: Path, depth: int) -> None:
        pass

    def insert_to_score(self, path: Path, seconds: float) -> None:
        pass

    def worker_restarted(self) -> None:
        pass
