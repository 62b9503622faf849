"""Bad input never raises: it gets a status and a reason a person can act on.

What a validator really receives: empty uploads, files cut off mid-transfer, an HTML error page
saved under an image name, API errors in JSON, vector files, random bytes, decompression bombs and
files over the configured limits. ``score_bytes`` must answer each with ``failed`` or ``skipped``
and a sentence (no memory addresses, no bare exception names), and ``decode`` must raise only the
documented :class:`~pixelgrade.errors.ImageError` subclasses.
"""

from __future__ import annotations

import gzip
import re
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import ImageFile

from pixelgrade.errors import (
    ImageDecodeError,
    ImageError,
    ImageTooLargeError,
    UnsupportedImageError,
    VectorImageError,
)
from pixelgrade.scoring import ScoringConfig, decode, score_bytes
from tests import images

#: Pillow warns (UserWarning) about the damaged EXIF of some cut TIFFs; score_bytes lets it
#: through and still answers "failed". Not what these tests are about.
pytestmark = pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")

SVG = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
       b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
       b'<rect width="64" height="64" fill="#c33"/></svg>\n')
HTML = (b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
        b"<body><h1>Not Found</h1><p>The requested URL was not found.</p></body></html>\n")
PDF = (b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
       b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
       b"trailer\n<< /Root 1 0 R >>\n%%EOF\n")


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


@dataclass(frozen=True, slots=True)
class Bad:
    """A bad input, the status it must get and words its reason must contain (any case)."""

    name: str
    make: Callable[[], bytes]
    status: str
    says: tuple[str, ...]
    error: type[ImageError]


BAD_INPUTS: tuple[Bad, ...] = (
    Bad("zero_bytes", lambda: b"", "failed", ("empty", "0 bytes"), ImageDecodeError),
    Bad("jpeg_cut_in_half", lambda: _half(images.jpeg()), "failed", ("truncated", "JPEG"),
        ImageDecodeError),
    Bad("png_cut_in_half", lambda: _half(images.png()), "failed", ("truncated", "PNG"),
        ImageDecodeError),
    Bad("webp_cut_in_half", lambda: _half(images.webp_lossy()), "failed",
        ("truncated", "WEBP"), ImageDecodeError),
    Bad("webp_lossless_cut_in_half", lambda: _half(images.webp_lossless()), "failed",
        ("truncated", "WEBP"), ImageDecodeError),
    Bad("gif_cut_in_half", lambda: _half(images.gif()), "failed", ("truncated", "GIF"),
        ImageDecodeError),
    Bad("tiff_cut_in_half", lambda: _half(images.tiff()), "failed", ("TIFF",),
        ImageDecodeError),
    Bad("bmp_cut_in_half", lambda: _half(images.bmp()), "failed", ("truncated", "BMP"),
        ImageDecodeError),
    Bad("avif_cut_in_half", lambda: _half(images.avif()), "failed", ("AVIF",),
        ImageDecodeError),
    Bad("heic_cut_in_half", lambda: _half(images.heic()), "failed", ("HEIF",),
        ImageDecodeError),
    Bad("jpeg_header_only", lambda: images.jpeg()[:120], "failed", ("corrupt", "JPEG"),
        ImageDecodeError),
    Bad("png_signature_only", lambda: images.PNG_SIGNATURE, "failed", ("PNG",),
        ImageDecodeError),
    Bad("html_page_saved_as_jpg", lambda: HTML, "failed", ("HTML page", "not an image"),
        ImageDecodeError),
    Bad("html_with_bom_and_blank_lines", lambda: b"\xef\xbb\xbf\n\n  " + HTML, "failed",
        ("HTML page",), ImageDecodeError),
    Bad("plain_text", lambda: b"Hello, this is a plain text file.\nNothing to see.\n",
        "failed", ("plain text", "not an image"), ImageDecodeError),
    Bad("json", lambda: b'{"error": "not_found", "message": "no such image", "status": 404}',
        "failed", ("JSON", "not an image"), ImageDecodeError),
    Bad("xml", lambda: b'<?xml version="1.0"?><feed><entry/></feed>', "failed",
        ("XML", "not an image"), ImageDecodeError),
    Bad("gzip_not_svg", lambda: gzip.compress(b"just some text"), "failed", ("gzip",),
        ImageDecodeError),
    Bad("random_bytes",
        lambda: np.random.default_rng(20240501).integers(0, 256, 4096, np.uint8).tobytes(),
        "failed", ("unrecognised data", "not an image"), ImageDecodeError),
    Bad("svg", lambda: SVG, "skipped", ("vector image", "SVG"), VectorImageError),
    Bad("svgz", lambda: gzip.compress(SVG), "skipped", ("vector image", "SVG"),
        VectorImageError),
    Bad("pdf", lambda: PDF, "skipped", ("vector image", "PDF"), VectorImageError),
    Bad("eps", lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n",
        "skipped", ("vector image",), VectorImageError),
    Bad("jpeg_xl", lambda: b"\xff\x0a" + bytes(64), "failed", ("JPEG XL", "not supported"),
        UnsupportedImageError),
    Bad("ico", lambda: b"\x00\x00\x01\x00\x01\x00" + bytes(64), "failed",
        ("icon", "not supported"), UnsupportedImageError),
    Bad("png_header_bomb_30000x30000", images.png_header_bomb, "failed", ("pixels", "limit"),
        ImageTooLargeError),
    Bad("png_header_bomb_12000x12000", lambda: images.png_header_bomb(12000, 12000), "failed",
        ("12000x12000", "144 MP", "100 MP limit"), ImageTooLargeError),
)

_ADDRESS = re.compile(r"0x[0-9a-f]{6,}|object at|<_io\.|<PIL\.", re.IGNORECASE)
_CLASS_NAME = re.compile(r"\b[A-Z][a-z]+(?:[A-Z][a-z]*)*(?:Error|Exception|Warning)\b")


def assert_reads_well(reason: str | None) -> None:
    """A sentence for a person: no addresses, no bare exception class, no repeated phrase."""
    assert reason, "a failed or skipped report must say why"
    assert reason == reason.strip() and "\n" not in reason
    assert len(reason) <= 250, reason
    assert not _ADDRESS.search(reason), reason
    assert not _CLASS_NAME.search(reason), reason
    assert not re.fullmatch(r"[A-Za-z]+", reason), reason  # e.g. "KeyError" or "MPO" alone
    # ("truncated" may appear twice: "truncated or corrupt JPEG data: image file is truncated
    # (18 bytes not processed)" is Pillow's wording after ours, quoted as is in the README.)
    for phrase in ("not an image", "not supported", "vector image"):
        assert reason.lower().count(phrase) <= 1, reason


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=lambda b: b.name)
def test_bad_input_gets_a_status_and_a_clear_reason(bad: Bad) -> None:
    data = bad.make()
    report = score_bytes(data)
    assert report.status == bad.status, report.reason
    assert report.score is None and report.band is None and report.components == {}
    assert report.bytes == len(data)
    assert_reads_well(report.reason)
    for words in bad.says:
        assert words.lower() in (report.reason or "").lower(), report.reason


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=lambda b: b.name)
def test_decode_raises_only_the_documented_error(bad: Bad) -> None:
    with pytest.raises(ImageError) as caught:
        decode(bad.make())
    assert type(caught.value) is bad.error
    assert caught.value.status == bad.status


@pytest.fixture
def pixel_loads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every image whose pixels Pillow decodes (``ImageFile.load``) during the test."""
    loads: list[object] = []
    real_load = ImageFile.ImageFile.load

    def spying_load(self: ImageFile.ImageFile) -> object:
        loads.append(self)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spying_load)
    return loads


def test_header_bomb_is_refused_quickly_without_decoding(pixel_loads: list[object]) -> None:
    data = images.png_header_bomb(30000, 30000)  # 900 MP declared, about 100 bytes of file
    assert len(data) < 200
    tracemalloc.start()
    started = time.perf_counter()
    try:
        report = score_bytes(data)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.status == "failed"
    assert "more pixels than" in (report.reason or "")
    assert pixel_loads == []  # refused from the header: no pixel was decoded
    assert elapsed < 1.0
    assert peak < 10_000_000, f"{peak / 1e6:.1f} MB traced"


def test_the_spy_sees_a_real_decode(pixel_loads: list[object]) -> None:
    """Control for the tests above: a normal PNG does go through ``ImageFile.load``."""
    assert score_bytes(images.png()).status == "scored"
    assert pixel_loads


@pytest.mark.parametrize("size", [(12000, 12000), (15000, 8000)])
def test_header_over_max_pixels_is_refused_before_decoding(
        size: tuple[int, int], pixel_loads: list[object]) -> None:
    """Between our 100 MP limit and Pillow's own bomb guard: our check, from the header."""
    report = score_bytes(images.png_header_bomb(*size))
    assert report.status == "failed"
    assert f"{size[0]}x{size[1]}" in (report.reason or "")
    assert "--max-pixels" in (report.reason or "")
    assert pixel_loads == []


def test_input_over_max_bytes_fails_naming_the_limit() -> None:
    data = images.jpeg()
    config = ScoringConfig(max_bytes=10_000)
    report = score_bytes(data, config)
    assert report.status == "failed"
    assert report.reason == (f"file is {len(data):,} bytes, over the 10,000-byte limit "
                             "(raise --max-bytes to score it)")
    assert report.bytes == len(data)
    with pytest.raises(ImageTooLargeError):
        decode(data, config)


def test_max_bytes_is_checked_before_anything_else() -> None:
    """Even bytes that are not an image are refused by size first: nothing big is parsed."""
    report = score_bytes(HTML * 100, ScoringConfig(max_bytes=1_000))
    assert report.status == "failed" and "1,000-byte limit" in (report.reason or "")


def test_input_exactly_at_max_bytes_is_scored() -> None:
    data = images.jpeg()
    assert score_bytes(data, ScoringConfig(max_bytes=len(data))).status == "scored"


def test_max_pixels_lower_than_the_image_fails_naming_both_sizes() -> None:
    config = ScoringConfig(max_pixels=100_000)
    report = score_bytes(images.jpeg(), config)
    assert report.status == "failed"
    assert report.reason == ("JPEG header declares 600x400 = 0.24 MP, over the 0.1 MP limit "
                             "(refused before decoding; raise --max-pixels if the image is "
                             "genuine)")
    with pytest.raises(ImageTooLargeError):
        decode(images.jpeg(), config)


@pytest.mark.parametrize("make", [images.png, images.webp_lossy, images.heic, images.avif],
                         ids=["png", "webp", "heic", "avif"])
def test_max_pixels_applies_to_every_format(make: Callable[[], bytes]) -> None:
    report = score_bytes(make(), ScoringConfig(max_pixels=200_000))
    assert report.status == "failed" and "600x400" in (report.reason or ""), report.reason


@pytest.mark.parametrize(
    ("width", "height"), [(0, 400), (600, 0)], ids=["zero_width", "zero_height"])
def test_png_declaring_an_empty_image_fails(width: int, height: int) -> None:
    report = score_bytes(images.png_header_bomb(width, height))
    assert report.status == "failed"
    assert_reads_well(report.reason)
    assert "PNG" in (report.reason or "")


@pytest.mark.parametrize("cut", [3, 10, 100, 1000, 5000])
def test_jpeg_cut_anywhere_fails_cleanly(cut: int) -> None:
    report = score_bytes(images.jpeg()[:cut])
    assert report.status == "failed"
    assert_reads_well(report.reason)
    assert "JPEG" in (report.reason or "")
