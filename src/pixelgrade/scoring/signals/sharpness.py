"""Focus: how sharp the picture is where it is sharpest, measured as edge width.

A no-reference blur measure in the family of Marziliano et al.: blur spreads every edge over more
pixels, so the width of edges measures blur whatever the scene shows. Each row (and each column)
of a lightly smoothed luma image is cut into *monotone runs*; a run whose total rise is large is
an edge, and its width is the **equivalent width of its line-spread function**: edge contrast
divided by peak gradient (Bracewell's equivalent width). For a step edge blurred by a Gaussian of
standard deviation s, that is ``2.5 * sqrt(s^2 + 0.5^2)`` (the 0.5 px pre-smoothing included),
independently of the edge's contrast.

**Where the picture is meant to be sharp.** A photographer chooses what is in focus: a macro shot
or a portrait has a sharp subject and a deliberately soft background, and the soft part may cover
nine tenths of the frame. So widths are not pooled over the whole picture. The image is cut into
tiles; each tile's width is the lower quartile of the widths of its stronger edges; and the
picture's focus is the width reached by its sharpest tiles (the few best, at least
:data:`BEST_TILE_SHARE` of the judged tiles, so that one lucky spot does not decide). Only a
picture with nothing in focus anywhere is blurry. Following the principle of the Just Noticeable
Blur and CPBD metrics (Ferzli & Karam; Narvekar & Karam), blur is judged at edges, not in flat or
smoothly shaded areas.

**Edges, not gradients.** Runs wider than :data:`MAX_EDGE_WIDTH` are shading (a sky gradient, a
vignette, the smooth ramps of digital art), not blurred edges, and are not judged. A picture made
only of such ramps has nothing to judge: its focus is ``None`` rather than "blurry".

Rows and columns are measured separately and the worse direction is returned, so blur along one
direction (camera shake, motion) is caught even though edges along the motion stay crisp. Noise
does not make a blurry picture look sharp: the pre-smoothing and the rise threshold (tied to the
noise level) keep noise wiggles from counting as edges.

References
----------
P. Marziliano, F. Dufaux, S. Winkler, T. Ebrahimi, "A no-reference perceptual blur metric",
Proc. IEEE ICIP 2002, vol. 3, pp. 57-60. doi:10.1109/ICIP.2002.1038902
R. N. Bracewell, *The Fourier Transform and Its Applications*, ch. 8 ("equivalent width").
R. Ferzli, L. J. Karam, "A no-reference objective image sharpness metric based on the notion of
just noticeable blur (JNB)", IEEE TIP 18(4), 717-728, 2009. doi:10.1109/TIP.2008.2011760
N. D. Narvekar, L. J. Karam, "A no-reference image blur metric based on the cumulative
probability of blur detection (CPBD)", IEEE TIP 20(9), 2678-2683, 2011.
doi:10.1109/TIP.2011.2131660
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Pre-smoothing (Gaussian sigma, px) that tames pixel noise before runs are cut. Small, so that
#: a crisp edge (about 1.5 px) and a slightly soft one (2.5 px) stay apart.
PRESMOOTH_SIGMA = 0.5
#: An edge must rise at least this many grey levels (of 255) ...
MIN_EDGE_RISE = 20.0
#: ... and at least this many times the image's noise sigma.
MIN_EDGE_RISE_PER_NOISE = 6.0
#: Runs wider than this (px at working size) are shading or smooth ramps, not edges.
MAX_EDGE_WIDTH = 16.0
#: Tile side (px at working size): about 1/16 of the picture's long side.
TILE = 64
#: A tile needs this many edges in a direction to be judged in that direction.
MIN_TILE_EDGES = 12
#: Within a tile, this percentile of the stronger half of its edges' widths is its width.
TILE_WIDTH_PERCENTILE = 25.0
#: The picture's focus is the width of its sharpest tiles: the tile at this share of the judged
#: tiles, sorted sharpest first (and never the very sharpest two, which may be one lucky spot).
BEST_TILE_SHARE = 0.03
MIN_BEST_RANK = 2
#: Sub-grey-level resolution of the smoothed image (fixed point: levels x 16 fit in int16).
FIXED_POINT = 16


@dataclass(frozen=True, slots=True)
class Focus:
    """Edge width where the picture is sharpest, and how much of it is that sharp.

    ``width``: px at the size measured; about 1.3-2 for a crisp photo at 1024 px, 3+ when the
    sharpest part is visibly soft, 5+ when badly blurred. None when nothing could be judged.
    ``judged_share``: share of the tiles that had edges to judge.
    ``sharp_share``: share of the judged tiles within 25% of ``width`` (a small share with a
    crisp ``width``: a sharp subject on a soft background).
    """

    width: float | None
    judged_share: float
    sharp_share: float


def _edges(lines: np.ndarray, min_rise: float) -> tuple[np.ndarray, ...]:
    """Width, rise, line index and centre position of every edge run along the rows of lines.

    A run's rise is the sum of its differences, which telescopes to (last - first sample), so it
    costs two lookups instead of a reduction; only runs that rise enough pay for the reduction
    that finds their peak gradient.
    """
    diffs = np.diff(lines, axis=1)
    width = diffs.shape[1]
    empty = np.empty(0, np.float32)
    if width < 2:
        return empty, empty, empty, empty
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
    rise = np.abs(samples[ends + row].astype(np.int32) - samples[starts + row])
    edge = np.flatnonzero(rise >= min_rise)
    first, stop, rise = starts[edge], ends[edge], rise[edge]
    if first.size == 0:
        return empty, empty, empty, empty
    bounds = np.empty(2 * first.size, dtype=np.intp)
    bounds[0::2] = first
    bounds[1::2] = stop
    if bounds[-1] == flat.size:
        bounds = bounds[:-1]
    peak = np.maximum.reduceat(np.abs(flat), bounds)[0::2]
    line = first // width
    centre = (first - line * width + stop - line * width) * 0.5
    return ((rise / peak).astype(np.float32), rise.astype(np.float32), line, centre)


def _tile_widths(lines: np.ndarray, min_rise: float, tile: int) -> np.ndarray:
    """Width of every judged tile, for edges running along the rows of ``lines``."""
    widths, rises, line, centre = _edges(lines, min_rise)
    keep = widths <= MAX_EDGE_WIDTH
    widths, rises, line, centre = widths[keep], rises[keep], line[keep], centre[keep]
    if widths.size == 0:
        return np.empty(0, np.float32)
    tiles_across = max(1, lines.shape[1] // tile)
    tiles_down = max(1, lines.shape[0] // tile)
    index = (np.minimum(line // tile, tiles_down - 1) * tiles_across
             + np.minimum((centre // tile).astype(np.intp), tiles_across - 1))
    # The stronger half of each tile's edges: rise at least the tile's median rise.
    order = np.lexsort((rises, index))
    index, widths, rises = index[order], widths[order], rises[order]
    counts = np.bincount(index, minlength=tiles_across * tiles_down)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    judged = np.flatnonzero(counts >= MIN_TILE_EDGES)
    out = np.empty(judged.size, np.float32)
    for k, t in enumerate(judged):
        a, n = starts[t], counts[t]
        strong = widths[a + n // 2 : a + n]  # sorted by rise within the tile: the upper half
        out[k] = np.percentile(strong, TILE_WIDTH_PERCENTILE)
    return out


def focus(grey: np.ndarray, noise_sigma: float = 0.0) -> Focus:
    """Edge width where ``grey`` (uint8 luma) is sharpest; see the module docstring.

    Parameters
    ----------
    grey : 2-D uint8 array, at the working size (widths are in its pixels).
    noise_sigma : the image's noise in grey levels (see
        :func:`pixelgrade.scoring.signals.noise.noise_sigma`); raises the rise an edge needs.
    """
    if grey.ndim != 2 or min(grey.shape) < 16:
        return Focus(None, 0.0, 0.0)
    smooth = cv2.GaussianBlur(grey.astype(np.int16) * FIXED_POINT, (0, 0), PRESMOOTH_SIGMA)
    min_rise = FIXED_POINT * max(MIN_EDGE_RISE, MIN_EDGE_RISE_PER_NOISE * noise_sigma)
    tile = min(TILE, max(16, min(grey.shape) // 4))
    tiles_total = max(1, grey.shape[0] // tile) * max(1, grey.shape[1] // tile)
    per_direction: list[np.ndarray] = []
    for lines in (smooth, cv2.transpose(smooth)):
        per_direction.append(_tile_widths(np.ascontiguousarray(lines), min_rise, tile))
    best: list[float] = []
    for widths in per_direction:
        if widths.size == 0:
            continue
        ordered = np.sort(widths)
        rank = max(MIN_BEST_RANK, int(widths.size * BEST_TILE_SHARE))
        best.append(float(ordered[min(rank, widths.size - 1)]))
    if not best:
        return Focus(None, 0.0, 0.0)
    # The blurrier direction decides: motion blur smears edges across one direction only.
    worst = int(np.argmax(best))
    width = best[worst]
    widths = per_direction[[i for i, w in enumerate(per_direction) if w.size][worst]]
    return Focus(
        width=width,
        judged_share=min(1.0, widths.size / tiles_total),
        sharp_share=float(np.mean(widths <= width * 1.25)),
    )
