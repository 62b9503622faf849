"""Damage families for the cross-picture calibration: each one visible on a 1024 px screen.

Every family takes an RGB uint8 picture and a random generator and returns the damaged pixels
(or already-encoded bytes, for the compression families) with a short description of the level
drawn. Levels are drawn per (picture, family) from a range whose *weak end is already visible*
when the picture is shown 1024 px wide: sizes in the ranges below are in pixels of that 1024 px
display and are multiplied by ``scale`` = long side / 1024 (at least 1) before being applied, so
a 2560 px picture gets the same visible damage as a 1024 px one.

The families are those a photo library meets: focus (Gaussian and disk defocus), camera shake,
sensor noise, heavy JPEG and WebP, under- and overexposure, haze, enlargement from a small
original (interpolated, and by pixel repetition), sparse impulse damage, posterisation (banding)
and over-sharpening halos. The last three are what the corpus's authentically flawed photos
show (``lomiri-free``, ``lomiri-dragonfly``).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from pixelgrade.samples import to_linear, to_srgb


@dataclass(frozen=True, slots=True)
class Damaged:
    """Damaged pixels (to be encoded like the original) or finished bytes, and the level."""

    pixels: np.ndarray | None
    data: bytes | None
    fmt: str
    level: str


#: Stops of overexposure: at least one (visible), at most four (past that, a blank frame).
MIN_OVEREXPOSURE, MAX_OVEREXPOSURE = 1.0, 4.0


def _u8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def _pixels(rgb: np.ndarray, level: str) -> Damaged:
    return Damaged(rgb, None, "", level)


def _encoded(rgb: np.ndarray, fmt: str, level: str, **params: object) -> Damaged:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt, **params)
    return Damaged(None, buffer.getvalue(), fmt, level)


def _long_side_to(rgb: np.ndarray, long_side: int) -> np.ndarray:
    height, width = rgb.shape[:2]
    factor = long_side / max(height, width)
    size = (max(2, round(width * factor)), max(2, round(height * factor)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def gaussian_blur(rgb: np.ndarray, rng: np.random.Generator, scale: float) -> Damaged:
    sigma = rng.uniform(1.5, 3.0)
    return _pixels(cv2.GaussianBlur(rgb, (0, 0), sigma * scale), f"sigma {sigma:.1f} px")


def defocus(rgb: np.ndarray, rng: np.random.Generator, scale: float) -> Damaged:
    radius = rng.uniform(2.5, 5.0)
    r = radius * scale
    size = 2 * int(np.ceil(r)) + 1
    yy, xx = np.mgrid[:size, :size] - size // 2
    disk = (xx**2 + yy**2 <= r**2).astype(np.float32)
    out = cv2.filter2D(rgb, -1, disk / disk.sum(), borderType=cv2.BORDER_REFLECT)
    return _pixels(out, f"disk radius {radius:.1f} px")


def motion_blur(rgb: np.ndarray, rng: np.random.Generator, scale: float) -> Damaged:
    length = rng.uniform(8.0, 16.0)
    angle = rng.uniform(0.0, 180.0)
    n = max(3, round(length * scale) | 1)
    kernel = np.zeros((n, n), np.float32)
    kernel[n // 2, :] = 1.0
    rotation = cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), angle, 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (n, n))
    out = cv2.filter2D(rgb, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)
    return _pixels(out, f"{length:.0f} px at {angle:.0f} degrees")


def sensor_noise(rgb: np.ndarray, rng: np.random.Generator, scale: float) -> Damaged:
    # Area-averaging scale x scale pixels for display divides white noise by `scale`.
    sigma = rng.uniform(8.0, 14.0)
    noise = rng.normal(0.0, sigma * scale, rgb.shape[:2]).astype(np.float32)[..., None]
    chroma = rng.normal(0.0, 0.5 * sigma * scale, rgb.shape).astype(np.float32)
    return _pixels(_u8(rgb.astype(np.float32) + noise + chroma), f"sigma {sigma:.0f} levels")


def heavy_jpeg(rgb: np.ndarray, rng: np.random.Generator, scale: float) -> Damaged:
    quality = int(rng.integers(4, 11))
    return _encoded(rgb, "JPEG", f"quality {quality}", quality=quality)


def heavy_webp(rgb: np.ndarray, rng: np.random.Generator, scale: float) -> Damaged:
    """Saved at the display size: WebP turns damage into blur, which a 2560 px file shown at
    1024 px would hide (a site serving a 1024 px WebP at this quality shows it)."""
    quality = int(rng.integers(0, 6))
    small = _long_side_to(rgb, round(max(rgb.shape[:2]) / scale))
    return _encoded(small, "WEBP", f"quality {quality} at {small.shape[1]}x{small.shape[0]}",
                    quality=quality, method=4)


def underexposure(rgb: np.ndarray, rng: np.random.Generator, scale: float) -> Damaged:
    stops = rng.uniform(1.7, 2.7)
    return _pixels(to_srgb(to_linear(rgb) * 2.0**-stops), f"-{stops:.1f} stops")


def overexposure(rgb: np.ndarray, rng: np.random.Generator, scale: float) -> Damaged:
    """Too much light: the exposure is raised until a drawn share of the picture (10-25 %)
    turns pure white, by one stop at least and four at most.

    A fixed number of stops is not overexposure on a low-key picture: +1.8 stops on a dark
    forest or an underwater shot clips nothing and reads as a normal exposure, which nobody
    would call damaged; nor is one saturated channel (a green that clips stays green). Both
    were judged by eye on the corpus. Highlights burnt to white are what make
    an overexposed photo look wrong, so the level is set by them.
    """
    share = rng.uniform(0.10, 0.25)
    linear = to_linear(rgb)
    palest = linear.min(axis=2)
    threshold = float(np.quantile(palest, 1.0 - share))
    stops = float(np.clip(-np.log2(max(threshold, 1e-6)), MIN_OVEREXPOSURE, MAX_OVEREXPOSURE))
    out = to_srgb(linear * 2.0**stops)
    white = float(np.mean(out.min(axis=2) == 255))
    return _pixels(out, f"+{stops:.1f} stops, {white:.0%} burnt to white")


def haze(rgb: np.ndarray, rng: np.random.Generator, scale: float) -> Damaged:
    """A veil of light grey over the picture (atmospheric haze, a dirty lens, a flat scan)."""
    alpha = rng.uniform(0.45, 0.65)
    veil = 200.0
    return _pixels(_u8(rgb.astype(np.float32) * (1 - alpha) + veil * alpha), f"veil {alpha:.0%}")


def enlarged(rgb: np.ndarray, rng: np.random.Generator, scale: float) -> Damaged:
    """A small original blown up to full size with bicubic interpolation."""
    long_side = int(rng.integers(320, 561))
    small = _long_side_to(rgb, long_side)
    big = cv2.resize(small, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_CUBIC)
    return _pixels(big, f"from {small.shape[1]}x{small.shape[0]}")


def pixelated(rgb: np.ndarray, rng: np.random.Generator, scale: float) -> Damaged:
    """A small original blown up by pixel repetition (nearest neighbour)."""
    long_side = int(rng.integers(160, 321))
    small = _long_side_to(rgb, long_side)
    big = cv2.resize(small, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_NEAREST)
    return _pixels(big, f"from {small.shape[1]}x{small.shape[0]}")


def impulse(rgb: np.ndarray, rng: np.random.Generator, scale: float) -> Damaged:
    """Isolated black and white specks (dead and hot pixels, bit errors in transmission), one
    display pixel each: ``round(scale)`` pixels square in the file."""
    density = rng.uniform(0.005, 0.02)
    size = max(1, round(scale))
    rows, cols = -(-rgb.shape[0] // size), -(-rgb.shape[1] // size)
    hit = rng.random((rows, cols)) < density
    white = rng.random((rows, cols)) < 0.5
    grow = np.ones((size, size), bool)
    hit_px = np.kron(hit, grow)[: rgb.shape[0], : rgb.shape[1]]
    white_px = np.kron(white, grow)[: rgb.shape[0], : rgb.shape[1]]
    out = rgb.copy()
    out[hit_px & white_px] = 255
    out[hit_px & ~white_px] = 0
    return _pixels(out, f"{density:.1%} of display pixels")


def posterized(rgb: np.ndarray, rng: np.random.Generator, scale: float) -> Damaged:
    levels = int(rng.integers(4, 7))
    step = 255.0 / (levels - 1)
    return _pixels(_u8(np.round(rgb.astype(np.float32) / step) * step), f"{levels} levels")


def oversharpened(rgb: np.ndarray, rng: np.random.Generator, scale: float) -> Damaged:
    radius = rng.uniform(1.5, 3.0)
    amount = rng.uniform(2.5, 4.0)
    soft = cv2.GaussianBlur(rgb, (0, 0), radius * scale).astype(np.float32)
    out = rgb.astype(np.float32) + amount * (rgb.astype(np.float32) - soft)
    return _pixels(_u8(out), f"unsharp mask x{amount:.1f}, radius {radius:.1f} px")


Family = Callable[[np.ndarray, np.random.Generator, float], Damaged]

#: name -> family. Names are stable: they key the cached files and the peers' cached scores.
FAMILIES: dict[str, Family] = {
    "blur": gaussian_blur,
    "defocus": defocus,
    "motion": motion_blur,
    "noise": sensor_noise,
    "jpeg": heavy_jpeg,
    "webp": heavy_webp,
    "underexposed": underexposure,
    "overexposed": overexposure,
    "haze": haze,
    "enlarged": enlarged,
    "pixelated": pixelated,
    "impulse": impulse,
    "posterized": posterized,
    "oversharpened": oversharpened,
}
