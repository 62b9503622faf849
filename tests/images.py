"""Test images made in memory, in every format and mode the decoder claims to read.

Everything starts from a scikit-image sample photo (``pixelgrade.samples``: files inside the
installed package, nothing is downloaded) and is encoded with Pillow or pillow_heif. The photo
is 600x400, not square, so a width/height swap or a missed EXIF rotation shows in the numbers.
Also here: a JPEG stored sideways with an EXIF orientation tag, an animated GIF, a 12 MP JPEG
for shrink-on-load, and a PNG "header bomb" built by hand (a valid header declaring
30000x30000 pixels in front of a few bytes of data; no pixels are ever allocated).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np
import pillow_heif
from PIL import Image

from pixelgrade import samples

#: The sample photo most tests use, and its true size.
PHOTO = "coffee.png"
WIDTH, HEIGHT = 600, 400
#: EXIF tag number of Orientation.
ORIENTATION_TAG = 0x0112
#: What a viewer does to show a file with each EXIF orientation (as ``ImageOps.exif_transpose``).
VIEWER_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
#: The inverse of each: how a camera stores the pixels so that the viewer shows them upright.
_STORED_TRANSPOSE = {
    **VIEWER_TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}


@cache
def _photo_rgb(name: str) -> np.ndarray:
    rgb = samples.load_photo(name)
    rgb.setflags(write=False)
    return rgb


def photo(name: str = PHOTO) -> Image.Image:
    """A fresh RGB Pillow image of a sample photo."""
    return Image.fromarray(_photo_rgb(name))


def thumbnail(width: int = 72, height: int = 48) -> Image.Image:
    """A small version of the photo, for tests that decode it hundreds of times."""
    return photo().resize((width, height), Image.Resampling.BOX)


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    """``im`` saved in Pillow format ``fmt`` (HEIF through pillow_heif)."""
    buffer = io.BytesIO()
    if fmt == "HEIF":
        pillow_heif.from_pillow(im).save(buffer, **params)
    else:
        im.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def grey_of(im: Image.Image) -> np.ndarray:
    """Luma as Pillow computes it (ITU-R BT.601), the reference the decoder should match."""
    return np.asarray(im.convert("L"))


# --- one function per format -----------------------------------------------------------------


def jpeg(im: Image.Image | None = None, quality: int = 90, **params: object) -> bytes:
    return encode(photo() if im is None else im, "JPEG", quality=quality, **params)


def png(im: Image.Image | None = None) -> bytes:
    return encode(photo() if im is None else im, "PNG")


def webp_lossy(im: Image.Image | None = None, quality: int = 80) -> bytes:
    return encode(photo() if im is None else im, "WEBP", quality=quality, method=4)


def webp_lossless(im: Image.Image | None = None) -> bytes:
    return encode(photo() if im is None else im, "WEBP", lossless=True)


def gif(im: Image.Image | None = None) -> bytes:
    return encode(photo() if im is None else im, "GIF")


def tiff(im: Image.Image | None = None) -> bytes:
    return encode(photo() if im is None else im, "TIFF", compression="tiff_deflate")


def bmp(im: Image.Image | None = None) -> bytes:
    return encode(photo() if im is None else im, "BMP")


def avif(im: Image.Image | None = None) -> bytes:
    return _slow_photo("AVIF") if im is None else encode(im, "AVIF", quality=80)


def heic(im: Image.Image | None = None) -> bytes:
    return _slow_photo("HEIF") if im is None else encode(im, "HEIF", quality=80)


@cache
def _slow_photo(fmt: str) -> bytes:
    """The photo as AVIF or HEIC, encoded once: these encoders take most of a second."""
    return encode(photo(), fmt, quality=80)


# --- modes -----------------------------------------------------------------------------------


def cmyk_jpeg() -> bytes:
    return jpeg(photo().convert("CMYK"))


def png16_array() -> np.ndarray:
    """16-bit grey samples: the photo in the top byte, an unrelated ramp in the low byte.

    (Scaling by 257 would repeat the top byte in the low one and hide a decoder keeping the
    wrong byte.)
    """
    grey = grey_of(photo()).astype(np.uint16)
    low = (np.arange(grey.size, dtype=np.uint16) * 97 % 256).reshape(grey.shape)
    return grey * 256 + low


def png16() -> bytes:
    """A 16-bit greyscale PNG (Pillow mode ``I;16``)."""
    im = Image.fromarray(png16_array())
    assert im.mode == "I;16"
    return png(im)


def palette_image(colors: int = 256) -> Image.Image:
    """The photo quantised to an adaptive palette (mode ``P``)."""
    return photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=colors)


def palette_png() -> bytes:
    return png(palette_image())


def palette_png_with_transparency() -> tuple[bytes, np.ndarray]:
    """Palette PNG whose top 100 rows use an index marked transparent (tRNS), and that mask.

    The photo gets 255 colours, so index 255 is used by the transparent rows alone.
    """
    im = palette_image(colors=255)
    indices = np.asarray(im).copy()
    clear = np.zeros(indices.shape, bool)
    clear[:100] = True
    indices[clear] = 255
    out = Image.fromarray(indices, "P")
    palette = im.getpalette() or []
    out.putpalette(palette + [0, 0, 0] * (256 - len(palette) // 3))
    return encode(out, "PNG", transparency=255), clear


def grey_png() -> bytes:
    return png(photo().convert("L"))


def rgba_png() -> tuple[bytes, np.ndarray]:
    """RGBA PNG with a fully transparent left third, and that mask."""
    rgba = np.dstack([np.asarray(photo()), np.full((HEIGHT, WIDTH), 255, np.uint8)])
    clear = np.zeros((HEIGHT, WIDTH), bool)
    clear[:, : WIDTH // 3] = True
    rgba[clear, 3] = 0
    return png(Image.fromarray(rgba, "RGBA")), clear


def exif_jpeg(orientation: int, im: Image.Image | None = None) -> bytes:
    """A JPEG whose pixels are stored so that a viewer honouring ``orientation`` shows ``im``.

    Orientation 6 is what a phone held upright writes: pixels stored sideways (rotated a quarter
    turn counter-clockwise), to be turned a quarter turn clockwise for display.
    """
    upright = photo() if im is None else im
    stored = upright.transpose(_STORED_TRANSPOSE[orientation]) if orientation != 1 else upright
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    return jpeg(stored, exif=exif.tobytes())


def animated_gif(frames: int = 3) -> bytes:
    """An animated GIF: the photo first, then flat grey frames (a blank a scorer must not see)."""
    first = palette_image()
    blank = Image.new("P", first.size, 0)
    blank.putpalette([128, 128, 128] * 256)
    return encode(first, "GIF", save_all=True, append_images=[blank] * (frames - 1),
                  duration=100, loop=0)


def animated_webp(frames: int = 2) -> bytes:
    first = photo()
    blank = Image.new("RGB", first.size, (128, 128, 128))
    return encode(first, "WEBP", save_all=True, append_images=[blank] * (frames - 1),
                  duration=100, quality=80)


@cache
def large_jpeg(width: int = 4000, height: int = 3000) -> bytes:
    """A 12 MP camera-sized JPEG (the photo enlarged)."""
    big = cv2.resize(np.asarray(photo()), (width, height), interpolation=cv2.INTER_LINEAR)
    return jpeg(Image.fromarray(big), quality=85)


# --- hand-built files ------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, type, data and the CRC-32 of type + data."""
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_header_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A valid PNG header declaring ``width`` x ``height`` 8-bit grey, then one row of data.

    About 100 bytes on disk; fully decoded it would need ``width * height`` bytes (900 MB for
    the default), which is what a decompression-bomb guard must refuse to allocate.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # depth 8, greyscale
    one_row = zlib.compress(bytes(width + 1), 9)  # filter byte + a row of zeros
    return (PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", one_row)
            + png_chunk(b"IEND", b""))


# --- the catalogue ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """A named way of making a test file, and the ``format`` the report must give it."""

    name: str
    make: Callable[[], bytes]
    format: str


#: Every supported format, at the photo's true size (WIDTH x HEIGHT).
FORMATS: tuple[Sample, ...] = (
    Sample("jpeg", jpeg, "JPEG"),
    Sample("png", png, "PNG"),
    Sample("webp_lossy", webp_lossy, "WEBP"),
    Sample("webp_lossless", webp_lossless, "WEBP"),
    Sample("gif", lambda: gif(palette_image()), "GIF"),
    Sample("tiff", tiff, "TIFF"),
    Sample("bmp", bmp, "BMP"),
    Sample("avif", avif, "AVIF"),
    Sample("heic", heic, "HEIF"),
    Sample("cmyk_jpeg", cmyk_jpeg, "JPEG"),
    Sample("png_16bit", png16, "PNG"),
    Sample("png_palette", palette_png, "PNG"),
    Sample("png_grey", grey_png, "PNG"),
    Sample("png_rgba", lambda: rgba_png()[0], "PNG"),
    Sample("png_palette_transparent", lambda: palette_png_with_transparency()[0], "PNG"),
    Sample("jpeg_exif_rotated", lambda: exif_jpeg(6), "JPEG"),
    Sample("gif_animated", animated_gif, "GIF"),
)


def small_seeds() -> dict[str, bytes]:
    """Small valid files to mutate in fuzz tests: fast to decode hundreds of times.

    Mostly 72x48; ``jpeg_dct_scaled`` is 1600x1067 so that libjpeg's scaled decode runs, and
    ``jpeg_exif`` carries an orientation tag, so EXIF parsing meets damaged bytes too.
    """
    im = thumbnail()
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6
    return {
        "jpeg": jpeg(im, quality=80),
        "jpeg_exif": jpeg(im, quality=80, exif=exif.tobytes()),
        "jpeg_dct_scaled": jpeg(photo().resize((1600, 1067), Image.Resampling.BILINEAR),
                                quality=30),
        "png": png(im),
        "webp": webp_lossy(im),
        "webp_lossless": webp_lossless(im),
        "gif": encode(im.convert("P"), "GIF", save_all=True,
                      append_images=[im.convert("P").transpose(Image.Transpose.ROTATE_180)]),
    }
