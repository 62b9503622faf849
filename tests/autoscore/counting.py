"""A :class:`~pixelgrade.service.counters.Counters` for tests: it remembers every call."""

from __future__ import annotations

from typing import Any


class Recorded:
    """A Counters that remembers every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def image_done(self, path: str, status: str, kind: str = "") -> None:
        self.calls.append(("image_done", path, status, kind))

    def queue_depth(self, path: str, depth: int) -> None:
        self.calls.append(("queue_depth", path, depth))

    def insert_to_score(self, path: str, seconds: float) -> None:
        self.calls.append(("insert_to_score", path, seconds))

    def worker_restarted(self) -> None:
        self.calls.append(("worker_restarted",))

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [call for call in self.calls if call[0] == name]
