"""Banding: tones in visible steps (posterisation), read from the comb of the histogram.

A photograph's luma histogram is smooth: light varies continuously, and sensor noise and
demosaicing fill every level between neighbours. When tones are quantised too coarsely (an 8-bit
edit pushed hard, a palette conversion, a "posterise" filter, a video frame at low bit depth),
smooth gradients break into flat bands and the histogram turns into a comb of isolated spikes
with empty or sparse levels between them. The comb index is the total variation of the histogram
from its own 5-level moving average (an L1 distance, 0 to 2): about 0.01-0.2 for photographs,
0.3 and more when a picture has been posterised to a few dozen levels.

Graphics with flat colour fills have combed histograms too, for the honest reason that they
are made of few tones; the combination (:mod:`pixelgrade.scoring.combine`) keeps this signal
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

_SMOOTHING = np.ones(5) / 5.0


def histogram_comb(grey: np.ndarray) -> float:
    """L1 distance (0-2) between the luma histogram of ``grey`` and its 5-level moving average."""
    hist = cv2.calcHist([grey], [0], None, [256], [0, 256]).ravel().astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 0.0
    p = hist / total
    return float(np.abs(p - np.convolve(p, _SMOOTHING, mode="same")).sum())
