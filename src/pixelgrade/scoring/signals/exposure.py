"""Tone statistics: exposure, contrast and information content from one luma histogram.

* **Exposure**: mean luminance, the share of pixels clipped to black or white, and where the
  darkest and brightest tones sit (1st and 99th percentiles). Clipping is the standard
  photographic definition of lost detail (the "blinkies" of a camera's highlight warning). A
  well-exposed picture uses the range: its brightest tones come near white (the "expose to the
  right" rule) and its darkest near black; an underexposed one has no bright tones, an
  overexposed or washed-out one no dark tones.
* **Contrast**: RMS contrast, the standard deviation of luminance divided by its range (Peli,
  "Contrast in complex images", JOSA A 7(10), 1990, doi:10.1364/JOSAA.7.002032), and the robust
  dynamic range between the 1st and 99th percentiles.
* **Information**: Shannon entropy of the grey-level histogram, in bits (0 for a constant image,
  8 at most). A nearly blank image (a placeholder, a blank scan, a failed upload rendered black)
  has low entropy and almost no spread.

All values are computed on gamma-encoded 8-bit luma, as displayed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Levels at or below which a pixel counts as crushed to black.
SHADOW_CLIP_LEVEL = 4
#: Levels at or above which a pixel counts as blown to white.
HIGHLIGHT_CLIP_LEVEL = 251


@dataclass(frozen=True, slots=True)
class ToneStats:
    """Histogram facts of a luma image, all fractions in [0, 1] except ``entropy_bits``.

    ``dark_level`` and ``bright_level`` are the 1st and 99th percentiles of luminance.
    """

    mean: float
    dark_level: float
    bright_level: float
    rms_contrast: float
    dynamic_range: float
    shadows_clipped: float
    highlights_clipped: float
    entropy_bits: float


def tone_stats(grey: np.ndarray) -> ToneStats:
    """Histogram statistics of a uint8 luma image (see module docstring for definitions)."""
    hist = cv2.calcHist([grey], [0], None, [256], [0, 256]).ravel().astype(np.float64)
    total = hist.sum()
    if total == 0:
        return ToneStats(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    p = hist / total
    levels = np.arange(256, dtype=np.float64)
    mean = float(p @ levels)
    std = float(np.sqrt(max(p @ (levels - mean) ** 2, 0.0)))
    cdf = np.cumsum(p)
    low = int(np.searchsorted(cdf, 0.01))
    high = int(np.searchsorted(cdf, 0.99))
    nonzero = p[p > 0]
    return ToneStats(
        mean=mean / 255.0,
        dark_level=low / 255.0,
        bright_level=high / 255.0,
        rms_contrast=std / 255.0,
        dynamic_range=max(high - low, 0) / 255.0,
        shadows_clipped=float(p[: SHADOW_CLIP_LEVEL + 1].sum()),
        highlights_clipped=float(p[HIGHLIGHT_CLIP_LEVEL:].sum()),
        entropy_bits=float(-(nonzero * np.log2(nonzero)).sum()) + 0.0,  # no "-0.0"
    )
