"""Every supported format and pixel mode decodes to the right grey picture at the right size.

Checked through both entry points: ``score_bytes`` (the report: status, score, header size,
format) and ``decode`` (the working array the signals see). Reference pictures are what Pillow
or a viewer shows for the same file, so a decoder that reads the wrong channel, drops alpha onto
black, keeps the low byte of 16-bit samples or ignores EXIF rotation fails by a wide margin.
"""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageOps

from pixelgrade.scoring import ScoringConfig, decode, score_bytes
from pixelgrade.scoring.config import WORKING_LONG_SIDE, WORKING_SIDE_SLACK
from pixelgrade.scoring.decode import ALPHA_BACKGROUND, reduce_to_working_size
from tests import images
from tests.images import HEIGHT, WIDTH


def _mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.fixture(scope="module")
def photo_grey() -> np.ndarray:
    return images.grey_of(images.photo())


@pytest.mark.parametrize("sample", images.FORMATS, ids=lambda s: s.name)
def test_every_format_decodes_and_scores(sample: images.Sample) -> None:
    data = sample.make()
    report = score_bytes(data)
    assert report.status == "scored", report.reason
    assert report.reason is None
    assert isinstance(report.score, int) and 0 <= report.score <= 100
    assert report.score >= 70, report.to_dict()  # a clean photo is good in any container
    assert (report.width, report.height) == (WIDTH, HEIGHT)
    assert report.format == sample.format
    assert report.bytes == len(data)


@pytest.mark.parametrize("sample", images.FORMATS, ids=lambda s: s.name)
def test_every_format_decodes_to_the_photo(sample: images.Sample,
                                           photo_grey: np.ndarray) -> None:
    decoded = decode(sample.make())
    assert decoded.grey.dtype == np.uint8 and decoded.grey.shape == (HEIGHT, WIDTH)
    assert (decoded.width, decoded.height, decoded.format) == (WIDTH, HEIGHT, sample.format)
    assert decoded.scale == 1.0
    if sample.name in ("png_rgba", "png_palette_transparent"):
        return  # transparent areas differ on purpose: see the alpha tests below
    # Lossy and palette encodings move pixels by a level or two on average; a wrong channel,
    # orientation or bit depth moves them by tens.
    assert _mean_abs_diff(decoded.grey, photo_grey) < 3.0


@pytest.mark.parametrize(
    ("make", "mode"),
    [
        (images.cmyk_jpeg, "CMYK"),
        (images.png16, "I;16"),
        (images.palette_png, "P"),
        (images.grey_png, "L"),
        (lambda: images.rgba_png()[0], "RGBA"),
    ],
    ids=["cmyk", "16bit", "palette", "grey", "rgba"],
)
def test_source_mode_is_recorded(make: Callable[[], bytes], mode: str) -> None:
    assert decode(make()).mode == mode


def test_lossless_grey_is_exact(photo_grey: np.ndarray) -> None:
    for data in (images.grey_png(), images.png(), images.tiff(), images.bmp(),
                 images.webp_lossless()):
        np.testing.assert_array_equal(decode(data).grey, photo_grey)


def test_16_bit_keeps_the_top_byte(photo_grey: np.ndarray) -> None:
    """The top byte is the picture: the low byte or clipping at 255 would be noise or white."""
    decoded = decode(images.png16())
    np.testing.assert_array_equal(decoded.grey, images.png16_array() >> 8)
    np.testing.assert_array_equal(decoded.grey, photo_grey)


def test_cmyk_jpeg_matches_the_rgb_photo(photo_grey: np.ndarray) -> None:
    decoded = decode(images.cmyk_jpeg())
    assert _mean_abs_diff(decoded.grey, photo_grey) < 2.5
    assert decoded.quantization  # still read as a JPEG: its tables give the quality


def test_palette_png_is_the_palette_colours() -> None:
    reference = images.grey_of(images.palette_image())
    np.testing.assert_array_equal(decode(images.palette_png()).grey, reference)


def test_alpha_is_composited_over_neutral_grey(photo_grey: np.ndarray) -> None:
    data, clear = images.rgba_png()
    grey = decode(data).grey
    assert 100 <= ALPHA_BACKGROUND <= 160  # mid grey: not black, not white, no fake clipping
    assert np.all(grey[clear] == ALPHA_BACKGROUND)
    np.testing.assert_array_equal(grey[~clear], photo_grey[~clear])
    report = score_bytes(data)
    assert "overexposed" not in [i.code for i in report.issues]
    assert "underexposed" not in [i.code for i in report.issues]


def test_palette_transparency_is_composited_over_neutral_grey() -> None:
    data, clear = images.palette_png_with_transparency()
    grey = decode(data).grey
    assert np.all(grey[clear] == ALPHA_BACKGROUND)
    reference = images.grey_of(images.palette_image(colors=255))
    np.testing.assert_array_equal(grey[~clear], reference[~clear])


# --- EXIF orientation --------------------------------------------------------------------------


def test_sideways_jpeg_with_orientation_6_is_scored_upright(photo_grey: np.ndarray) -> None:
    upright = score_bytes(images.jpeg())
    rotated_data = images.exif_jpeg(6)
    with Image.open(io.BytesIO(rotated_data)) as stored:
        assert stored.size == (HEIGHT, WIDTH)  # the pixels really are stored sideways
    rotated = score_bytes(rotated_data)
    assert (rotated.width, rotated.height) == (WIDTH, HEIGHT)
    assert decode(rotated_data).grey.shape == (HEIGHT, WIDTH)
    assert _mean_abs_diff(decode(rotated_data).grey, photo_grey) < 3.0
    assert rotated.score is not None and upright.score is not None
    assert abs(rotated.score - upright.score) <= 3
    sharp_rotated = rotated.components["sharpness"].value
    sharp_upright = upright.components["sharpness"].value
    assert sharp_rotated is not None and sharp_upright is not None
    assert sharp_rotated == pytest.approx(sharp_upright, rel=0.1)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_what_a_viewer_shows(orientation: int) -> None:
    data = images.exif_jpeg(orientation)
    with Image.open(io.BytesIO(data)) as im:
        viewer = images.grey_of(ImageOps.exif_transpose(im))
    decoded = decode(data)
    assert (decoded.width, decoded.height) == (WIDTH, HEIGHT)
    assert decoded.grey.shape == viewer.shape
    assert _mean_abs_diff(decoded.grey, viewer) < 0.5  # a wrong turn or flip differs by tens


@pytest.mark.parametrize("orientation", [0, 9, 65535])
def test_invalid_orientation_is_ignored(orientation: int) -> None:
    exif = Image.Exif()
    exif[images.ORIENTATION_TAG] = orientation
    report = score_bytes(images.jpeg(exif=exif.tobytes()))
    assert report.status == "scored"
    assert (report.width, report.height) == (WIDTH, HEIGHT)


def test_sideways_jpeg_without_a_tag_stays_sideways() -> None:
    stored = images.photo().transpose(Image.Transpose.ROTATE_90)
    report = score_bytes(images.jpeg(stored))
    assert (report.width, report.height) == (HEIGHT, WIDTH)


# --- animation ---------------------------------------------------------------------------------


def test_animated_gif_scores_its_first_frame() -> None:
    animated = images.animated_gif(frames=3)
    still = images.gif(images.palette_image())
    decoded = decode(animated)
    assert decoded.animated is True
    assert decode(still).animated is False
    np.testing.assert_array_equal(decoded.grey, decode(still).grey)
    report, still_report = score_bytes(animated), score_bytes(still)
    assert report.status == "scored" and report.format == "GIF"
    assert report.score == still_report.score
    assert "nearly_blank" not in [i.code for i in report.issues]  # the flat frames were not used


def test_animated_webp_scores_its_first_frame(photo_grey: np.ndarray) -> None:
    decoded = decode(images.animated_webp())
    assert decoded.animated is True
    assert decode(images.webp_lossy()).animated is False
    assert _mean_abs_diff(decoded.grey, photo_grey) < 3.0
    assert score_bytes(images.animated_webp()).score >= 70


# --- shrink-on-load ----------------------------------------------------------------------------


def test_12_mp_jpeg_is_decoded_small_but_reports_its_full_size() -> None:
    data = images.large_jpeg(4000, 3000)
    tracemalloc.start()
    try:
        decoded = decode(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (decoded.width, decoded.height) == (4000, 3000)
    long_side = max(decoded.grey.shape)
    assert WORKING_LONG_SIDE * WORKING_SIDE_SLACK <= long_side <= WORKING_LONG_SIDE
    # libjpeg's DCT scaling: the full-size picture never existed, not even as the grid.
    assert max(decoded.grid.shape) == long_side
    assert decoded.grey.shape[1] / decoded.grey.shape[0] == pytest.approx(4 / 3, rel=0.01)
    assert decoded.scale == pytest.approx(long_side / 4000)
    assert peak < 4000 * 3000 // 2, f"{peak / 1e6:.1f} MB traced"  # a full-size luma is 12 MB
    report = score_bytes(data)
    assert (report.width, report.height) == (4000, 3000)
    assert report.components["resolution"].value == pytest.approx(12.0)


def test_large_lossless_image_is_resized_to_the_working_size() -> None:
    big = Image.fromarray(np.tile(np.asarray(images.photo()), (4, 4, 1)))  # 2400x1600
    decoded = decode(images.bmp(big))
    assert (decoded.width, decoded.height) == (2400, 1600)
    # An integer factor (3) lands the long side in the working range: 800 x 533.
    assert decoded.grey.shape == (533, 800)
    assert WORKING_LONG_SIDE * WORKING_SIDE_SLACK <= max(decoded.grey.shape) <= WORKING_LONG_SIDE
    assert decoded.scale == pytest.approx(800 / 2400, rel=0.01)


@pytest.mark.parametrize(("shape", "expected"), [
    ((3000, 4000), (750, 1000)),    # factor 4
    ((1155, 1732), (577, 866)),     # factor 2 (the last row is dropped)
    ((1500, 1200), (1024, 819)),    # no integer factor fits: general resampling
    ((1, 100_000), (1, 1024)),      # too thin for a block average
    ((700, 1000), (700, 1000)),     # already small enough
])
def test_reduction_to_the_working_size(shape: tuple[int, int],
                                       expected: tuple[int, int]) -> None:
    grid = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    assert reduce_to_working_size(grid).shape == expected


def test_integer_reduction_is_a_block_mean() -> None:
    grid = np.arange(36, dtype=np.uint8).reshape(6, 6).repeat(400, 0).repeat(400, 1)
    reduced = reduce_to_working_size(grid)  # 2400 px: factor 3, exact block means
    assert reduced.shape == (800, 800)
    assert reduced[0, 0] == 0 and reduced[-1, -1] == 35


def test_max_pixels_allows_an_image_exactly_at_the_limit() -> None:
    report = score_bytes(images.png(), ScoringConfig(max_pixels=WIDTH * HEIGHT))
    assert report.status == "scored"
