"""Sharpness as the width of the image's strongest edges.

A no-reference blur measure in the family of Marziliano et al.: blur spreads every edge over more
pixels, so the typical width of strong edges measures blur whatever the scene shows. Each row
(and each column) of a lightly smoothed luma image is cut into *monotone runs*; a run whose total
rise is large is an edge, and its width is the **equivalent width of its line-spread function**:
edge contrast divided by peak gradient (Bracewell's equivalent width). For a step edge blurred by
a Gaussian of standard deviation s, that is s * sqrt(2 pi) ~= 2.5 s, independently of the edge's
contrast, which makes the measure insensitive to how contrasty the scene is.

Unlike the variance of the Laplacian, noise does not make a blurry picture look sharp: the light
pre-smoothing and the rise threshold (tied to the noise level) keep noise wiggles from counting
as edges.

References
----------
P. Marziliano, F. Dufaux, S. Winkler, T. Ebrahimi, "A no-reference perceptual blur metric",
Proc. IEEE ICIP 2002, vol. 3, pp. 57-60. doi:10.1109/ICIP.2002.1038902
R. N. Bracewell, *The Fourier Transform and Its Applications*, ch. 8 ("equivalent width").
"""

from __future__ import annotations

import cv2
import numpy as np

#: Pre-smoothing (Gaussian sigma, px) that tames pixel noise before runs are cut.
PRESMOOTH_SIGMA = 0.8
#: An edge must rise at least this many grey levels (of 255) ...
MIN_EDGE_RISE = 20.0
#: ... and at least this many times the image's noise sigma.
MIN_EDGE_RISE_PER_NOISE = 6.0
#: Only the stronger half of the edges is judged: blur is judged where the scene has real edges.
STRONGEST_EDGE_FRACTION = 0.5
#: ... and among them the sharper quarter decides (this percentile of their widths), so a photo
#: with a sharp subject and a soft, out-of-focus background is judged by its subject.
WIDTH_PERCENTILE = 25.0
#: Fewer edges than this in a direction and that direction is not judged.
MIN_EDGES = 20


def _runs(rows: np.ndarray, min_rise: float) -> tuple[np.ndarray, np.ndarray]:
    """Equivalent widths and rises of the monotone runs along the rows of ``rows``."""
    diffs = np.diff(rows, axis=1)
    width = diffs.shape[1]
    if width < 2:
        return np.empty(0, np.float32), np.empty(0, np.float32)
    flat = diffs.ravel()
    signs = np.sign(flat)
    boundary = np.empty(flat.size, dtype=bool)
    boundary[0] = True
    np.not_equal(signs[1:], signs[:-1], out=boundary[1:])
    boundary[::width] = True  # runs never cross into the next row
    starts = np.flatnonzero(boundary)
    rise = np.abs(np.add.reduceat(flat, starts))
    peak = np.maximum.reduceat(np.abs(flat), starts)
    keep = (rise >= min_rise) & (signs[starts] != 0)
    return (rise[keep] / peak[keep]).astype(np.float32), rise[keep].astype(np.float32)


def edge_width(grey: np.ndarray, noise_sigma: float = 0.0) -> float | None:
    """Typical width, in pixels, of the strongest edges of ``grey`` (uint8 luma).

    Parameters
    ----------
    grey : 2-D uint8 array.
    noise_sigma : the image's noise standard deviation in grey levels (see
        :func:`pixelgrade.scoring.signals.noise.noise_sigma`); raises the rise an edge needs.

    Returns
    -------
    float or None
        About 2-3 px for a crisp photo (the pre-smoothing alone gives ~2), 4-5 px when softly
        blurred, 7+ px when badly blurred. ``None`` when the image has no
        edge strong enough to judge (blank or extremely flat images).

    Notes
    -----
    Widths are in pixels of the array given; callers compare images at a common working size.
    Depth-of-field blur in a photo with a sharp subject is not penalised much, because the
    sharper edges among the strongest ones decide. Rows and columns are measured separately and
    the wider result is returned, so blur along one direction (camera shake, motion) is caught.
    """
    if grey.ndim != 2 or min(grey.shape) < 8:
        return None
    smooth = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), PRESMOOTH_SIGMA)
    min_rise = max(MIN_EDGE_RISE, MIN_EDGE_RISE_PER_NOISE * noise_sigma)
    per_direction = [
        _typical_width(*_runs(rows, min_rise))
        for rows in (smooth, np.ascontiguousarray(smooth.T))
    ]
    measured = [width for width in per_direction if width is not None]
    # The blurrier direction decides: motion blur smears edges across one direction only.
    return max(measured) if measured else None


def _typical_width(widths: np.ndarray, rises: np.ndarray) -> float | None:
    """WIDTH_PERCENTILE of the widths of the strongest edges (None if too few edges)."""
    if widths.size < MIN_EDGES:
        return None
    count = max(MIN_EDGES, int(widths.size * STRONGEST_EDGE_FRACTION))
    strongest = np.argpartition(rises, widths.size - count)[widths.size - count :]
    return float(np.percentile(widths[strongest], WIDTH_PERCENTILE))
