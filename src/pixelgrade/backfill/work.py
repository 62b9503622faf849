"""The worker side of the backfill: fetch and score a chunk of rows where the CPU is.

:func:`score_chunk` runs in a scoring process (a local process pool or a Dask worker) for a
few rows at a time. For each row it gets the bytes itself, from an http(s) URL through
:class:`~pixelgrade.sources.http.HttpFetcher` (so every rule of :class:`HttpPolicy` applies:
retries, Retry-After, size cap, redirects) or from a local path, scores them and returns a small
dict per row. Image bytes never cross a process boundary; the process that dispatches the
chunks only sends locations and receives these dicts, so its CPU per image stays well under a
millisecond and the cores are left to decoding.

Within a chunk, downloads overlap scoring: the fetcher lives on an event loop in a thread of the
worker process, up to ``WorkSettings.concurrency`` downloads run ahead, and the calling thread
scores each image as soon as its bytes arrive (decoding releases the GIL). The fetcher is kept
for the next chunks of the same run (``WorkSettings.run``), so connections are reused.

The dicts: a scoring report trimmed to what the backfill writes (``status`` ``scored``,
``skipped`` or ``failed``, ``score``, ``reason``, the details keys), or
``{"status": "fetch_error", "kind", "reason", "transient"}`` when the bytes could not be had
(``kind="too_large"`` when they are over the size cap).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import sys
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pixelgrade.backfill.ratelimit import RateLimiter
from pixelgrade.errors import FetchError, ImageTooLargeError
from pixelgrade.scoring import ScoringConfig, score_bytes
from pixelgrade.sources.files import read_file
from pixelgrade.sources.http import HttpFetcher, HttpPolicy, is_url

#: Report keys kept in the details column (score and status have columns of their own; the band
#: is left out because it depends on thresholds that can change).
DETAIL_KEYS = ("reason", "components", "issues", "summary", "formula", "width", "height",
               "format", "bytes", "scorer_version")

#: What a worker sends back per row: the details plus the status, the score and, for
#: failures, the cause.
RESULT_KEYS = ("status", "score", "kind", "transient", *DETAIL_KEYS)

#: Exit status of a worker process stopped by its watchdog: one image's scoring ran past
#: ``WorkSettings.score_timeout`` (a decoder stuck on hostile bytes cannot be interrupted in
#: its thread, only with its process). The executor tells it from a crash by this status.
SCORING_TIMEOUT_EXIT = 86

#: Fetchers kept per worker process (one per run; more than one only when several runs share
#: a Dask cluster at once).
KEPT_FETCHERS = 4


class Credentials:
    """Request headers per origin (e.g. a Supabase Storage key), kept out of every repr.

    They travel to the workers inside the pickled task, and are shown nowhere: not in a repr,
    a log line or an error message (Dask logs a failed task's arguments by their repr).
    """

    __slots__ = ("_headers",)

    def __init__(self, headers: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self._headers = {origin: dict(values) for origin, values in (headers or {}).items()}

    @property
    def headers(self) -> dict[str, dict[str, str]]:
        return self._headers

    def __repr__(self) -> str:
        return f"Credentials({len(self._headers)} origin(s), hidden)"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Credentials, (self._headers,))


@dataclass(frozen=True)
class WorkSettings:
    """Everything a worker needs besides the locations; the same for every chunk of a run."""

    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    http: HttpPolicy = field(default_factory=HttpPolicy)
    #: Downloads in flight per worker process.
    concurrency: int = 8
    credentials: Credentials = field(default_factory=Credentials)
    #: Longest one image's scoring may take (seconds; downloads and waiting not counted) before
    #: the worker process stops itself (None: no limit).
    score_timeout: float | None = None
    #: This worker's share of ``--rate``: download attempts (retries included) per second.
    attempt_rate: float | None = None
    #: Names the run, so a worker keeps one fetcher per run across chunks.
    run: str = field(default_factory=lambda: uuid.uuid4().hex)


def score_chunk(locations: Sequence[str], settings: WorkSettings) -> list[dict[str, Any]]:
    """Fetch (or read) and score each location; one result dict per location, in order.

    Downloads run ahead of the scoring, at most ``settings.concurrency`` of them started and
    not yet scored, so a worker holds that many images at most whatever the chunk size. Never
    raises for a bad image or an unreachable URL: those are results. Runs in a worker process;
    see the module docstring.
    """
    _configure_process()
    results: dict[int, dict[str, Any]] = {}
    waiting = [i for i, location in enumerate(locations) if is_url(location)]
    waiting.reverse()  # popped from the end: in chunk order
    downloads: dict[concurrent.futures.Future[bytes], int] = {}
    fetcher = _fetcher_for(settings) if waiting else None

    def start_downloads() -> None:
        while fetcher is not None and waiting and len(downloads) < settings.concurrency:
            i = waiting.pop()
            downloads[fetcher.start(locations[i])] = i

    try:
        start_downloads()
        for i, location in enumerate(locations):
            if not is_url(location):
                results[i] = _score_file(location, settings)
        while downloads:
            done, _ = concurrent.futures.wait(downloads,
                                              return_when=concurrent.futures.FIRST_COMPLETED)
            for download in done:
                i = downloads.pop(download)
                start_downloads()  # before scoring: the next bytes arrive meanwhile
                results[i] = _score_download(download, settings)
    finally:
        for download in downloads:
            download.cancel()
    return [results[i] for i in range(len(locations))]


def _score_file(path: str, settings: WorkSettings) -> dict[str, Any]:
    try:
        data = read_file(path, settings.scoring.max_bytes)
    except (FetchError, ImageTooLargeError) as exc:
        return _read_failure(exc)
    return _score(data, settings)


def _score_download(download: concurrent.futures.Future[bytes],
                    settings: WorkSettings) -> dict[str, Any]:
    try:
        data = download.result()
    except (FetchError, ImageTooLargeError) as exc:
        return _read_failure(exc)
    return _score(data, settings)


def _score(data: bytes, settings: WorkSettings) -> dict[str, Any]:
    with _deadline(settings.score_timeout):
        return _trim(score_bytes(data, settings.scoring).to_dict())


@contextlib.contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """Stop this process if the block runs longer than ``seconds`` (see
    :data:`SCORING_TIMEOUT_EXIT`). A timer thread per image costs ~0.1 ms beside ~20 ms of
    scoring."""
    if seconds is None:
        yield
        return
    timer = threading.Timer(seconds, _stop_stuck_process, args=(seconds,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _stop_stuck_process(seconds: float) -> None:
    sys.stderr.write(f"pixelgrade: scoring one image took longer than {seconds:g} s "
                     "(--score-timeout); stopping this scoring process\n")
    sys.stderr.flush()
    os._exit(SCORING_TIMEOUT_EXIT)


def _read_failure(exc: FetchError | ImageTooLargeError) -> dict[str, Any]:
    if isinstance(exc, ImageTooLargeError):
        return {"status": "fetch_error", "kind": "too_large", "reason": str(exc),
                "transient": False}
    return {"status": "fetch_error", "kind": exc.kind, "reason": str(exc),
            "transient": exc.transient}


def _trim(report: dict[str, Any]) -> dict[str, Any]:
    return {key: report[key] for key in RESULT_KEYS if key in report}


@functools.cache
def _configure_process() -> None:
    """Once per worker process: one OpenCV thread (the workers already use every core)."""
    import cv2

    cv2.setNumThreads(1)


class _Downloader:
    """One :class:`HttpFetcher` on an event loop in a thread of its own."""

    def __init__(self, settings: WorkSettings) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name="pixelgrade-fetch")
        self.thread.start()
        self.fetcher: HttpFetcher = asyncio.run_coroutine_threadsafe(
            self._open(settings), self.loop).result()

    @staticmethod
    async def _open(settings: WorkSettings) -> HttpFetcher:
        pace = RateLimiter(settings.attempt_rate).acquire if settings.attempt_rate else None
        return HttpFetcher(settings.http, concurrency=settings.concurrency,
                           origin_headers=settings.credentials.headers, pace=pace)

    def start(self, url: str) -> concurrent.futures.Future[bytes]:
        return asyncio.run_coroutine_threadsafe(self.fetcher.fetch(url), self.loop)

    def close(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.fetcher.aclose(), self.loop).result(5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


class _Downloaders:
    """The fetchers of this worker process, one per run, the oldest closed beyond
    :data:`KEPT_FETCHERS`. Per-process state by necessity: a worker outlives the tasks it
    runs, and keeping its connections open between chunks is the point."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_run: OrderedDict[str, _Downloader] = OrderedDict()

    def get(self, settings: WorkSettings) -> _Downloader:
        with self._lock:
            downloader = self._by_run.get(settings.run)
            if downloader is None:
                downloader = self._by_run[settings.run] = _Downloader(settings)
                while len(self._by_run) > KEPT_FETCHERS:
                    _, oldest = self._by_run.popitem(last=False)
                    oldest.close()
            self._by_run.move_to_end(settings.run)
            return downloader


@functools.cache
def _process_downloaders() -> _Downloaders:
    return _Downloaders()


def _fetcher_for(settings: WorkSettings) -> _Downloader:
    return _process_downloaders().get(settings)
