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
#: Sub-grey-level resolution of the smoothed image (fixed point: levels x 16 fit in int16).
FIXED_POINT = 16
#: Fewer edges than this in a direction and that direction is not judged.
MIN_EDGES = 20
#: Scan lines kept per direction: every k-th row (column) is measured, k chosen so that at
#: least this many remain. A photo at working size still yields thousands of edges; on the
#: validity corpus, 96 lines instead of every line moved no SRCC figure by more than 0.002
#: (bench/validity.py) and cut the cost of this measure about fourfold.
MIN_SCAN_LINES = 96


def _runs(lines: np.ndarray, min_rise: float) -> tuple[np.ndarray, np.ndarray]:
    """Equivalent widths and rises of the monotone runs along the rows of ``lines``.

    A run's rise is the sum of its differences, which telescopes to (last sample - first
    sample), so it costs two lookups instead of a reduction; only the runs that rise enough to
    count as edges pay for the reduction that finds their peak gradient.
    """
    diffs = np.diff(lines, axis=1)
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
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:]
    ends[-1] = flat.size
    # Difference k of row r sits between samples k + r and k + r + 1 of the flattened lines.
    row = starts // width
    samples = lines.ravel()
    rise = np.abs(samples[ends + row] - samples[starts + row])
    # A run of zero differences (a plateau) has zero rise, so the threshold alone drops it.
    edge = np.flatnonzero(rise >= min_rise)
    first, stop, rise = starts[edge], ends[edge], rise[edge]
    if first.size == 0:
        return np.empty(0, np.float32), np.empty(0, np.float32)
    # Peak |difference| inside each edge run: reduceat over [first, stop) pairs; the results at
    # odd positions cover the gaps between edges and are dropped.
    bounds = np.empty(2 * first.size, dtype=np.intp)
    bounds[0::2] = first
    bounds[1::2] = stop
    if bounds[-1] == flat.size:
        bounds = bounds[:-1]
    peak = np.maximum.reduceat(np.abs(flat), bounds)[0::2]
    return (rise / peak).astype(np.float32), rise.astype(np.float32)


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
    On large arrays every k-th row and column is measured (at least ``MIN_SCAN_LINES`` each
    way); when that finds too few edges, every line is.
    """
    if grey.ndim != 2 or min(grey.shape) < 8:
        return None
    # Fixed point (grey level x FIXED_POINT in int16) halves the memory traffic of float32 and
    # keeps 1/16-level resolution, so gentle slopes do not turn into flat plateaus.
    smooth = cv2.GaussianBlur(grey.astype(np.int16) * FIXED_POINT, (0, 0), PRESMOOTH_SIGMA)
    min_rise = FIXED_POINT * max(MIN_EDGE_RISE, MIN_EDGE_RISE_PER_NOISE * noise_sigma)
    per_direction = []
    for lines in (smooth, cv2.transpose(smooth)):
        stride = max(1, lines.shape[0] // MIN_SCAN_LINES)
        width = _typical_width(*_runs(np.ascontiguousarray(lines[::stride]), min_rise))
        if width is None and stride > 1:
            # Few edges (a product on a white background): every line is worth measuring.
            width = _typical_width(*_runs(lines, min_rise))
        per_direction.append(width)
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
