"""The gallery's two writes: add an uploaded image (scored on arrival) and re-score one.

Both go through the app's :class:`~pixelgrade.autoscore.ScoreService`, the one that the
webhook and ``watch``-like scoring use: scoring runs in the scoring processes, awaited from the
event loop (the server keeps answering meanwhile), and survives a decoder that kills its
process: the pool is replaced and the image is recorded with kind ``worker_crash`` (an upload is
then refused with 422, a re-scored row is written ``failed``). Failures are appended to the
error log and everything is counted, as for the webhook. A re-score reads the bytes from
wherever the row points, exactly as the backfill does, and overwrites whatever the row held.

Uploads are judged by their bytes, never by their name or Content-Type:

* over the size cap: refused, 413;
* not a raster image pixelgrade decodes (HTML, text, SVG, PDF, JPEG XL...): refused, 415,
  with what the bytes are;
* a raster image that cannot be scored (truncated, corrupt, a decompression bomb whose header
  declares more pixels than the limit): refused, 422, with the scorer's reason;

and in each of those cases nothing is stored. Accepted images are saved under a generated name
(``<32 hex digits>.<format>``) in the uploads folder, a row is added, and its score is written
before the answer goes out.

What the row records is what ``pixelgrade watch`` and ``backfill`` resolve the same way from
any working directory and on any machine that has the files: the path relative to the root
(``uploads/<name>.jpg``; they must be given the same ``--root``), or, with ``uploads_url``
(``serve --uploads-url https://cdn.example.com/uploads/{path}``), the URL the uploads folder
is published at, ``{path}`` being the file's path inside that folder. Never a server's absolute
path: that breaks as soon as the folder is seen from elsewhere (another container's mount,
a moved folder).

An upload's score is written with the backfill's *guarded* write (``store.write``: only while
the row has no score), not with the re-score's overwrite. Between the insert and that write,
``pixelgrade watch`` (or a backfill) may find the new row and score it first; the row then keeps
that first score, is written once, and the upload says so (:attr:`Uploaded.note`). Only an
explicit re-score overwrites.
"""

from __future__ import annotations

import asyncio
import os
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixelgrade.autoscore import ScoreService
from pixelgrade.backfill.images import row_result
from pixelgrade.errors import WorkerCrashError
from pixelgrade.gallery import Gallery, ImageView
from pixelgrade.scoring import ScoringConfig
from pixelgrade.scoring.sniff import DECODED_FORMATS, sniff
from pixelgrade.stores.base import Row

#: File name extension per decoded format.
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "TIFF": "tif",
              "BMP": "bmp", "AVIF": "avif", "HEIF": "heic"}


class ActionError(Exception):
    """A write that cannot be done: ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Uploaded:
    """An accepted upload: the image as stored, and ``note`` when its row was scored by
    someone else between the insert and this upload's write (that first score is kept)."""

    view: ImageView
    note: str | None = None


@dataclass
class Actions:
    gallery: Gallery
    config: ScoringConfig
    uploads: Path
    #: Relative paths in the URL column are under this folder (None: the working directory,
    #: as the gallery reads them).
    root: Path | None

    #: Uploads read and scored at once (each holds up to ``max_bytes`` in memory); more wait.
    uploads_in_flight: int = 4
    #: Record uploads as URLs: this template with ``{path}`` replaced by the file's path
    #: inside ``uploads`` (None: record the path relative to ``root``).
    uploads_url: str | None = None
    #: What scores and writes (set by the app while it runs).
    service: ScoreService | None = None

    def __post_init__(self) -> None:
        self._upload_slots: asyncio.Semaphore | None = None

    @property
    def upload_slots(self) -> asyncio.Semaphore:
        """Bounds the memory that uploads hold: ``async with actions.upload_slots:`` around
        reading an upload's bytes and :meth:`upload`."""
        if self._upload_slots is None:
            self._upload_slots = asyncio.Semaphore(self.uploads_in_flight)
        return self._upload_slots

    @property
    def scoring(self) -> ScoreService:
        if self.service is None:
            raise ActionError(503, "the scoring service is not running (the server is "
                                   "starting or stopping); try again in a moment")
        return self.service

    async def upload(self, data: bytes) -> Uploaded:
        """Check, score, store and record one uploaded file (see the module docstring)."""
        if len(data) > self.config.max_bytes:
            raise ActionError(413, f"the file is {len(data):,} bytes, over the "
                                   f"{self.config.max_bytes:,}-byte limit")
        found = sniff(data)
        if found.kind != "raster" or found.format not in DECODED_FORMATS:
            formats = ", ".join(EXTENSIONS[f].upper() for f in DECODED_FORMATS)
            raise ActionError(415, f"{found.description}: upload a raster image ({formats})")
        service = self.scoring
        try:
            report: dict[str, Any] = await service.score_data(data, "upload")
        except WorkerCrashError as exc:  # recorded (error log, counters); the pool replaced
            raise ActionError(422, f"the image cannot be scored: {exc}") from exc
        if report["status"] != "scored":
            service.refused("upload", report.get("kind", "decode"), report["reason"],
                            url=f"(upload: {len(data):,} bytes)")
            raise ActionError(422, f"the image cannot be scored: {report['reason']}")
        name = f"{uuid.uuid4().hex}.{EXTENSIONS[str(found.format)]}"
        path = self.uploads / name
        await asyncio.to_thread(_write_new, path, data)
        location = self._location(path)
        try:
            key = await asyncio.to_thread(self.gallery.store.insert_image, location)
            inserted = time.time()
            # Guarded, like the backfill's: a row scored meanwhile (by `pixelgrade watch`)
            # keeps its first score instead of being written twice.
            done = (await service.finish([row_result(Row(key, location), location, report)],
                                         ["upload"], [inserted], raise_errors=True))[0]
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        note = None
        if done.status == "not_written":
            note = ("this image was scored by another process (e.g. `pixelgrade watch`) "
                    "before the upload wrote its score; that first result is kept (re-score "
                    "the image to replace it)")
        return Uploaded(await self._view(key), note)

    async def rescore(self, key: str) -> ImageView:
        """Score the image again from its source and overwrite the stored result."""
        record = await asyncio.to_thread(self.gallery.get_record, key)
        if record is None:
            raise ActionError(404, f"no image with id {key}")
        done = await self.scoring.score_row(Row(record.id, record.location), "rescore",
                                            overwrite=True, raise_errors=True)
        if done.status == "retry_later":  # a transient failure: nothing was written
            raise ActionError(503, "the image could not be read this time: "
                                   f"{done.message or 'try again later'}")
        if done.status == "not_written":  # the URL-checked write refused it (or it was deleted)
            await self._view(record.id)  # 404 when deleted
            raise ActionError(409, "the image's URL changed while it was being scored, so "
                                   "this score (of the old picture) was not written; the new "
                                   "picture is scored by `pixelgrade watch` or the next "
                                   "backfill, or re-score it again")
        return await self._view(record.id)

    async def _view(self, key: Any) -> ImageView:
        view = await asyncio.to_thread(self.gallery.get, key)
        if view is None:  # deleted between the write and the read
            raise ActionError(404, f"image {key} was deleted meanwhile")
        return view

    def _location(self, path: Path) -> str:
        """What goes in the URL column (see the module docstring): the URL made from
        ``uploads_url``, else the path relative to the root (so that the database and its
        folder can move together, and other commands given the same --root find it), else,
        for an uploads folder outside the root (which ``serve`` refuses), the absolute path."""
        if self.uploads_url is not None:
            inside = path.resolve().relative_to(self.uploads.resolve()).as_posix()
            return uploads_url_for(self.uploads_url, inside)
        root = self.root if self.root is not None else Path.cwd()
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return os.fspath(path.resolve())


def uploads_url_for(template: str, path: str) -> str:
    """``template`` with ``{path}`` replaced by ``path`` (percent-encoded; ``/`` kept)."""
    return template.replace("{path}", urllib.parse.quote(path, safe="/"))


def check_uploads_url(template: str) -> str:
    """``template`` if it is an http(s) URL with a ``{path}`` outside its host; else a
    ValueError that says what to pass."""
    example = "e.g. --uploads-url 'https://cdn.example.com/uploads/{path}'"
    parts = urllib.parse.urlsplit(template.replace("{path}", "x"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--uploads-url {template!r} is not an http(s) URL: give the address "
                         f"the uploads folder is published at, {example}")
    if "{path}" not in template or "{path}" in urllib.parse.urlsplit(template).netloc:
        raise ValueError(f"--uploads-url {template!r} needs {{path}} (the file's path inside "
                         f"--uploads) after the host, {example}")
    return template


def _write_new(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as out:  # "x": a generated name never overwrites a file
        out.write(data)
