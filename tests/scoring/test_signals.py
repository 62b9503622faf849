"""Each signal responds monotonically to the damage it measures, on real and synthetic images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pixelgrade.samples import load_photo
from pixelgrade.scoring.signals import (
    blockiness,
    edge_width,
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


@pytest.mark.parametrize("photo", ["camera.png", "astronaut.png", "coffee.png"])
def test_edge_width_grows_with_blur(photo: str) -> None:
    grey = _grey(photo)
    widths = [edge_width(grey)] + [
        edge_width(cv2.GaussianBlur(grey, (0, 0), sigma)) for sigma in (1.0, 2.0, 4.0)
    ]
    assert all(w is not None for w in widths)
    assert widths == sorted(widths), widths
    assert widths[-1] > 2 * widths[0]


def test_edge_width_of_a_blurred_step_matches_the_theory() -> None:
    """A step blurred by a Gaussian of sigma s has equivalent width s*sqrt(2*pi)."""
    step = np.zeros((200, 200), np.float32)
    step[:, 100:] = 200
    for sigma in (3.0, 5.0):
        blurred = np.round(cv2.GaussianBlur(step, (0, 0), sigma) + 20).astype(np.uint8)
        tiled = np.tile(blurred, (1, 1))
        expected = np.sqrt(sigma**2 + 0.8**2) * np.sqrt(2 * np.pi)  # pre-smoothing adds 0.8
        assert edge_width(tiled) == pytest.approx(expected, rel=0.15)


def test_edge_width_is_not_fooled_by_noise() -> None:
    """Noise on a blurry image must not make it look sharp (the Laplacian-variance failure)."""
    blurry = cv2.GaussianBlur(_grey(), (0, 0), 3.0)
    clean_width = edge_width(blurry)
    noisy = _noisy(blurry, 10)
    noisy_width = edge_width(noisy, noise_sigma(noisy))
    assert clean_width is not None and noisy_width is not None
    assert noisy_width > 0.75 * clean_width
    assert noisy_width > edge_width(_grey()) * 1.3  # still clearly blurrier than the original


def test_edge_width_catches_one_directional_motion_blur() -> None:
    grey = _grey()
    kernel = np.full((1, 15), 1 / 15, np.float32)
    shaken = cv2.filter2D(grey, -1, kernel)
    assert edge_width(shaken) > 2 * edge_width(grey)


def test_edge_width_none_for_blank() -> None:
    assert edge_width(np.full((100, 100), 128, np.uint8)) is None


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


def test_noise_sigma_does_not_take_texture_for_noise() -> None:
    """Grass and gravel are busy textures, not noisy photos."""
    for photo in ("grass.png", "gravel.png"):
        assert noise_sigma(_grey(photo)) < 1.5


def test_tone_stats_track_exposure_and_contrast() -> None:
    grey = _grey("coffee.png").astype(np.float32)
    normal = tone_stats(grey.astype(np.uint8))
    dark = tone_stats((grey * 0.3).astype(np.uint8))
    bright = tone_stats(np.clip(grey * 2.2, 0, 255).astype(np.uint8))
    flat = tone_stats((grey.mean() + (grey - grey.mean()) * 0.2).astype(np.uint8))
    assert dark.mean < normal.mean < bright.mean
    assert dark.bright_level < normal.bright_level
    assert bright.highlights_clipped > 0.1 > normal.highlights_clipped
    assert flat.rms_contrast < 0.3 * normal.rms_contrast
    assert flat.dynamic_range < normal.dynamic_range


def test_tone_stats_of_a_constant_image() -> None:
    stats = tone_stats(np.full((50, 50), 0, np.uint8))
    assert stats.entropy_bits == 0.0
    assert stats.shadows_clipped == 1.0
    assert stats.rms_contrast == 0.0


@pytest.mark.parametrize("quality", [5, 10, 25, 50, 75, 90, 95])
def test_jpeg_quality_inverts_the_ijg_tables(quality: int) -> None:
    table = _ijg_table(quality).astype(int).tolist()
    assert jpeg_quality({0: table}) == pytest.approx(quality, abs=1)


def test_jpeg_quality_of_real_files_and_bad_tables() -> None:
    import io

    from PIL import Image

    for quality in (20, 60, 85):
        buffer = io.BytesIO()
        Image.fromarray(_grey()).save(buffer, "JPEG", quality=quality)
        with Image.open(buffer) as im:
            assert jpeg_quality(im.quantization) == pytest.approx(quality, abs=2)
    assert jpeg_quality(None) is None
    assert jpeg_quality({0: [1, 2, 3]}) is None


def test_blockiness_grows_with_jpeg_compression() -> None:
    import io

    from PIL import Image

    values = []
    for quality in (95, 40, 15, 5):
        buffer = io.BytesIO()
        Image.fromarray(_grey()).save(buffer, "JPEG", quality=quality)
        with Image.open(buffer) as im:
            values.append(blockiness(np.asarray(im.convert("L")), 8))
    assert values == sorted(values), values
    assert values[0] < 1.1 < 1.3 < values[-1]


def test_blockiness_finds_a_shifted_grid() -> None:
    """A JPEG cropped by 3 px still shows its grid (the phase is searched)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(_grey()).save(buffer, "JPEG", quality=10)
    with Image.open(buffer) as im:
        blocky = np.asarray(im.convert("L"))
    assert blockiness(np.ascontiguousarray(blocky[3:, 3:]), 8) > 1.3
