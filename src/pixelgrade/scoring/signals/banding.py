"""Banding: tones in visible steps (posterisation), read from the comb of the histogram.

A photograph's luma histogram is smooth: light varies continuously, and sensor noise and
demosaicing fill every level between neighbours. When tones are quantised too coarsely (an 8-bit
edit pushed hard, a palette conversion, a "posterise" filter, a video frame at low bit depth),
smooth gradients break into flat bands and the histogram turns into a comb of isolated spikes
with empty or sparse levels between them. The comb index is the total variation of the histogram
from its own 5-level moving average (an L1 distance, 0 to 2): about 0.01-0.2 for photographs,
0.3 and more when a picture has been posterised to a few dozen levels.

A combed histogram alone is not banding: a photograph reduced to a 256-colour palette (a GIF, a
PNG-8) has one too, but its dithering spreads the tones into fine noise and no band shows.
Bands are flat: :func:`flat_share` counts the pixels whose 3 x 3 neighbourhood spans at most one
level, and the comb only counts in proportion to it (full from 15%).

Graphics with flat colour fills have combed histograms and flat areas, for the honest reason that
they are made of few tones; the combination (:mod:`pixelgrade.scoring.combine`) keeps this signal
from ever making a picture worse than Medium on its own.

Reference
---------
The histogram comb as a sign of contrast enhancement and requantisation: M. C. Stamm, K. J. R.
Liu, "Forensic detection of image manipulation using statistical intrinsic fingerprints", IEEE
Transactions on Information Forensics and Security 5(3), 492-506, 2010.
doi:10.1109/TIFS.2010.2053202
"""

from __future__ import annotations

import cv2
import numpy as np

from pixelgrade.scoring.signals.histogram import luma_histogram

#: A 3 x 3 neighbourhood spanning at most this many levels is flat (1: a JPEG saved from a
#: posterised picture keeps its bands but not exactly one level).
FLAT_SPREAD = 1
#: A level holding more than this share of the pixels is a background, not a band.
BACKGROUND_SHARE = 0.10
#: The comb counts fully once this share of the picture is flat (see the module docstring).
FLAT_FULL = 0.15
_SMOOTHING = np.ones(5) / 5.0
_NEIGHBOURS = np.ones((3, 3), np.uint8)
#: Levels at or below / at or above which a pixel is clipped, not flat (see exposure).
_CLIPPED_BELOW, _CLIPPED_ABOVE = 4, 251


def histogram_comb(grey: np.ndarray, hist: np.ndarray | None = None) -> float:
    """L1 distance (0-2) between the luma histogram of ``grey`` and its 5-level moving average.

    A single level holding more than :data:`BACKGROUND_SHARE` of the pixels is a background (a
    studio backdrop, a transparent area composited on grey, a page) and is left out: one
    plateau is not a band.
    """
    hist = (luma_histogram(grey) if hist is None else hist).copy()
    mode = int(np.argmax(hist))
    if hist[mode] > BACKGROUND_SHARE * hist.sum():
        hist[mode] = 0.0
    total = hist.sum()
    if total == 0:
        return 0.0
    p = hist / total
    return float(np.abs(p - np.convolve(p, _SMOOTHING, mode="same")).sum())


def _background(hist: np.ndarray) -> int | None:
    """The level that holds more than BACKGROUND_SHARE of the pixels, if one does."""
    mode = int(np.argmax(hist))
    return mode if hist[mode] > BACKGROUND_SHARE * hist.sum() else None


def flat_share(grey: np.ndarray, hist: np.ndarray | None = None) -> float:
    """Share (0-1) of the unclipped pixels of ``grey`` whose 3 x 3 neighbourhood spans at most
    FLAT_SPREAD levels, a background level (see :func:`histogram_comb`) left out."""
    spread = cv2.subtract(cv2.dilate(grey, _NEIGHBOURS), cv2.erode(grey, _NEIGHBOURS))
    unclipped = (grey > _CLIPPED_BELOW) & (grey < _CLIPPED_ABOVE)
    background = _background(luma_histogram(grey) if hist is None else hist)
    if background is not None:
        unclipped &= grey != background
    count = int(np.count_nonzero(unclipped))
    return float(np.count_nonzero((spread <= FLAT_SPREAD) & unclipped)) / count if count else 0.0


def banding_index(comb: float, flat: float) -> float:
    """The histogram comb in proportion to the flat share, up to FLAT_FULL (0-2)."""
    return comb * min(1.0, flat / FLAT_FULL)
