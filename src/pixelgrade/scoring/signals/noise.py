"""Noise level: Immerkær's fast estimator at two scales, so that texture is not taken for noise.

Immerkær's operator ``N = [[1,-2,1],[-2,4,-2],[1,-2,1]]`` is the difference of two Laplacians;
it cancels smooth structure and leaves noise. For white Gaussian noise of standard deviation
sigma, ``sqrt(pi/2) * mean|I * N| / 6`` estimates sigma. Alone, it also counts fine texture
(grass, gravel, fabric) as noise, which is its known weakness.

The fix uses two facts. Averaging 2 x 2 pixels halves white noise (sigma -> sigma/2), while
natural image structure is statistically scale-invariant (Field; Ruderman & Bialek), so its
response to N is about the same at half resolution. With m1, m2 the estimator at full and half
resolution over the same block: ``m1^2 = sigma^2 + t^2`` and ``m2^2 = sigma^2/4 + t^2``, hence
``sigma^2 = 4/3 (m1^2 - m2^2)``. This is computed per 16 x 16 block (clipped blocks, where noise
cannot show, are excluded).

Which blocks decide follows the weak-texture selection of Liu, Tanaka and Okutomi: noise is
read where the picture has the least structure. In busy texture the scale-invariance assumption
fails (a photo's finest scale carries *less* structure than the next, because of the lens and
demosaicing), the difference above turns negative and says nothing; a median over all blocks
then read 0 for a leafy photo with strong grain. Here the blocks are ranked by their half-scale
response m2 (structure, nearly free of noise) and the median estimate of the flattest tenth is
the image's sigma.

References
----------
J. Immerkær, "Fast Noise Variance Estimation", Computer Vision and Image Understanding 64(2),
300-302, 1996. doi:10.1006/cviu.1996.0060
D. J. Field, "Relations between the statistics of natural images and the response properties of
cortical cells", JOSA A 4(12), 2379-2394, 1987. doi:10.1364/JOSAA.4.002379
D. L. Ruderman, W. Bialek, "Statistics of natural images: scaling in the woods", Physical Review
Letters 73(6), 814-817, 1994. doi:10.1103/PhysRevLett.73.814
X. Liu, M. Tanaka, M. Okutomi, "Single-image noise level estimation for blind denoising", IEEE
Transactions on Image Processing 22(12), 5226-5237, 2013. doi:10.1109/TIP.2013.2283400
"""

from __future__ import annotations

import math

import cv2
import numpy as np

_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
_SECOND_DIFFERENCE = np.array([1, -2, 1], dtype=np.float32)  # N = outer(it, it)
_SCALE = math.sqrt(math.pi / 2.0) / 6.0
#: Side of the square blocks the two scales are compared over, in working-size pixels.
BLOCK = 16
#: Blocks whose mean is within this many levels of black or white are clipped, not flat.
CLIP_MARGIN = 6
#: Share of the usable blocks, the flattest by half-scale structure, that the noise is read in.
FLATTEST_SHARE = 0.10
#: ... and never fewer blocks than this.
MIN_BLOCKS = 4


def _block_means(values: np.ndarray, block: int, rows: int, cols: int) -> np.ndarray:
    """Mean of ``values`` over each ``block`` x ``block`` tile of its top-left rows x cols."""
    return cv2.resize(values[: rows * block, : cols * block], (cols, rows),
                      interpolation=cv2.INTER_AREA)


def noise_sigma(grey: np.ndarray) -> float:
    """Standard deviation of the image's white noise, in grey levels of 255.

    Returns 0 to about 1 for clean photographs, 2-5 for visibly grainy ones and 10+ for heavy
    noise; 0.0 for images too small to measure (under 48 px on a side).

    Notes
    -----
    Measured at the size it is given; downscaling averages noise away, so compare images at the
    same working size (which is what the validator does). Noise hidden in busy texture reads
    lower than the same noise on a flat wall, as it does to the eye (texture masking).
    """
    if grey.ndim != 2 or min(grey.shape) < 3 * BLOCK:
        return 0.0
    rows, cols = grey.shape[0] // BLOCK, grey.shape[1] // BLOCK
    half = cv2.resize(grey[: rows * BLOCK, : cols * BLOCK].astype(np.float32),
                      (cols * BLOCK // 2, rows * BLOCK // 2), interpolation=cv2.INTER_AREA)
    # N is separable ([1, -2, 1] down, then across) and exact in int16 on uint8 input (|N * I|
    # <= 16 x 255): ten times cheaper than the 3 x 3 float filter at full size.
    response_full = np.abs(cv2.sepFilter2D(grey, cv2.CV_16S, _SECOND_DIFFERENCE,
                                           _SECOND_DIFFERENCE, borderType=cv2.BORDER_REFLECT))
    response_half = np.abs(cv2.filter2D(half, -1, _IMMERKAER, borderType=cv2.BORDER_REFLECT))
    m1 = _SCALE * _block_means(response_full.astype(np.float32), BLOCK, rows, cols)
    m2 = _SCALE * _block_means(response_half, BLOCK // 2, rows, cols)
    level = _block_means(half, BLOCK // 2, rows, cols)  # area means are linear: 16 x 16 of full
    usable = (level > CLIP_MARGIN) & (level < 255 - CLIP_MARGIN) & (m1 > 0.0)
    count = int(usable.sum())
    if count < MIN_BLOCKS:
        return 0.0
    m1, m2 = m1[usable], m2[usable]
    flattest = np.argpartition(m2, max(MIN_BLOCKS, int(count * FLATTEST_SHARE)) - 1)
    chosen = flattest[: max(MIN_BLOCKS, int(count * FLATTEST_SHARE))]
    variance = np.maximum(m1[chosen] ** 2 - m2[chosen] ** 2, 0.0) * (4.0 / 3.0)
    return float(math.sqrt(float(np.median(variance))))
