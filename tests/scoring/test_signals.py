"""Each signal responds to the damage it measures, and not to content that only looks like it."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from pixelgrade.samples import load_photo
from pixelgrade.scoring.signals import (
    blockiness,
    detect_enlargement,
    focus,
    histogram_comb,
    impulse_share,
    jpeg_quality,
    noise_sigma,
    tone_stats,
)
from pixelgrade.scoring.signals.compression import _ijg_table


def _grey(name: str = "camera.png") -> np.ndarray:
    return cv2.cvtColor(load_photo(name), cv2.COLOR_RGB2GRAY)


def _noisy(grey: np.ndarray, sigma: float, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(grey + rng.normal(0, sigma, grey.shape), 0, 255).astype(np.uint8)


def _width(grey: np.ndarray) -> float:
    result = focus(grey, noise_sigma(grey)).width
    assert result is not None
    return result


@pytest.mark.parametrize("photo", ["camera.png", "astronaut.png", "coffee.png"])
def test_focus_width_grows_with_blur(photo: str) -> None:
    grey = _grey(photo)
    widths = [_width(grey)] + [_width(cv2.GaussianBlur(grey, (0, 0), s)) for s in (1.0, 2.0, 4.0)]
    assert widths == sorted(widths), widths
    assert widths[-1] > 2.5 * widths[0]


def test_focus_width_of_a_blurred_step_matches_the_theory() -> None:
    """A step blurred by a Gaussian of sigma s has equivalent width s*sqrt(2*pi), whatever the
    direction the step runs in (the obliquity correction)."""
    yy, xx = np.mgrid[:256, :256]
    for angle in (0.0, 30.0, 45.0):
        normal = np.cos(np.radians(angle)) * xx + np.sin(np.radians(angle)) * yy
        # Many parallel steps, so that every tile has edges to judge.
        steps = np.where((normal // 32) % 2 == 0, 40.0, 200.0).astype(np.float32)
        for sigma in (1.5, 3.0):
            blurred = np.round(cv2.GaussianBlur(steps, (0, 0), sigma)).astype(np.uint8)
            expected = np.sqrt(sigma**2 + 0.5**2) * np.sqrt(2 * np.pi)  # pre-smoothing 0.5
            assert focus(blurred).width == pytest.approx(expected, rel=0.2), (angle, sigma)


def test_focus_judges_the_sharp_subject_not_the_soft_background() -> None:
    """Shallow depth of field: a sharp subject on a tenth of an 800 px frame, the rest
    defocused (four sample photos side by side make a frame that is sharp at that size)."""
    quadrants = [_grey(name)[:400, :400] for name in ("astronaut.png", "camera.png",
                                                       "coffee.png", "motorcycle_left.png")]
    grey = np.vstack([np.hstack(quadrants[:2]), np.hstack(quadrants[2:])])
    background = cv2.GaussianBlur(grey, (0, 0), 6.0)
    subject = background.copy()
    subject[270:530, 270:530] = grey[270:530, 270:530]
    assert _width(subject) < 1.3 * _width(grey)
    assert _width(background) > 2 * _width(grey)


def test_focus_is_not_fooled_by_noise() -> None:
    """Noise on a blurry image must not make it look sharp (the Laplacian-variance failure)."""
    blurry = cv2.GaussianBlur(_grey(), (0, 0), 3.0)
    noisy = _noisy(blurry, 10)
    assert _width(noisy) > 0.75 * _width(blurry)
    assert _width(noisy) > 2 * _width(_grey())


@pytest.mark.parametrize("angle", [0, 45, 90, 135])
def test_focus_catches_camera_shake_in_any_direction(angle: int) -> None:
    grey = _grey()
    kernel = np.zeros((15, 15), np.float32)
    kernel[7, :] = 1.0
    kernel = cv2.warpAffine(kernel, cv2.getRotationMatrix2D((7, 7), angle, 1.0), (15, 15))
    shaken = cv2.filter2D(grey, -1, kernel / kernel.sum())
    assert _width(shaken) > 2 * _width(grey)


def test_focus_has_nothing_to_judge_on_a_gradient_or_a_blank() -> None:
    ramp = np.tile(np.linspace(30, 220, 512), (384, 1)).astype(np.uint8)
    assert focus(ramp).width is None
    assert focus(np.full((100, 100), 128, np.uint8)).width is None


@pytest.mark.parametrize("photo", ["camera.png", "coffee.png", "grass.png"])
def test_noise_sigma_grows_with_noise(photo: str) -> None:
    grey = _grey(photo)
    sigmas = [noise_sigma(_noisy(grey, s)) for s in (0, 5, 10, 20, 30)]
    assert sigmas == sorted(sigmas), sigmas
    assert sigmas[-1] > 10


def test_noise_sigma_estimates_white_noise_on_a_flat_image() -> None:
    flat = np.full((256, 256), 120.0)
    for sigma in (3.0, 8.0):
        assert noise_sigma(_noisy(flat, sigma)) == pytest.approx(sigma, rel=0.2)


def test_noise_sigma_does_not_take_texture_for_noise_but_sees_noise_on_texture() -> None:
    """Grass and gravel are busy textures, not noisy photos (they read as slight grain at most);
    strong grain on them still shows (a median over all blocks read 0 for grain on a leafy
    photo, because texture hid it in most blocks)."""
    for photo in ("grass.png", "gravel.png"):
        grey = _grey(photo)
        clean = noise_sigma(grey)
        assert clean < 2.5
        assert noise_sigma(_noisy(grey, 8)) > clean + 4


def test_tone_stats_track_exposure_and_contrast() -> None:
    grey = _grey("coffee.png").astype(np.float32)
    normal = tone_stats(grey.astype(np.uint8))
    dark = tone_stats((grey * 0.3).astype(np.uint8))
    bright = tone_stats(np.clip(grey * 2.2, 0, 255).astype(np.uint8))
    hazy = tone_stats((grey * 0.4 + 0.6 * 200).astype(np.uint8))
    assert dark.brightest < 0.4 < normal.brightest
    assert bright.highlights_clipped > 0.1 > normal.highlights_clipped
    assert bright.unclipped_median > normal.unclipped_median
    assert hazy.dark_level > 0.45 > normal.dark_level
    assert hazy.dynamic_range < 0.5 * normal.dynamic_range


def test_tone_stats_of_a_constant_image() -> None:
    stats = tone_stats(np.full((50, 50), 0, np.uint8))
    assert stats.shadows_clipped == 1.0
    assert stats.rms_contrast == 0.0
    assert stats.dynamic_range == 0.0


def test_impulse_share_counts_specks_not_lines_or_texture() -> None:
    grey = _grey("gravel.png")
    assert impulse_share(grey) < 0.0015
    lines = grey.copy()
    lines[::20, :] = 255  # thin lines: the ring around a line pixel crosses the line
    assert impulse_share(lines) < 0.002
    rng = np.random.default_rng(3)
    specks = grey.copy()
    hit = rng.random(grey.shape) < 0.01
    specks[hit] = np.where(rng.random(int(hit.sum())) < 0.5, 0, 255)
    assert impulse_share(specks) > 0.005


def test_histogram_comb_sees_posterisation() -> None:
    grey = _grey("astronaut.png")
    assert histogram_comb(grey) < 0.25
    posterised = (np.round(grey / 51.0) * 51).astype(np.uint8)
    assert histogram_comb(posterised) > 0.8


@pytest.mark.parametrize(("interpolation", "kind", "factor"), [
    *((cv2.INTER_CUBIC, "interpolated", f) for f in (2.5, 3.0, 4.4)),
    *((cv2.INTER_LINEAR, "interpolated", f) for f in (2.5, 3.0, 4.4, 6.0)),
    *((cv2.INTER_LANCZOS4, "interpolated", f) for f in (2.5, 4.4, 6.0)),
    *((cv2.INTER_NEAREST, "repeated", f) for f in (3.0, 4.4, 6.0, 7.5)),
])
def test_enlargement_is_found_with_its_factor_and_kind(interpolation: int, kind: str,
                                                      factor: float) -> None:
    """Known limits (see the module): an exact 2x enlargement leaves its trace at the Nyquist
    frequency, which is not searched; a bicubic 5x or more can fail the periodic-content test;
    pixel repetition by 2.5x alternates 2 and 3 px blocks and reads as 5x."""
    enlarged = cv2.resize(_grey("astronaut.png"), None, fx=factor, fy=factor,
                          interpolation=interpolation)
    found = detect_enlargement(enlarged, max(enlarged.shape))
    assert found is not None
    assert found.kind == kind
    assert found.factor == pytest.approx(factor, rel=0.08)


def test_enlargement_is_not_found_in_a_native_photo_or_a_periodic_pattern() -> None:
    assert detect_enlargement(_grey("astronaut.png"), 512) is None
    assert detect_enlargement(_grey("brick.png"), 512) is None
    yy, xx = np.mgrid[:512, :512]
    pattern = 128 + 60 * np.sin(2 * np.pi * xx / 5.3) * np.sin(2 * np.pi * yy / 5.3)
    assert detect_enlargement(pattern.astype(np.uint8), 512) is None


@pytest.mark.parametrize("quality", [5, 10, 25, 50, 75, 90, 95])
def test_jpeg_quality_inverts_the_ijg_tables(quality: int) -> None:
    table = _ijg_table(quality).astype(int).tolist()
    assert jpeg_quality({0: table}) == pytest.approx(quality, abs=1)


def test_jpeg_quality_of_real_files_and_bad_tables() -> None:
    for quality in (20, 60, 85):
        buffer = io.BytesIO()
        Image.fromarray(_grey()).save(buffer, "JPEG", quality=quality)
        with Image.open(buffer) as im:
            assert jpeg_quality(im.quantization) == pytest.approx(quality, abs=2)
    assert jpeg_quality(None) is None
    assert jpeg_quality({0: [1, 2, 3]}) is None


def _jpeg_grey(quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(_grey()).save(buffer, "JPEG", quality=quality)
    with Image.open(buffer) as im:
        return np.asarray(im.convert("L"))


def test_blockiness_grows_with_jpeg_compression() -> None:
    values = [blockiness(_jpeg_grey(q), 8) for q in (95, 40, 15, 5)]
    assert values == sorted(values), values
    assert values[0] < 1.1 < 1.3 < values[-1]


def test_blockiness_finds_a_shifted_grid() -> None:
    """A JPEG cropped by 3 px still shows its grid (the phase is searched)."""
    assert blockiness(np.ascontiguousarray(_jpeg_grey(10)[3:, 3:]), 8) > 1.3
