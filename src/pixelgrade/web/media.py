"""Pictures for the gallery: source bytes from where the row points, and cached renditions.

The grid never sends an original: each image is shown as a small JPEG made here with Pillow
(shrink-on-load for JPEG, EXIF orientation applied, transparency over white) and cached on
disk under a key of the row (store, id, location, and the file's size and mtime for a local
file), so a changed file or a re-pointed row gets a new picture. The image page shows a larger
rendition, still never the original bytes (which could be an SVG with script in it, or 50 MB).

Bytes come from the same places the backfill reads, under the same guards: a local path (a
regular file under the root, the SQLite database's folder by default; see
:func:`pixelgrade.sources.files.resolve_local`), an http(s) URL to a public address through the
fetcher (:mod:`pixelgrade.sources.netguard`), or an object of a Supabase Storage bucket.
Anything that cannot be read, is refused or cannot be decoded gets a placeholder, never an
error page, and never a message naming the server's folders.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from pixelgrade.backfill.images import Locator
from pixelgrade.errors import FetchError, ImageError
from pixelgrade.scoring.sniff import DECODED_FORMATS, sniff
from pixelgrade.sources.files import read_file
from pixelgrade.sources.http import HttpFetcher, is_url
from pixelgrade.stores.base import ImageRecord, Row
from pixelgrade.web.refusals import PreviewRefusals


@dataclass(frozen=True)
class Rendition:
    """A picture size: ``long_side`` pixels at most, JPEG ``quality``."""

    name: str
    long_side: int
    quality: int


#: The grid's thumbnail (shown at about 200 CSS px; 2x for high-density screens).
THUMB = Rendition("thumb", 400, 80)
#: The image page's picture.
LARGE = Rendition("large", 1600, 85)
RENDITIONS = {r.name: r for r in (THUMB, LARGE)}

PLACEHOLDER_SVG = b"""<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400" \
viewBox="0 0 400 400" role="img" aria-label="No preview">\
<rect width="400" height="400" fill="#e5e7eb"/>\
<path d="M130 250l50-60 40 45 30-30 50 45z" fill="#9ca3af"/>\
<circle cx="250" cy="160" r="18" fill="#9ca3af"/>\
<text x="200" y="320" font-family="sans-serif" font-size="24" text-anchor="middle" \
fill="#4b5563">no preview</text></svg>
"""


class SourceError(Exception):
    """The picture cannot be shown (missing, unreadable, not a raster image): use the
    placeholder."""


class SourceReader:
    """Bytes of a row's image, from a path, a URL or a Storage bucket (see :class:`Locator`)."""

    def __init__(self, locator: Locator, fetcher: HttpFetcher | None, max_bytes: int,
                 refusals: PreviewRefusals | None = None) -> None:
        self.locator = locator
        self.fetcher = fetcher
        self.max_bytes = max_bytes
        #: Where the SSRF guard's refusals are recorded (the gallery's notice).
        self.refusals = refusals

    def where(self, record: ImageRecord) -> str:
        """The URL or path the row points at (raises FetchError when it has none)."""
        return self.locator(Row(record.id, record.location))

    async def read(self, record: ImageRecord) -> bytes:
        try:
            location = self.where(record)
            if is_url(location):
                if self.fetcher is None:
                    raise SourceError("http(s) URLs are not enabled")
                return await self.fetcher.fetch(location)
            return await asyncio.to_thread(read_file, location, self.max_bytes)
        except (FetchError, ImageError) as exc:
            if self.refusals is not None:
                self.refusals.record_error(exc)
            raise SourceError(str(exc)) from exc

    def version(self, record: ImageRecord) -> str:
        """What identifies the source's current content without reading it: the location,
        plus size and mtime for a local file."""
        try:
            location = self.where(record)
        except FetchError:
            return ""
        if is_url(location):
            return location
        try:
            stat = os.stat(location)
        except OSError:
            return f"{location}|missing"
        return f"{location}|{stat.st_size}|{stat.st_mtime_ns}"


def render(data: bytes, rendition: Rendition, max_pixels: int) -> bytes:
    """``data`` as a JPEG no larger than ``rendition``. Raises :class:`SourceError`.

    Only the raster formats the scorer decodes are opened (by content, never by name), and the
    header's pixel count is checked before any pixel is decoded (decompression bombs).
    """
    found = sniff(data)
    if found.kind != "raster":
        raise SourceError(found.description)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data), formats=DECODED_FORMATS)
            if im.width * im.height > max_pixels:
                raise SourceError(f"{im.width}x{im.height} is over the pixel limit")
            size = (rendition.long_side, rendition.long_side)
            im.draft("RGB", size)  # JPEG: decode at 1/2, 1/4 or 1/8 scale straight away
            im = ImageOps.exif_transpose(im)
            im.thumbnail(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
            im = _flatten(im)
            out = io.BytesIO()
            im.save(out, "JPEG", quality=rendition.quality, optimize=True)
    except SourceError:
        raise
    except Exception as exc:  # Pillow raises many types for damaged files
        raise SourceError(f"cannot decode: {str(exc)[:200] or type(exc).__name__}") from exc
    return out.getvalue()


def _flatten(im: Image.Image) -> Image.Image:
    """RGB, with any transparency over white (how a page behind it would look)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        im = im.point(lambda value: value / 256).convert("L")
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", im.size, (255, 255, 255))
        background.paste(im.convert("RGBA"), mask=im.convert("RGBA").getchannel("A"))
        return background
    return im.convert("RGB")


class ThumbnailCache:
    """Renditions on disk, one file per (row, source version, rendition)."""

    def __init__(self, folder: Path, store_identity: str) -> None:
        self.folder = folder
        self.store_identity = store_identity

    def path(self, record: ImageRecord, source_version: str, rendition: Rendition) -> Path:
        key = hashlib.sha256("\x1f".join(
            (self.store_identity, str(record.id), str(record.location), source_version,
             rendition.name, str(rendition.long_side))).encode()).hexdigest()[:40]
        return self.folder / key[:2] / f"{key}.jpg"

    @staticmethod
    def save(path: Path, data: bytes) -> None:
        """Write atomically: a reader sees the whole file or none."""
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".part")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
