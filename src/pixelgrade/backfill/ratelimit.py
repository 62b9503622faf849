"""An images-per-second ceiling (``--rate``), shared by every concurrent task of a run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class RateLimiter:
    """Spaces ``acquire()`` calls at least ``1 / rate`` seconds apart (no bursts).

    ``rate=None`` means no limit. Evenly spaced starts are what a remote server sees as a gentle
    client; a token bucket with a burst would hit it with ``batch-size`` requests at once.
    """

    def __init__(self, rate: float | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("--rate must be a positive number of images per second")
        self.interval = 0.0 if rate is None else 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = self._clock()
            if self._next > now:
                await self._sleep(self._next - now)
            # The next slot counts from when this caller really goes, not from when it was
            # due: after a wake-up late by more than the interval (a busy event loop), the
            # next caller would otherwise go at once, two requests together.
            self._next = self._clock() + self.interval
