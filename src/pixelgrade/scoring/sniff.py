"""Tell what a byte string is from its first bytes, never from a file name or a header.

Raster formats are recognised by their magic numbers (the signatures registered for each format:
JPEG SOI ``FF D8 FF``, the PNG signature, ``GIF8``, RIFF/``WEBP``, TIFF byte-order marks, ``BM``,
and the ISO-BMFF ``ftyp`` brands of AVIF and HEIF). Vector formats (SVG, PDF, PostScript) are
recognised so they can be *skipped* rather than failed, and common non-image payloads (an HTML
error page served instead of an image, JSON from an API, plain text) are named in the error so the
user knows what the URL actually returned.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Literal

Kind = Literal["raster", "vector", "not_image", "unsupported", "unknown"]

#: Raster formats pixelgrade decodes, by the name Pillow gives them.
DECODED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP", "AVIF", "HEIF")

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1",
                b"msf1", b"mif2"}
_AVIF_BRANDS = {b"avif", b"avis"}
_SVG = re.compile(rb"<svg[\s>]", re.IGNORECASE)
_HTML = re.compile(rb"<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Sniffed:
    """What the bytes are: ``kind``, a format name and a phrase a person understands."""

    kind: Kind
    format: str | None
    description: str


def _iso_bmff_format(head: bytes) -> str | None:
    """AVIF or HEIF from an ISO base media file's ``ftyp`` box (major and compatible brands)."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return None
    box_size = int.from_bytes(head[0:4], "big")
    brands = {head[8:12]}
    end = min(max(box_size, 16), len(head))
    brands.update(head[i : i + 4] for i in range(16, end - 3, 4))
    if brands & _AVIF_BRANDS:
        return "AVIF"
    if brands & _HEIF_BRANDS:
        return "HEIF"
    return None


def _text_head(data: bytes) -> bytes:
    """The first bytes as lower-noise text: BOM and leading whitespace removed."""
    head = data[:4096]
    for bom in (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"):
        if head.startswith(bom):
            head = head[len(bom) :]
    return head.lstrip()


def _looks_like_text(head: bytes) -> bool:
    if not head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        if exc.start < len(head) - 4:
            return False
        text = head[: exc.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable >= 0.95 * max(len(text), 1)


def sniff(data: bytes) -> Sniffed:
    """Classify ``data`` by content. Never raises; unknown bytes give ``kind="unknown"``."""
    if not data:
        return Sniffed("not_image", None, "empty file (0 bytes)")
    if data.startswith(b"\xff\xd8\xff"):
        return Sniffed("raster", "JPEG", "JPEG image")
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("raster", "PNG", "PNG image")
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("raster", "GIF", "GIF image")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return Sniffed("raster", "WEBP", "WebP image")
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return Sniffed("raster", "TIFF", "TIFF image")
    if data[:2] == b"BM" and len(data) >= 26:
        return Sniffed("raster", "BMP", "BMP image")
    bmff = _iso_bmff_format(data[:64])
    if bmff:
        return Sniffed("raster", bmff, f"{bmff} image")
    if data[4:8] == b"ftyp":
        return Sniffed("unsupported", None, "an ISO media file (video or an unsupported image)")
    if data.startswith(b"%PDF-"):
        return Sniffed("vector", "PDF", "vector image (PDF document)")
    if data.startswith(b"%!PS") or data.startswith(b"\xc5\xd0\xd3\xc6"):
        return Sniffed("vector", "EPS", "vector image (PostScript)")
    if data.startswith(b"\xff\x0a") or data.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"):
        return Sniffed("unsupported", "JXL", "JPEG XL image (not supported yet)")
    if data.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n") or data.startswith(b"\xff\x4f\xff\x51"):
        return Sniffed("unsupported", "JPEG2000", "JPEG 2000 image (not supported)")
    if data[:4] in (b"\x00\x00\x01\x00", b"\x00\x00\x02\x00"):
        return Sniffed("unsupported", "ICO", "icon file (ICO/CUR, not supported)")
    if data.startswith(b"\x1f\x8b"):
        try:
            inner = zlib.decompressobj(wbits=31).decompress(data[:65536], 4096)
        except zlib.error:
            inner = b""
        if _SVG.search(_text_head(inner)):
            return Sniffed("vector", "SVG", "vector image (compressed SVG)")
        return Sniffed("not_image", None, "gzip-compressed data, not an image")

    head = _text_head(data)
    if head.startswith(b"<"):
        if _SVG.search(head):
            return Sniffed("vector", "SVG", "vector image (SVG)")
        if _HTML.search(head):
            return Sniffed("not_image", None,
                           "an HTML page, not an image (an error or login page?)")
        return Sniffed("not_image", None, "XML or markup text, not an image")
    if head[:1] in (b"{", b"[") and _looks_like_text(head):
        return Sniffed("not_image", None, "JSON text, not an image (an API error response?)")
    if _looks_like_text(head):
        return Sniffed("not_image", None, "plain text, not an image")
    return Sniffed("unknown", None, f"unrecognised data (first bytes {data[:8].hex(' ')})")
