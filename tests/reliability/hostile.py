"""A corpus of hostile files, made in code (no binary blobs), and the valid seeds they come from.

Each :class:`Hostile` names a file, how to make it, the status ``score_bytes`` must give it and
words its reason must contain. They are what a public upload form or a table other people write
to really receives: files cut off or damaged (JPEG, PNG, WebP, HEIC), empty files, HTML and JSON
served as images, decompression bombs declared in the header of every raster format we read
(65535 x 65535, and between our 100 MP limit and Pillow's own guard), a zlib bomb that is
genuinely 100 MP once inflated, a GIF with 10,000 frames, 1 x 100000 and 100000 x 1 strips, SVG
that points at the cloud metadata address or defines an XXE entity, polyglots (JPEG+ZIP,
GIF+JavaScript, PNG with HTML after IEND), a TIFF whose IFD claims 65,535 entries, CMYK,
16-bit and animated images, and EXIF orientation garbage.

The image parts come from :mod:`tests.images` (the scikit-image sample photo, encoded in memory).
Bombs and broken structures are written byte by byte, following each format's specification:
JPEG (ITU-T T.81, SOF0 segment), PNG (RFC 2083 / ISO 15948 chunks), GIF89a (logical screen
descriptor), TIFF 6.0 (IFD entries), WebP (RIFF container, VP8X chunk) and HEIF (ISO/IEC
23008-12, ``ispe`` property).
"""

from __future__ import annotations

import io
import struct
import time
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from PIL import Image

from pixelgrade.backfill import work
from pixelgrade.backfill.images import score_path
from pixelgrade.backfill.work import WorkSettings
from pixelgrade.scoring import ScoringConfig, score_bytes
from tests import images

#: The address cloud providers serve instance credentials from: an SSRF target.
METADATA_URL = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


@dataclass(frozen=True, slots=True)
class Hostile:
    """A hostile file: ``status`` it must get (``scored``, ``failed``, ``skipped``) and words
    (any case) its reason must contain; for scored files, ``says`` is checked against the format.
    """

    name: str
    make: Callable[[], bytes]
    status: str
    says: tuple[str, ...]


# --- helpers ------------------------------------------------------------------------------------


def _cut(data: bytes, fraction: float) -> bytes:
    return data[: int(len(data) * fraction)]


def _overwrite(data: bytes, start: int, length: int, seed: int = 7) -> bytes:
    noise = np.random.default_rng(seed).integers(0, 256, length, np.uint8).tobytes()
    return data[:start] + noise + data[start + length:]


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def jpeg_header_bomb(width: int = 65535, height: int = 65535) -> bytes:
    """SOI, a baseline SOF0 declaring ``width`` x ``height`` 3-component, then EOI (T.81 B.2.2)."""
    components = b"".join(struct.pack(">BBB", i, 0x11, 0) for i in (1, 2, 3))
    sof = _jpeg_segment(0xC0, struct.pack(">BHHB", 8, height, width, 3) + components)
    return b"\xff\xd8" + sof + b"\xff\xd9"


def gif_header_bomb(width: int = 65535, height: int = 65535) -> bytes:
    """GIF89a whose logical screen and one image are ``width`` x ``height``, with a 2-colour
    table and an LZW stream of a few codes."""
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0)  # global table of 2 colours
    table = b"\x00\x00\x00\xff\xff\xff"
    descriptor = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0)
    lzw = b"\x02\x02\x44\x01\x00"  # min code size 2, one 2-byte sub-block, terminator
    return b"GIF89a" + screen + table + descriptor + lzw + b";"


def webp_header_bomb(width: int = 16384, height: int = 16384) -> bytes:
    """A WebP extended-format (VP8X) header declaring a ``width`` x ``height`` canvas (stored as
    24-bit "minus one" values), followed by a tiny real VP8L image."""
    small = images.webp_lossless(images.thumbnail(8, 8))
    inner = small[12:]  # the VP8L chunk of the small file
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (width - 1).to_bytes(
        3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x + inner
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _tiff(entries: list[tuple[int, int, int, int]], *, count: int | None = None,
          tail: bytes = b"") -> bytes:
    """Little-endian TIFF: header, one IFD of ``entries`` (tag, type, count, value) at offset 8;
    ``count`` overrides the declared number of entries."""
    declared = len(entries) if count is None else count
    ifd = struct.pack("<H", declared) + b"".join(
        struct.pack("<HHII", *entry) for entry in sorted(entries)) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + tail


_SHORT, _LONG = 3, 4


def tiff_header_bomb(width: int = 65535, height: int = 65535) -> bytes:
    """Baseline grey TIFF tags declaring ``width`` x ``height``, one strip of 16 bytes."""
    data_offset = 8 + 2 + 8 * 12 + 4
    return _tiff([
        (256, _LONG, 1, width), (257, _LONG, 1, height), (258, _SHORT, 1, 8),
        (259, _SHORT, 1, 1), (262, _SHORT, 1, 1), (273, _LONG, 1, data_offset),
        (278, _LONG, 1, height), (279, _LONG, 1, 16),
    ], tail=bytes(16))


def tiff_huge_ifd_count() -> bytes:
    """A TIFF whose first IFD claims 65,535 entries (786 KB of them) in a 130-byte file."""
    return _tiff([(256, _LONG, 1, 64), (257, _LONG, 1, 64)], count=65535, tail=bytes(100))


def png_zlib_bomb(side: int = 10000) -> bytes:
    """A complete, valid ``side`` x ``side`` grey PNG of zeros: about 100 KB on disk, ``side**2``
    bytes (100 MB at 10000, exactly the default --max-pixels) once inflated."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    packer = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte + a row of zeros
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return (images.PNG_SIGNATURE + images.png_chunk(b"IHDR", ihdr)
            + images.png_chunk(b"IDAT", idat) + images.png_chunk(b"IEND", b""))


def strip_png(width: int, height: int) -> bytes:
    """A real ``width`` x ``height`` PNG: a grey ramp, so it is not blank."""
    ramp = (np.arange(width * height, dtype=np.uint32) % 251).astype(np.uint8)
    return images.png(Image.fromarray(ramp.reshape(height, width), "L"))


def gif_many_frames(frames: int = 10_000) -> bytes:
    """An animated GIF of ``frames`` 16x16 frames: Pillow writes two, the second is repeated."""
    first = images.thumbnail(16, 16).convert("P")
    second = first.transpose(Image.Transpose.ROTATE_180)
    two = images.encode(first, "GIF", save_all=True, append_images=[second], duration=20,
                        loop=0)
    start = two.index(b"\x21\xf9", two.index(b"\x21\xf9") + 1)  # second graphic control ext.
    frame = two[start:-1]  # up to the trailer ";"
    return two[:-1] + frame * (frames - 2) + b";"


def svg_external_reference() -> bytes:
    return (b'<svg xmlns="http://www.w3.org/2000/svg" '
            b'xmlns:xlink="http://www.w3.org/1999/xlink" width="64" height="64">'
            b'<image href="' + METADATA_URL.encode() + b'" width="64" height="64"/>'
            b'<image xlink:href="file:///etc/passwd" width="1" height="1"/></svg>')


def svg_xxe() -> bytes:
    return (b'<?xml version="1.0"?>\n<!DOCTYPE svg [ <!ENTITY xxe SYSTEM "file:///etc/passwd">'
            b' <!ENTITY lol "lol"> <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"> ]>\n'
            b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
            b"<text>&xxe;&lol2;</text></svg>")


def jpeg_zip_polyglot() -> bytes:
    """A real JPEG followed by a ZIP archive (a ZIP's directory is read from the end)."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("payload.js", "alert(document.domain)")
    return images.jpeg() + archive.getvalue()


def gif_js_polyglot() -> bytes:
    """The GIF/JavaScript trick: the screen width bytes read ``/*`` (a comment opens, so the
    header's size becomes 10799 px wide), the comment closes after the trailer and JS follows."""
    gif = bytearray(images.gif(images.thumbnail(72, 48).convert("P")))
    gif[6:8] = b"/*"
    return bytes(gif) + b"*/=1;alert(document.cookie);"


def png_html_after_iend() -> bytes:
    return images.png() + b"<html><script>alert(document.cookie)</script></html>"


def jpeg_exif_garbage() -> bytes:
    """A JPEG whose EXIF says orientation 65535, then an IFD pointing past the end of itself."""
    exif = Image.Exif()
    exif[images.ORIENTATION_TAG] = 65535
    raw = bytearray(exif.tobytes())
    raw += struct.pack("<HHII", 0x8769, _LONG, 1, 0x7FFFFFF0)  # ExifIFD offset out of range
    return images.jpeg(exif=bytes(raw))


def jpeg_exif_orientation_text() -> bytes:
    """EXIF orientation stored as ASCII text instead of a SHORT."""
    ifd = struct.pack("<H", 1) + struct.pack("<HHI4s", images.ORIENTATION_TAG, 2, 4, b"six\x00")
    exif = b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)
    data = images.jpeg()
    return data[:2] + _jpeg_segment(0xE1, exif) + data[2:]


def jpeg_corrupt_sof() -> bytes:
    """A JPEG whose frame header is overwritten: sample precision 0, 0 components."""
    data = bytearray(images.jpeg())
    sof = data.index(b"\xff\xc0")
    data[sof + 4] = 0  # precision
    data[sof + 9] = 0  # number of components
    return bytes(data)


def jpeg_corrupt_scan() -> bytes:
    """A JPEG whose entropy-coded data is replaced by 0xFF 0x00 pairs and a stray marker."""
    data = images.jpeg()
    start = data.index(b"\xff\xda") + 20
    return data[:start] + b"\xff\xd0\xff\xc0" * 2000 + data[start + 8000:]


def png_corrupt_idat() -> bytes:
    """A PNG whose compressed pixel data is overwritten (the CRC is left stale)."""
    data = images.png()
    return _overwrite(data, data.index(b"IDAT") + 40, 400)


def webp_corrupt() -> bytes:
    """A lossy WebP whose VP8 frame header is overwritten (the RIFF sizes stay right)."""
    data = images.webp_lossy()
    return _overwrite(data, 20, 64)


def heif_header_bomb(width: int = 65535, height: int = 65535) -> bytes:
    """A real HEIC whose image spatial extents property (``ispe``, ISO/IEC 23008-12 6.5.3:
    version/flags, then 32-bit width and height) declares ``width`` x ``height``."""
    data = bytearray(images.heic())
    at = data.find(b"ispe")
    while at != -1:
        data[at + 8:at + 16] = struct.pack(">II", width, height)
        at = data.find(b"ispe", at + 4)
    return bytes(data)


def heic_corrupt() -> bytes:
    """A HEIC whose ``meta`` box (item locations, properties) is overwritten. (Damage to the
    HEVC data itself is concealed by the decoder and still gives a picture.)"""
    data = images.heic()
    start = data.index(b"meta") + 8
    return _overwrite(data, start, 96)


# --- the corpus ---------------------------------------------------------------------------------

_TOO_MANY = ("more pixels than the decoder",)
_OVER_OURS = ("over the 100 MP limit", "--max-pixels")

CORPUS: tuple[Hostile, ...] = (
    Hostile("zero_bytes", lambda: b"", "failed", ("empty file",)),
    Hostile("jpeg_truncated", lambda: _cut(images.jpeg(), 0.6), "failed", ("truncated", "JPEG")),
    Hostile("jpeg_corrupt_sof", jpeg_corrupt_sof, "failed", ("corrupt JPEG",)),
    Hostile("jpeg_corrupt_scan", jpeg_corrupt_scan, "failed", ("JPEG",)),
    Hostile("png_truncated", lambda: _cut(images.png(), 0.5), "failed", ("truncated", "PNG")),
    Hostile("png_corrupt_idat", png_corrupt_idat, "failed", ("corrupt PNG",)),
    Hostile("webp_truncated", lambda: _cut(images.webp_lossy(), 0.5), "failed",
            ("truncated WEBP",)),
    Hostile("webp_corrupt", webp_corrupt, "failed", ("WEBP",)),
    Hostile("heic_truncated", lambda: _cut(images.heic(), 0.5), "failed", ("HEIF",)),
    Hostile("heic_corrupt", heic_corrupt, "failed", ("HEIF",)),
    Hostile("html_served_as_image",
            lambda: b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>",
            "failed", ("HTML page", "not an image")),
    Hostile("json_served_as_image", lambda: b'{"error": {"code": 403, "message": "denied"}}',
            "failed", ("JSON", "not an image")),
    Hostile("png_bomb_65535", lambda: images.png_header_bomb(65535, 65535), "failed",
            _TOO_MANY),
    Hostile("png_bomb_between_limits", lambda: images.png_header_bomb(13000, 13000), "failed",
            ("13000x13000", "169 MP", *_OVER_OURS)),
    Hostile("jpeg_bomb_65535", jpeg_header_bomb, "failed", _TOO_MANY),
    Hostile("jpeg_bomb_between_limits", lambda: jpeg_header_bomb(13000, 13000), "failed",
            ("13000x13000", *_OVER_OURS)),
    Hostile("webp_bomb_16384", webp_header_bomb, "failed", _TOO_MANY),
    Hostile("gif_bomb_65535", gif_header_bomb, "failed", _TOO_MANY),
    Hostile("tiff_bomb_65535", tiff_header_bomb, "failed", _TOO_MANY),
    Hostile("tiff_bomb_between_limits", lambda: tiff_header_bomb(13000, 13000), "failed",
            ("13000x13000", *_OVER_OURS)),
    Hostile("heic_bomb_65535", heif_header_bomb, "failed", _TOO_MANY),
    Hostile("png_zlib_bomb_100mp", png_zlib_bomb, "scored", ("PNG",)),
    Hostile("gif_10000_frames", gif_many_frames, "scored", ("GIF",)),
    Hostile("png_1x100000", lambda: strip_png(1, 100_000), "scored", ("PNG",)),
    Hostile("png_100000x1", lambda: strip_png(100_000, 1), "scored", ("PNG",)),
    Hostile("svg_external_reference", svg_external_reference, "skipped", ("vector image",)),
    Hostile("svg_xxe", svg_xxe, "skipped", ("vector image",)),
    Hostile("jpeg_zip_polyglot", jpeg_zip_polyglot, "scored", ("JPEG",)),
    Hostile("gif_js_polyglot", gif_js_polyglot, "scored", ("GIF",)),
    Hostile("png_html_after_iend", png_html_after_iend, "scored", ("PNG",)),
    Hostile("tiff_huge_ifd_count", tiff_huge_ifd_count, "failed", ("TIFF",)),
    Hostile("jpeg_cmyk", images.cmyk_jpeg, "scored", ("JPEG",)),
    Hostile("png_16bit", images.png16, "scored", ("PNG",)),
    Hostile("webp_animated", images.animated_webp, "scored", ("WEBP",)),
    Hostile("jpeg_exif_orientation_garbage", jpeg_exif_garbage, "scored", ("JPEG",)),
    Hostile("jpeg_exif_orientation_text", jpeg_exif_orientation_text, "scored", ("JPEG",)),
    Hostile("random_bytes",
            lambda: np.random.default_rng(7).integers(0, 256, 4096, np.uint8).tobytes(),
            "failed", ("unrecognised data",)),
)


@cache
def corpus_bytes() -> dict[str, bytes]:
    """Every corpus file, made once per process."""
    return {item.name: item.make() for item in CORPUS}


# --- valid seeds for fuzzing --------------------------------------------------------------------


@cache
def valid_seeds() -> dict[str, bytes]:
    """One small valid file of every format the decoder reads (72x48, AVIF and HEIC included),
    the starting points the fuzz test mutates."""
    im = images.thumbnail()
    seeds = dict(images.small_seeds())
    seeds.pop("jpeg_dct_scaled")  # 1.7 MP: too slow to decode thousands of times
    seeds.update({
        "tiff": images.tiff(im),
        "bmp": images.bmp(im),
        "avif": images.encode(im, "AVIF", quality=60),
        "heic": images.encode(im, "HEIF", quality=60),
        "png_16bit": images.png(Image.fromarray(  # uint16 samples: mode I;16
            np.asarray(im.convert("L")).astype(np.uint16) * 257)),
        "jpeg_cmyk": images.jpeg(im.convert("CMYK")),
    })
    return seeds


# --- measuring a scoring process ----------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def score_measured(data: bytes, config: ScoringConfig) -> tuple[dict[str, Any], int]:
    """Pool function: ``score_bytes(data).to_dict()`` and this process's peak resident memory
    (VmHWM, kB) while scoring it. The peak is reset first (``/proc/self/clear_refs`` 5, Linux
    4.0+), so it covers this file alone, on top of what the worker already held."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")
    report = score_bytes(data, config).to_dict()
    return report, _status_kb("VmHWM")


#: A local file whose name contains this makes :func:`score_path_or_stall` hang.
STALL_MARK = "stall"


def score_path_or_stall(path: str, config: ScoringConfig) -> dict[str, Any]:
    """Pool function standing in for a decoder stuck in a loop on one file (none of the corpus
    does this, which is the point: the backfill must survive the one that will)."""
    if STALL_MARK in path.rsplit("/", 1)[-1]:
        while True:
            time.sleep(1)
    return score_path(path, config)


#: A file starting with these bytes makes :func:`score_chunk_or_stall`'s ``score_bytes`` loop.
STALL_BYTES = b"STALL-FOREVER\n"


def _score_bytes_or_stall(data: bytes, config: ScoringConfig) -> Any:
    if data.startswith(STALL_BYTES):
        while True:
            time.sleep(1)
    return score_bytes(data, config)


def score_chunk_or_stall(locations: Sequence[str], settings: WorkSettings
                         ) -> list[dict[str, Any]]:
    """Chunk task: the real :func:`~pixelgrade.backfill.work.score_chunk` (downloads, reads,
    the worker's watchdog), with ``score_bytes`` looping forever on a file that starts with
    :data:`STALL_BYTES`. Replaces ``score_bytes`` in this worker process only."""
    work.score_bytes = _score_bytes_or_stall  # type: ignore[assignment]
    return work.score_chunk(locations, settings)
