"""Compression damage: JPEG quality from the quantization tables, and blockiness from pixels.

**JPEG quality.** Encoders built on libjpeg (most of them) derive their tables by scaling the
example tables of the JPEG standard (ITU-T T.81, Annex K) with the IJG rule: ``scale = 5000/q``
for q < 50 and ``200 - 2q`` above, ``table = clamp((base * scale + 50) // 100, 1, 255)``. The
quality is the q whose scaled luminance table best matches the file's (least squares in log
space), the method ImageMagick's ``identify -verbose`` popularised. Cameras with custom tables
get the nearest equivalent quality.

**WebP quality** is read the same way from the VP8 frame header (:mod:`pixelgrade.scoring.vp8`).

**Blockiness.** Block-based coders leave a grid of discontinuities every 8 pixels. Following Wang,
Bovik and Evans, the mean absolute difference across block boundaries is compared with the mean
difference at the other positions: 1.0 means no grid, 1.3+ a visible one. The grid's phase is
searched, so a cropped image is still measured.

References
----------
ITU-T Recommendation T.81 (1992), Annex K.1, tables K.1 and K.2.
Z. Wang, A. C. Bovik, B. L. Evans, "Blind measurement of blocking artifacts in images",
Proc. IEEE ICIP 2000, vol. 3, pp. 981-984. doi:10.1109/ICIP.2000.899622
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: Table K.1 of ITU-T T.81, luminance, in natural (row-major) order.
_K1_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
], dtype=np.float64)


def _ijg_table(quality: int) -> np.ndarray:
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return np.clip(np.floor((_K1_LUMINANCE * scale + 50) / 100), 1, 255)


_IJG_TABLES = np.stack([_ijg_table(q) for q in range(1, 101)])
_LOG_IJG_SORTED = np.log(np.sort(_IJG_TABLES, axis=1))


def jpeg_quality(quantization: Mapping[int, Sequence[int]] | None) -> float | None:
    """Estimated IJG quality (1-100) of a JPEG from its quantization tables, or None.

    Uses the luminance table (index 0). The comparison is on sorted values, so it does not
    depend on whether the tables are stored in zigzag or natural order.
    """
    if not quantization or 0 not in quantization:
        return None
    table = np.asarray(quantization[0], dtype=np.float64)
    if table.size != 64 or np.any(table <= 0):
        return None
    errors = ((_LOG_IJG_SORTED - np.log(np.sort(table))) ** 2).sum(axis=1)
    return float(np.argmin(errors) + 1)


#: Largest square crop (px) the blockiness is measured on; plenty for a stable mean.
_CROP = 768


def _boundary_ratio(profile: np.ndarray, period: int) -> float:
    """Max over phases of (mean diff at phase) / (mean diff at the other phases).

    ``profile`` holds, per position across the block grid, the sum of absolute differences
    along the other axis (one pass over the pixels; the phases are then folded here).
    """
    usable = (profile.size // period) * period
    if usable < 4 * period:
        return 1.0
    per_phase = profile[:usable].reshape(-1, period).sum(axis=0).astype(np.float64)
    best = int(np.argmax(per_phase))
    others = np.delete(per_phase, best).mean()
    if others <= 1e-6:
        return 1.0
    return float(per_phase[best] / others)


def blockiness(grid: np.ndarray, period: int = 8) -> float:
    """Ratio of gradient across block boundaries to gradient elsewhere (1.0 = no blocks).

    ``grid`` is a uint8 luma array on the coder's own pixel grid (not resized), ``period`` the
    block size on that grid (8 for JPEG at full size, 4 after a 1/2 DCT-scaled decode).

    Notes
    -----
    Flat areas carry no information about blocks and dilute nothing here: only the phase
    profile of differences is compared. Values near 1.02 are normal for clean images; above
    about 1.25 the grid is visible.
    """
    if grid.ndim != 2 or min(grid.shape) < 8 * period:
        return 1.0
    top = max((grid.shape[0] - _CROP) // 2, 0)
    left = max((grid.shape[1] - _CROP) // 2, 0)
    crop = grid[top : top + _CROP, left : left + _CROP].astype(np.int16)
    across_columns = np.abs(np.diff(crop, axis=1)).sum(axis=0, dtype=np.int64)
    across_rows = np.abs(np.diff(crop, axis=0)).sum(axis=1, dtype=np.int64)
    return float((_boundary_ratio(across_columns, period)
                  + _boundary_ratio(across_rows, period)) / 2)
