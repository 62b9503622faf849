"""Tone statistics: exposure, contrast and blankness from one luma histogram.

What the numbers are for is telling intent from defect. A low-key picture (night, a dark
background behind a lit subject) is dark overall but its brightest details still come near white;
an underexposed one has no bright tones at all (its brightest detail, :attr:`ToneStats.brightest`,
stays in the mid-greys). A high-key or foggy picture is light overall but keeps some dark tones
(a trunk, a shadow, the subject); a washed-out or hazy one has none (:attr:`ToneStats.dark_level`
sits far above black). Clipping is the standard photographic definition of lost detail (the
"blinkies" of a camera's highlight warning), but a white background behind a product or the page
of a screenshot is clipped on purpose: what tells an overexposed picture is that the part that is
*not* clipped is bright too (:attr:`ToneStats.unclipped_median`), its mid-tones pushed up into the
highlights.

* **Exposure**: the 0.5th and 99.5th percentiles and the 99.9th (the brightest detail), the
  median, the share of pixels clipped to black or white and the median of the others. A
  well-exposed picture uses the range: its brightest tones come near white (the "expose to the
  right" rule) and its darkest near black.
* **Contrast**: RMS contrast, the standard deviation of luminance divided by its range (Peli,
  "Contrast in complex images", JOSA A 7(10), 1990, doi:10.1364/JOSAA.7.002032), and the robust
  dynamic range between the 0.5th and 99.5th percentiles.
* **Blankness**: the robust range alone: a blank scan, a placeholder or a failed upload rendered
  in one colour spans a few grey levels at most.

All values are computed on gamma-encoded 8-bit luma, as displayed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pixelgrade.scoring.signals.histogram import luma_histogram

#: Levels at or below which a pixel counts as crushed to black.
SHADOW_CLIP_LEVEL = 4
#: Levels at or above which a pixel counts as blown to white.
HIGHLIGHT_CLIP_LEVEL = 251


@dataclass(frozen=True, slots=True)
class ToneStats:
    """Histogram facts of a luma image, all fractions of the 0-255 range or of the pixels.

    ``dark_level``, ``bright_level`` and ``brightest`` are the 0.5th, 99.5th and 99.9th
    percentiles of luminance; ``median`` the 50th; ``unclipped_median`` the median of the pixels
    neither crushed nor blown (``median`` when every pixel is clipped).
    """

    mean: float
    median: float
    dark_level: float
    bright_level: float
    brightest: float
    rms_contrast: float
    dynamic_range: float
    shadows_clipped: float
    highlights_clipped: float
    unclipped_median: float


def _percentile(cdf: np.ndarray, share: float) -> float:
    return float(np.searchsorted(cdf, share)) / 255.0


def tone_stats(grey: np.ndarray, hist: np.ndarray | None = None) -> ToneStats:
    """Histogram statistics of a uint8 luma image (see the module docstring); ``hist``, its
    :func:`~pixelgrade.scoring.signals.histogram.luma_histogram` if already computed."""
    hist = luma_histogram(grey) if hist is None else hist
    total = hist.sum()
    if total == 0:
        return ToneStats(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    p = hist / total
    levels = np.arange(256, dtype=np.float64)
    mean = float(p @ levels)
    std = float(np.sqrt(max(p @ (levels - mean) ** 2, 0.0)))
    cdf = np.cumsum(p)
    middle = hist[SHADOW_CLIP_LEVEL + 1 : HIGHLIGHT_CLIP_LEVEL]
    if middle.sum() > 0:
        middle_cdf = np.cumsum(middle) / middle.sum()
        unclipped_median = (SHADOW_CLIP_LEVEL + 1 + float(np.searchsorted(middle_cdf, 0.5))) / 255
    else:
        unclipped_median = _percentile(cdf, 0.5)
    dark, bright = _percentile(cdf, 0.005), _percentile(cdf, 0.995)
    return ToneStats(
        mean=mean / 255.0,
        median=_percentile(cdf, 0.5),
        dark_level=dark,
        bright_level=bright,
        brightest=_percentile(cdf, 0.999),
        rms_contrast=std / 255.0,
        dynamic_range=max(bright - dark, 0.0),
        shadows_clipped=float(p[: SHADOW_CLIP_LEVEL + 1].sum()),
        highlights_clipped=float(p[HIGHLIGHT_CLIP_LEVEL:].sum()),
        unclipped_median=unclipped_median,
    )
