"""Bytes to a grey working array, cheaply and safely.

Order of operations is the safety argument:

1. size cap on the raw bytes;
2. content sniffing (:mod:`pixelgrade.scoring.sniff`): vector files are skipped, HTML/JSON/text
   fail with a name for what they are;
3. header parse with Pillow restricted to the formats we decode (so no plugin that shells out,
   such as EPS through Ghostscript, can ever run);
4. **pixel cap on the header's dimensions, before any pixel is decoded**;
5. shrink-on-load: JPEG is decoded with libjpeg's DCT scaling (Pillow ``draft``) straight to
   luma at 1/2, 1/4 or 1/8 size, so a 12 MP photo never exists at full size in memory;
6. grey conversion that respects the mode (16-bit, CMYK, palette, alpha over neutral grey) and
   EXIF orientation, then an area-average resize to the working size.

Resolution is reported from the header, never from the reduced array.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass, replace

import cv2
import numpy as np
import pillow_heif
from PIL import Image

from pixelgrade.errors import (
    ImageDecodeError,
    ImageTooLargeError,
    UnsupportedImageError,
    VectorImageError,
)
from pixelgrade.scoring.config import WORKING_LONG_SIDE, WORKING_SIDE_SLACK, ScoringConfig
from pixelgrade.scoring.sniff import DECODED_FORMATS, sniff
from pixelgrade.scoring.vp8 import vp8_quantizer

# Registers the HEIF opener with Pillow (plugin registration, as Pillow intends it). AVIF is
# decoded by Pillow's own plugin.
pillow_heif.register_heif_opener()

#: Pillow format names accepted by ``Image.open``. MPO (multi-picture JPEGs from cameras) is
#: not listed: Pillow registers no "MPO" opener (its JPEG opener returns an MPO image when it sees
#: the MP index), and naming it made every unidentifiable file fail with ``KeyError: 'MPO'``.
_PILLOW_FORMATS = DECODED_FORMATS
#: Neutral grey that transparent pixels are composited onto: mid-scale, so neither a
#: transparent background nor its edge is counted as clipped highlights or shadows.
ALPHA_BACKGROUND = 128
_EXIF_ORIENTATION = 0x0112
_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """A decoded image ready for analysis.

    ``grey`` is the luma at working size (long side <= WORKING_LONG_SIDE), uint8.
    ``grid`` is the luma before the final resize, whose pixel grid still carries any 8x8 JPEG
    block structure with period ``grid_period`` (None when no whole-pixel period survives).
    ``scale`` is working long side / original long side (1.0 when analysed at full size).
    ``quantization`` (JPEG tables) and ``webp_quantizer`` (mean VP8 index) describe how hard
    the encoder compressed, read from headers.
    """

    grey: np.ndarray
    grid: np.ndarray
    grid_period: int | None
    width: int
    height: int
    format: str
    mode: str
    scale: float
    quantization: dict[int, list[int]] | None
    webp_quantizer: float | None
    animated: bool


def _dct_scale(width: int, height: int) -> int:
    """Largest libjpeg DCT scale denominator (1, 2, 4 or 8) keeping the long side usable."""
    long_side = max(width, height)
    for denominator in (8, 4, 2):
        if long_side / denominator >= WORKING_LONG_SIDE * WORKING_SIDE_SLACK:
            return denominator
    return 1


def reduce_to_working_size(grid: np.ndarray) -> np.ndarray:
    """Area-average ``grid`` down to a long side between WORKING_SIDE_SLACK x and 1 x
    WORKING_LONG_SIDE, by an integer factor where one fits that range.

    OpenCV's area resampling has a fast path for integer factors (each output pixel is the
    mean of a k x k block) and a general one about six times slower per source pixel (56 ms vs
    8 ms for a 12 MP grey image here); the integer factor also matches what JPEG's DCT scaling
    does, so PNG, WebP and JPEG photos of one size are analysed at the same size. The last
    k - 1 rows and columns may be dropped to make the factor exact.
    """
    long_side = max(grid.shape)
    if long_side <= WORKING_LONG_SIDE:
        return grid
    factor = math.ceil(long_side / WORKING_LONG_SIDE)
    if long_side / factor < WORKING_LONG_SIDE * WORKING_SIDE_SLACK:
        factor -= 1
    reduced = grid
    if factor >= 2 and min(grid.shape) >= factor:
        rows, cols = grid.shape[0] // factor, grid.shape[1] // factor
        reduced = cv2.resize(grid[: rows * factor, : cols * factor], (cols, rows),
                             interpolation=cv2.INTER_AREA)
    if max(reduced.shape) > WORKING_LONG_SIDE:  # no integer factor fits: general resampling
        scale = WORKING_LONG_SIDE / max(reduced.shape)
        size = (max(1, round(reduced.shape[1] * scale)), max(1, round(reduced.shape[0] * scale)))
        reduced = cv2.resize(reduced, size, interpolation=cv2.INTER_AREA)
    return reduced


#: Rows are copied out of Pillow this many bytes at a time (see :func:`_array`).
_BAND_BYTES = 16 * 1024 * 1024


def _array(im: Image.Image, mode: str | None = None) -> np.ndarray:
    """``np.asarray(im.convert(mode) if mode else im)``, made in bands of about
    :data:`_BAND_BYTES` (the conversions used here are per pixel, so bands give the same values).

    ``np.asarray`` goes through ``Image.tobytes``, which builds the whole image as a list of
    chunks and then joins them: two transient copies on top of Pillow's own, plus the converted
    image. For a grey PNG at the 100 MP limit that was 200 MB of the worker's 334 MB peak (now
    255 MB); for an RGB one, 631 MB (now about 540 MB: Pillow's 4 bytes a pixel remain).
    """
    width, height = im.size
    rows = max(1, _BAND_BYTES // max(1, width * len(im.getbands()) * 4))

    def band(top: int, bottom: int) -> np.ndarray:
        part = im if (top, bottom) == (0, height) else im.crop((0, top, width, bottom))
        return np.asarray(part.convert(mode) if mode else part)

    if height <= rows:
        return band(0, height)
    first = band(0, rows)
    out = np.empty((height, *first.shape[1:]), first.dtype)
    out[:rows] = first
    for top in range(rows, height, rows):
        bottom = min(height, top + rows)
        out[top:bottom] = band(top, bottom)
    return out


def _to_grey(im: Image.Image) -> np.ndarray:
    """Luma (ITU-R BT.601, as Pillow's ``convert("L")``) of any Pillow mode, as uint8."""
    mode = im.mode
    if mode == "L":
        return _array(im)
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = _array(im)
        if values.dtype.kind == "f":
            top = 1.0 if float(np.nanmax(values)) <= 1.0 else 255.0
            return np.clip(np.nan_to_num(values) * (255.0 / top), 0, 255).astype(np.uint8)
        peak = int(values.max(initial=0))
        if mode.startswith("I;16") or peak > 255:
            # 16-bit samples: keep the top byte (65535 -> 255), as a display would.
            return (values.astype(np.uint32) >> 8).astype(np.uint8)
        return values.astype(np.uint8)
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (ALPHA_BACKGROUND,) * 3 + (255,))
        im = Image.alpha_composite(background, rgba)
    if im.mode not in ("RGB", "L"):
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, 1, ...
    return _array(im, "L")


def _open(data: bytes, fmt: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS)
    except Image.DecompressionBombError as exc:
        # Pillow's own guard fires inside Image.open, before our max_pixels check can, for
        # headers over 2 * MAX_IMAGE_PIXELS; no --max-pixels setting lets such a file through.
        ceiling = 2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6
        raise ImageTooLargeError(
            f"{fmt} header declares more pixels than the decoder's {ceiling:,.0f} MP limit "
            "(refused before decoding: a decompression bomb or a damaged header)"
        ) from exc
    except Image.UnidentifiedImageError as exc:
        # Pillow's text names the BytesIO object (a memory address): not useful, not stable.
        raise ImageDecodeError(
            f"corrupt {fmt} header: starts like {fmt} but cannot be read as one"
        ) from exc
    except Exception as exc:  # Pillow raises many types for bad headers
        riff_length = int.from_bytes(data[4:8], "little") + 8 if fmt == "WEBP" else 0
        if riff_length > len(data):
            # libwebp only says "could not create decoder object"; the RIFF header knows better.
            raise ImageDecodeError(
                f"truncated {fmt} file: {len(data):,} of the {riff_length:,} bytes its header "
                "declares"
            ) from exc
        raise ImageDecodeError(f"corrupt {fmt} header: {_describe(exc)}") from exc


def _megapixels(pixels: int) -> str:
    """Megapixels for a message: whole numbers from 10 MP, two significant digits below (a small
    --max-pixels printed "0.24 MP, over the 0.1 MP limit" as "0 MP, over the 0 MP limit")."""
    megapixels = pixels / 1e6
    return f"{megapixels:,.0f}" if megapixels >= 10 else f"{megapixels:.2g}"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]


def decode(data: bytes, config: ScoringConfig | None = None) -> DecodedImage:
    """Decode ``data`` to a :class:`DecodedImage`, enforcing ``config``'s limits first.

    Raises :class:`VectorImageError` (SVG/PDF/EPS), :class:`ImageTooLargeError`,
    :class:`UnsupportedImageError` or :class:`ImageDecodeError`; never anything else for bad bytes.
    """
    config = config or ScoringConfig()
    if len(data) > config.max_bytes:
        raise ImageTooLargeError(
            f"file is {len(data):,} bytes, over the {config.max_bytes:,}-byte limit "
            "(raise --max-bytes to score it)"
        )
    sniffed = sniff(data)
    if sniffed.kind == "vector":
        raise VectorImageError(f"vector image ({sniffed.format})")
    if sniffed.kind == "unsupported":
        # sniff's phrases already say so ("JPEG XL image (not supported yet)"): no prefix, which
        # read "unsupported format: ... (not supported)".
        raise UnsupportedImageError(sniffed.description)
    if sniffed.kind != "raster":
        # Most phrases already end ", not an image"; prefixing them too read "not an image: plain
        # text, not an image".
        description = sniffed.description
        if "not an image" not in description:
            description = f"not an image: {description}"
        raise ImageDecodeError(description)
    fmt = sniffed.format or "image"

    with warnings.catch_warnings():
        # Pillow warns (UserWarning) about damage it works around, such as a corrupt EXIF
        # block; the pixels are still usable, and a warning per image would flood a backfill.
        warnings.simplefilter("ignore", UserWarning)
        im = _open(data, fmt)
        try:
            decoded = _decode_opened(im, fmt, config)
        finally:
            im.close()
    if fmt == "WEBP":
        decoded = replace(decoded, webp_quantizer=vp8_quantizer(data))
    return decoded


def _decode_opened(im: Image.Image, fmt: str, config: ScoringConfig) -> DecodedImage:
    width, height = im.size
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"{fmt} header declares an empty image ({width}x{height})")
    if width * height > config.max_pixels:
        raise ImageTooLargeError(
            f"{fmt} header declares {width}x{height} = {_megapixels(width * height)} MP, over the "
            f"{_megapixels(config.max_pixels)} MP limit (refused before decoding; raise "
            "--max-pixels if the image is genuine)"
        )
    quantization = getattr(im, "quantization", None) if im.format in ("JPEG", "MPO") else None
    source_mode = im.mode

    denominator = 1
    if im.format in ("JPEG", "MPO"):
        denominator = _dct_scale(width, height)
        request = (max(1, width // denominator), max(1, height // denominator))
        im.draft("L" if im.mode in ("RGB", "YCbCr", "L") else None, request)
        denominator = max(1, round(width / im.size[0]))
    try:
        im.load()
        grid = _to_grey(im)
    except (ImageDecodeError, ImageTooLargeError):
        raise
    except MemoryError as exc:
        raise ImageTooLargeError(f"{fmt} image needs more memory than is available") from exc
    except Exception as exc:
        raise ImageDecodeError(f"truncated or corrupt {fmt} data: {_describe(exc)}") from exc
    # EXIF is read only once the pixels are in: for PNG, ``getexif`` loads the image itself (an
    # eXIf chunk may follow IDAT), and a corrupt IDAT's error was swallowed here, leaving an
    # all-black image that the next ``load`` call accepted and scored 0.
    try:
        orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:
        orientation = 1  # a broken EXIF block does not make the pixels unusable
    # Probed only once the first frame is in hand: for GIF, ``is_animated`` parses the second
    # frame's header, and a corrupt one raised (IndexError, ...) out of decode() uncaught.
    try:
        animated = bool(getattr(im, "is_animated", False))
    except Exception:
        animated = False  # an unreadable second frame cannot play: treat the image as a still

    transpose = _TRANSPOSE_FOR_ORIENTATION.get(orientation)
    if transpose is not None:
        grid = np.asarray(Image.fromarray(grid).transpose(transpose))
        if orientation >= 5:
            width, height = height, width
    grid = np.ascontiguousarray(grid)

    period = 8 // denominator if im.format in ("JPEG", "MPO") else 8
    grey = reduce_to_working_size(grid)
    return DecodedImage(
        grey=grey,
        grid=grid,
        grid_period=period if period >= 4 else None,
        width=width,
        height=height,
        format=fmt,
        mode=source_mode,
        scale=max(grey.shape) / max(width, height),
        quantization={k: list(v) for k, v in quantization.items()} if quantization else None,
        webp_quantizer=None,
        animated=animated,
    )

