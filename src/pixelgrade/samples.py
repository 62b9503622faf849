"""Sample photos shipped by scikit-image, and graded distortions of them.

Used by ``pixelgrade demo`` (a sample library with known defects) and by the validity benchmark
(``bench/validity.py``). Every distortion is a function ``(rgb uint8 array, severity 1..5) ->
encoded bytes``. Severity 0 is the pristine photo, stored losslessly as PNG. Nothing is
downloaded: the photos are files inside the installed ``skimage/data`` folder.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import skimage
from PIL import Image

#: Natural photographs in skimage/data. Left out, on purpose: moon.png (skimage's deliberately
#: low-contrast example for histogram equalisation), hubble_deep_field (mostly black sky),
#: retina/ihc/microaneurysms/cell (medical and microscope images), clock_motion (motion-blurred
#: on purpose), and drawings, logos and synthetic charts.
PHOTOS = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "motorcycle_left.png",
    "rocket.jpg",
)
SEVERITIES = (1, 2, 3, 4, 5)


def photo_dir() -> Path:
    return Path(skimage.__file__).parent / "data"


def load_photo(name: str) -> np.ndarray:
    """RGB uint8 array of one sample photo (grey photos are expanded to three channels)."""
    with Image.open(photo_dir() / name) as im:
        return np.asarray(im.convert("RGB"))


def encode(rgb: np.ndarray, fmt: str = "PNG", **params: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt, **params)
    return buffer.getvalue()


def to_linear(rgb: np.ndarray) -> np.ndarray:
    """sRGB uint8 to linear light, 0-1 (IEC 61966-2-1 transfer function)."""
    c = rgb.astype(np.float32) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear light (clipped to 0-1) back to sRGB uint8."""
    c = np.clip(linear, 0.0, 1.0)
    s = np.where(c <= 0.0031308, c * 12.92, 1.055 * np.power(c, 1 / 2.4) - 0.055)
    return np.round(s * 255.0).astype(np.uint8)


def gaussian_blur(rgb: np.ndarray, severity: int) -> bytes:
    sigma = (0.8, 1.5, 2.5, 4.0, 6.0)[severity - 1]
    return encode(cv2.GaussianBlur(rgb, (0, 0), sigma))


def motion_blur(rgb: np.ndarray, severity: int) -> bytes:
    length = (5, 9, 15, 23, 33)[severity - 1]
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    return encode(cv2.filter2D(rgb, -1, kernel, borderType=cv2.BORDER_REFLECT))


def gaussian_noise(rgb: np.ndarray, severity: int) -> bytes:
    sigma = (4.0, 8.0, 14.0, 22.0, 34.0)[severity - 1]
    rng = np.random.default_rng(1234 + severity)
    noisy = rgb.astype(np.float32) + rng.normal(0.0, sigma, rgb.shape).astype(np.float32)
    return encode(np.clip(np.round(noisy), 0, 255).astype(np.uint8))


def jpeg_compression(rgb: np.ndarray, severity: int) -> bytes:
    quality = (50, 30, 18, 10, 4)[severity - 1]
    return encode(rgb, "JPEG", quality=quality)


def underexposure(rgb: np.ndarray, severity: int) -> bytes:
    stops = (0.7, 1.3, 2.0, 2.7, 3.5)[severity - 1]
    return encode(to_srgb(to_linear(rgb) * 2.0 ** -stops))


def overexposure(rgb: np.ndarray, severity: int) -> bytes:
    stops = (0.7, 1.3, 2.0, 2.7, 3.5)[severity - 1]
    return encode(to_srgb(to_linear(rgb) * 2.0**stops))


def contrast_loss(rgb: np.ndarray, severity: int) -> bytes:
    keep = (0.7, 0.5, 0.35, 0.22, 0.12)[severity - 1]
    mean = rgb.reshape(-1, 3).mean(axis=0)
    out = mean + (rgb.astype(np.float32) - mean) * keep
    return encode(np.clip(np.round(out), 0, 255).astype(np.uint8))


def downscale(rgb: np.ndarray, severity: int) -> bytes:
    factor = (0.6, 0.4, 0.25, 0.15, 0.08)[severity - 1]
    height, width = rgb.shape[:2]
    size = (max(8, round(width * factor)), max(8, round(height * factor)))
    return encode(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))


def upscaled_low_res(rgb: np.ndarray, severity: int) -> bytes:
    """Pixelation: shrunk then blown back up to the original size (an enlarged thumbnail)."""
    factor = (2, 3, 4, 6, 8)[severity - 1]
    height, width = rgb.shape[:2]
    small = cv2.resize(rgb, (max(2, width // factor), max(2, height // factor)),
                       interpolation=cv2.INTER_AREA)
    return encode(cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC))


def webp_compression(rgb: np.ndarray, severity: int) -> bytes:
    quality = (40, 20, 10, 4, 0)[severity - 1]
    return encode(rgb, "WEBP", quality=quality, method=4)


DISTORTIONS: dict[str, Callable[[np.ndarray, int], bytes]] = {
    "gaussian_blur": gaussian_blur,
    "motion_blur": motion_blur,
    "gaussian_noise": gaussian_noise,
    "jpeg": jpeg_compression,
    "webp": webp_compression,
    "underexposure": underexposure,
    "overexposure": overexposure,
    "contrast_loss": contrast_loss,
    "downscale": downscale,
    "upscaled_low_res": upscaled_low_res,
}
