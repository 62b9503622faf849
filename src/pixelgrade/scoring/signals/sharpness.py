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
only of such ramps, or of ramps and one small crisp mark, has nothing to judge: its focus is
``None`` rather than "blurry".

Lines are scanned in four directions (rows, columns and both diagonals) and the worst direction
is returned: camera shake blurs only edges across the motion, and a scan along the motion is the
one that sees it (with rows and columns only, a diagonal shake read as crisp). Noise
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
#: ... scaled down for pictures whose tonal range is under FULL_RANGE, to at most this share.
FULL_RANGE = 0.6
MIN_RISE_SCALE = 0.3
#: ... and at least this many times the image's noise sigma.
MIN_EDGE_RISE_PER_NOISE = 6.0
#: Runs wider than this (px at working size) are shading or smooth ramps, not edges.
MAX_EDGE_WIDTH = 16.0
#: Tile side (px at working size): about 1/16 of the picture's long side.
TILE = 64
#: Edges crossed by a scan line at more than this angle from their normal are not used.
MAX_OBLIQUITY = 50.0
MIN_COSINE = float(np.cos(np.radians(MAX_OBLIQUITY)))
#: Every this-many-th line is scanned in each direction (a 64 px tile still gets 16 lines).
LINE_STRIDE = 8
#: A tile needs this many edges in a direction to be judged in that direction.
MIN_TILE_EDGES = 6
#: Within a tile, this percentile of the widths of its edges (among the stronger half of the
#: direction's edges) is its width.
TILE_WIDTH_PERCENTILE = 25.0
#: The picture's focus is the width of its sharpest tiles: the tile at this share of the judged
#: tiles, sorted sharpest first (and never the very sharpest two, which may be one lucky spot).
BEST_TILE_SHARE = 0.03
MIN_BEST_RANK = 2
#: Fewer judged tiles than this share of the picture and there is nothing to judge: a picture of
#: smooth shading with one small crisp mark (a logo on a gradient) is not "blurry". Blurred
#: photographs still have edges in 4% of their tiles and more (the corpus's damaged copies).
MIN_JUDGED_SHARE = 0.03
#: A scan direction decides only when at least this share of the tiles had edges in it (camera
#: shake along a direction still leaves 7% and more; one soft cloud across a sharp ridge 3%).
MIN_DIRECTION_SHARE = 0.06
#: ... unless this many of its tiles (and MIN_JUDGED_SHARE of them) are textured and smeared
#: along it: a strong shake.
MIN_STREAKED = 2
#: Runs wider than MAX_EDGE_WIDTH rising at least this share of an edge's rise are smeared
#: texture (see _tile_widths).
SMEAR_RISE_SHARE = 1.0 / 3.0
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


def _edges(lines: np.ndarray, min_rise: float, smear_rise: float, smear_length: float
           ) -> tuple[np.ndarray, ...]:
    """Edge runs and smeared runs along the rows of ``lines``.

    Returns (width, rise, line, centre) of every run rising at least ``min_rise`` (its width the
    equivalent width, rise over peak gradient, in samples), then (line, centre) of every run
    longer than ``smear_length`` samples rising at least ``smear_rise``. A run's rise is the sum
    of its differences, which telescopes to (last - first sample), so it costs two lookups
    instead of a reduction; only edge runs pay for the reduction that finds their peak gradient.
    """
    diffs = np.diff(lines, axis=1)
    width = diffs.shape[1]
    empty = np.empty(0, np.float32)
    no_lines = np.empty(0, np.intp)
    if width < 2:
        return empty, empty, no_lines, empty, no_lines, empty
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
    # int16 is enough: samples are 0-4080 (levels x FIXED_POINT).
    rise = np.abs(samples[ends + row] - samples[starts + row])
    long = np.flatnonzero((rise >= smear_rise) & (ends - starts > smear_length))
    smear_line = row[long]
    smear_centre = (starts[long] + ends[long]) * 0.5 - smear_line * width
    edge = np.flatnonzero(rise >= min_rise)
    first, stop, rise, line = starts[edge], ends[edge], rise[edge], row[edge]
    if first.size == 0:
        return empty, empty, no_lines, empty, smear_line, smear_centre
    bounds = np.empty(2 * first.size, dtype=np.intp)
    bounds[0::2] = first
    bounds[1::2] = stop
    if bounds[-1] == flat.size:
        bounds = bounds[:-1]
    peak = np.maximum.reduceat(np.abs(flat), bounds)[0::2]
    centre = (first + stop) * 0.5 - line * width
    return ((rise / peak).astype(np.float32), rise.astype(np.float32), line, centre,
            smear_line, smear_centre)


def _scan_lines(smooth: np.ndarray, direction: int, stride: int) -> tuple[np.ndarray, float]:
    """Every ``stride``-th line of ``smooth`` in one of four directions, and px per sample step.

    Directions: 0 rows, 1 columns, 2 and 3 the two diagonals (steps of sqrt(2) px), cut out of a
    sheared copy of the picture (``cv2.warpAffine``, nearest neighbour) that wraps around: in
    the copy, column ``x`` holds the samples ``((x - y) mod width, y)`` (direction 2) or
    ``((x + y) mod width, y)`` (direction 3), so every sample is a pixel of the picture. Where
    a line wraps from one side to the other it jumps: :func:`_position` reports the column and
    callers drop the runs near the seam (:data:`SEAM`). Only every stride-th column of the
    copy is made.
    """
    height, width = smooth.shape
    if direction == 0:
        return smooth[::stride], 1.0
    if direction == 1:
        return np.ascontiguousarray(smooth[:, ::stride].T), 1.0
    slope = -1.0 if direction == 2 else 1.0
    shear = np.array([[float(stride), slope, 0.0], [0.0, 1.0, 0.0]])
    sheared = cv2.warpAffine(smooth, shear, ((width + stride - 1) // stride, height),
                             flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_WRAP)
    return np.ascontiguousarray(sheared.T), float(np.sqrt(2.0))


def _position(direction: int, line: np.ndarray, along: np.ndarray, stride: int,
              shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) in the picture of sample ``along`` of scan line ``line``. For the
    diagonals the column is not yet wrapped (outside 0..width-1 near the seam)."""
    if direction == 0:
        return line * stride, along
    if direction == 1:
        return along, line * stride
    x = line * stride
    if direction == 2:
        return along, x - along
    return along, x + along


#: Diagonal runs whose centre lies this close (px) to where a wrapped line jumps are dropped.
SEAM = 16


#: Unit vector (x, y) of each scan direction (see _position).
_DIRECTION = ((1.0, 0.0), (0.0, 1.0), (-0.7071, 0.7071), (0.7071, 0.7071))


def _tile_widths(smooth: np.ndarray, gradient: tuple[np.ndarray, np.ndarray], direction: int,
                 min_rise: float, tile: int, stride: int, smear: bool = True
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per tile, for edges crossed by lines in one direction: its width in px (NaN when it has
    too few edges) and whether it is smeared (see below).

    A line crossing an edge obliquely sees it wider than it is, by 1 / cos(angle between the
    line and the edge's normal); widths are corrected by that cosine, read from the gradient at
    the edge, and edges crossed at more than :data:`MAX_OBLIQUITY` degrees are not used. A tile
    is smeared when it has at least :data:`MIN_TILE_EDGES` runs longer than
    :data:`MAX_EDGE_WIDTH` that rise at least :data:`SMEAR_RISE_SHARE` of an edge's rise: what a
    strong camera shake leaves of texture along the motion (not worked out when ``smear`` is
    False: every tile is then reported not smeared).
    """
    tiles_across = max(1, smooth.shape[1] // tile)
    tiles_down = max(1, smooth.shape[0] // tile)
    tiles = tiles_across * tiles_down
    lines, step = _scan_lines(smooth, direction, stride)
    widths, rises, line, centre, smear_line, smear_centre = _edges(
        lines, min_rise, min_rise * SMEAR_RISE_SHARE, MAX_EDGE_WIDTH / step)
    dx, dy = _DIRECTION[direction]

    def tile_of(line: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tile index and cosine of each run; the cosine is 0 for runs seen too obliquely or
        lying in the sheared copy's replicated margins (outside the picture)."""
        r, c = _position(direction, line, centre.astype(np.intp), stride, smooth.shape)
        inside = np.ones(c.shape, bool)
        if direction >= 2:
            # Runs next to a wrapped line's seam straddle two far-apart places: dropped.
            c = np.mod(c, smooth.shape[1])
            inside = (c >= SEAM) & (c < smooth.shape[1] - SEAM)
        gx = gradient[0][r, c].astype(np.float32)
        gy = gradient[1][r, c].astype(np.float32)
        cosine = np.abs(dx * gx + dy * gy) / np.maximum(np.hypot(gx, gy), 1e-6)
        cosine[~inside | (cosine < MIN_COSINE)] = 0.0
        index = (np.minimum(r // tile, tiles_down - 1) * tiles_across
                 + np.minimum(c // tile, tiles_across - 1))
        return index, cosine

    out = np.full(tiles, np.nan, np.float32)
    smeared = np.zeros(tiles, bool)
    if smear:
        smear_index, smear_cos = tile_of(smear_line, smear_centre)
        smeared = np.bincount(smear_index[smear_cos > 0], minlength=tiles) >= MIN_TILE_EDGES
    # The stronger half of the edges (by rise) in this direction is judged; the cheap tests come
    # before the gradient lookups.
    edge = (widths * step) <= MAX_EDGE_WIDTH / MIN_COSINE
    if not edge.any():
        return out, smeared
    strong = edge & (rises >= np.median(rises[edge]))
    widths, line, centre = widths[strong] * step, line[strong], centre[strong]
    index, cosine = tile_of(line, centre)
    widths = widths * cosine
    keep = (cosine > 0) & (widths <= MAX_EDGE_WIDTH)
    widths, index = widths[keep], index[keep]
    if widths.size == 0:
        return out, smeared
    # One sort of (tile, width) keys; widths kept to 1/256 px.
    quantised = np.minimum(widths * 256, 65535).astype(np.int64)
    keys = np.sort(index.astype(np.int64) * 65536 + quantised)
    counts = np.bincount(index, minlength=tiles)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    judged = np.flatnonzero(counts >= MIN_TILE_EDGES)
    at = starts[judged] + ((counts[judged] - 1) * TILE_WIDTH_PERCENTILE / 100.0).astype(np.intp)
    out[judged] = (keys[at] & 65535) / 256.0
    return out, smeared


def focus(grey: np.ndarray, noise_sigma: float = 0.0, tonal_range: float = 1.0) -> Focus:
    """Edge width where ``grey`` (uint8 luma) is sharpest; see the module docstring.

    Parameters
    ----------
    grey : 2-D uint8 array, at the working size (widths are in its pixels).
    noise_sigma : the image's noise in grey levels (see
        :func:`pixelgrade.scoring.signals.noise.noise_sigma`); raises the rise an edge needs.
    tonal_range : the image's robust tonal range (0-1, see
        :attr:`pixelgrade.scoring.signals.exposure.ToneStats.dynamic_range`). The rise an edge
        needs shrinks with it, so that a flat or hazy picture still has edges to judge (the
        equivalent width itself does not depend on contrast).
    """
    if grey.ndim != 2 or min(grey.shape) < 16:
        return Focus(None, 0.0, 0.0)
    smooth = cv2.GaussianBlur(grey.astype(np.int16) * FIXED_POINT, (0, 0), PRESMOOTH_SIGMA)
    contrast = min(1.0, max(MIN_RISE_SCALE, tonal_range / FULL_RANGE))
    min_rise = FIXED_POINT * max(MIN_EDGE_RISE * contrast, MIN_EDGE_RISE_PER_NOISE * noise_sigma)
    tile = min(TILE, max(16, min(grey.shape) // 4))
    tiles_total = max(1, grey.shape[0] // tile) * max(1, grey.shape[1] // tile)
    stride = max(1, min(LINE_STRIDE, tile // 8))
    gradient = (cv2.Sobel(smooth, cv2.CV_16S, 1, 0), cv2.Sobel(smooth, cv2.CV_16S, 0, 1))
    # Smeared tiles only matter to a direction with few judged tiles of its own (see below):
    # they are worked out for those directions alone.
    enough = max(1.0, MIN_JUDGED_SHARE * tiles_total)
    needs_smear = max(enough, MIN_DIRECTION_SHARE * tiles_total) + MIN_BEST_RANK + 1
    measured = []
    for direction in range(4):
        widths, smeared = _tile_widths(smooth, gradient, direction, min_rise, tile, stride,
                                       smear=False)
        if np.count_nonzero(~np.isnan(widths)) < needs_smear:
            widths, smeared = _tile_widths(smooth, gradient, direction, min_rise, tile, stride)
        measured.append((widths, smeared))
    # A smeared tile counts as MAX_EDGE_WIDTH wide in its direction when it has real edges in
    # another direction (texture that the shake streaked, not an empty sky).
    textured = np.vstack([~np.isnan(widths) for widths, _ in measured]).any(axis=0)
    per_direction = []
    streaked = []
    for widths, smeared in measured:
        widths = widths.copy()
        streak = np.isnan(widths) & smeared & textured
        widths[streak] = MAX_EDGE_WIDTH
        per_direction.append(widths[~np.isnan(widths)])
        streaked.append(int(streak.sum()))
    # A direction with edges in too few tiles says nothing: a picture whose sharp edges all run
    # one way (a ridge, a facade) has only a few soft ones (clouds) across them.
    judged = [w for w, n in zip(per_direction, streaked, strict=True)
              if w.size >= max(enough, MIN_DIRECTION_SHARE * tiles_total)
              or n >= max(MIN_STREAKED, MIN_JUDGED_SHARE * tiles_total)]
    if not judged:
        judged = [w for w in per_direction if w.size >= enough]
    if not judged:
        most = max(w.size for w in per_direction)
        return Focus(None, min(1.0, most / tiles_total), 0.0)
    best = []
    for widths in judged:
        ordered = np.sort(widths)
        rank = max(MIN_BEST_RANK, int(widths.size * BEST_TILE_SHARE))
        best.append(float(ordered[min(rank, widths.size - 1)]))
    # The blurrier direction decides: motion blur smears edges across one direction only.
    worst = int(np.argmax(best))
    width, widths = best[worst], judged[worst]
    return Focus(
        width=width,
        judged_share=min(1.0, widths.size / tiles_total),
        sharp_share=float(np.mean(widths <= width * 1.25)),
    )
