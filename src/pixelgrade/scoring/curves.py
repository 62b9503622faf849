"""Sub-score curves: each raw signal to a 0-100 sub-score, with the reason for every knee.

Every curve is piecewise linear through named breakpoints (clamped at both ends) and is flat at
100 over the range where the signal shows no visible problem, so a good picture loses nothing
for being a little unusual. The scale of a sub-score reads like the bands: 85-100 nothing a
person would notice, 70-85 noticeable on a close look, 40-70 a visible defect, under 40 a
severe one. Where a knee sits was set by looking at the real-photo corpus of
``bench/validity.py`` (its calibration half only): the good photographs' range of a signal on
one side, the damaged copies' range on the other, the knee where a person comparing them on a
1024 px screen starts to see the damage.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Curve = Sequence[tuple[float, float]]


def curve(points: Curve, value: float) -> float:
    """Piecewise-linear interpolation through ``points`` (clamped at both ends)."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return float(np.interp(value, xs, ys))


#: Focus width (px at the ~1024 px working size, where the picture is sharpest) -> sharpness.
#: Good photographs measure 1.1-2.1 (a few soft ones up to 2.4); a Gaussian blur of 1.5 px on
#: a 1024 px screen measures 2.9 and more, camera shake of 8 px 2.3 and more, a photo enlarged
#: about twice 1.9-2.9.
SHARPNESS: Curve = ((1.8, 100), (2.1, 94), (2.4, 82), (2.7, 68), (3.0, 58), (3.5, 46),
                    (4.5, 30), (6.0, 14), (8.0, 4), (10.0, 0))
#: Noise sigma (grey levels at working size, flattest blocks) -> noise. Good photographs read
#: under 0.7; grain a person notices at 1024 px starts around 3.
NOISE: Curve = ((1.0, 100), (2.0, 90), (3.0, 72), (4.0, 60), (6.0, 45), (9.0, 30), (14.0, 15),
                (25.0, 0))
#: Share of isolated specks -> impulses. Clean photographs: under 0.15% (stars, glints);
#: visible salt-and-pepper damage: 0.35% and more.
IMPULSES: Curve = ((0.0015, 100), (0.0025, 88), (0.0035, 66), (0.006, 52), (0.012, 40),
                   (0.03, 25), (0.1, 5))
#: Histogram comb index -> banding. Photographs: 0.01-0.25; posterised to a few dozen tones:
#: 0.3-1.6. Flat-colour graphics comb too, hence the floor at 45: banding alone never makes a
#: picture Low.
BANDING: Curve = ((0.25, 100), (0.32, 88), (0.45, 66), (0.7, 55), (1.0, 50), (1.6, 45))
#: Brightest detail (99.9th percentile of luma) -> underexposure factor. Night and low-key
#: photographs still reach 0.75+ somewhere (a light, a lit face); two stops of underexposure
#: leave the brightest detail under 0.6. Dim is a visible defect, not a severe one, until the
#: picture is nearly black (brightest detail under 0.3): dark designs stay in Medium.
BRIGHTEST: Curve = ((0.08, 3), (0.15, 15), (0.22, 28), (0.30, 38), (0.40, 46), (0.50, 54),
                    (0.56, 62), (0.62, 75), (0.70, 92), (0.76, 100))
#: Median luma -> relief from the rule above: a picture whose middle tones sit at mid-grey is
#: not underexposed even without bright highlights (fog, an overcast scene).
MEDIAN_RELIEF: Curve = ((0.25, 0), (0.40, 60), (0.48, 90), (0.55, 100))
#: Share of pixels crushed to black -> factor. Deep shadows and silhouettes are common in good
#: photos (up to a fifth of the corpus's, swans on black water, silhouettes against a sky); a
#: picture more than a third black has lost its detail (a gamma of 4 or more).
SHADOW_CLIP: Curve = ((0.0, 100), (0.20, 100), (0.30, 88), (0.40, 70), (0.55, 52), (0.80, 25),
                      (1.0, 0))
#: Share of blown highlights, weighted by how bright the rest is (see combine) -> factor.
#: Specular highlights, a lamp or the sun: up to ~2%. Blown sky and skin: 10% and more.
HIGHLIGHT_CLIP: Curve = ((0.01, 100), (0.03, 93), (0.06, 80), (0.10, 66), (0.20, 54),
                         (0.40, 46), (0.60, 40), (0.80, 25), (0.95, 8), (1.0, 0))
#: Median of the unclipped pixels -> factor: middle tones pushed up into the highlights. Pale,
#: high-key photographs keep them under ~0.77 (fog, pastel, a hazy beach); a stop or two of
#: overexposure puts them over 0.8.
BRIGHT_MIDTONES: Curve = ((0.70, 100), (0.77, 90), (0.83, 70), (0.88, 52), (0.93, 35),
                          (0.97, 20), (1.0, 10))
#: Median of the unclipped pixels -> weight of the clipped share above: clipping beside dark or
#: mid tones is a background or a light source; clipping beside bright tones is overexposure.
CLIP_WEIGHT: Curve = ((0.35, 0.3), (0.65, 1.0))
#: Darkest tones (0.5th percentile) -> contrast. Every good photograph of the corpus, fog and
#: pastel high-key included, keeps some tones under 0.3; a haze or a veil lifts them over 0.35.
DARK_LEVEL: Curve = ((0.22, 100), (0.28, 92), (0.34, 72), (0.42, 58), (0.55, 50), (0.75, 45),
                     (0.90, 30), (1.0, 15))
#: Robust tonal range (99.5th minus 0.5th percentile) -> contrast. Only nearly flat pictures are
#: punished: a blank image spans a level or two.
TONAL_RANGE: Curve = ((0.008, 0), (0.02, 12), (0.05, 42), (0.10, 52), (0.20, 75), (0.30, 100))
#: Effective pixels / target pixels, on a log2 axis -> resolution. A quarter of the target is
#: still usable (85); 1/64 of it (125 x 125 for 1 MP) is a thumbnail.
RESOLUTION: Curve = ((-8.0, 0), (-6.0, 10), (-4.0, 45), (-2.0, 85), (0.0, 100))
#: Estimated JPEG quality (IJG 1-100) -> compression. Web images are typically saved at 70-85,
#: where nothing shows at the picture's own size; blocks and ringing show from about 50 down.
JPEG_QUALITY: Curve = ((0, 0), (5, 3), (10, 15), (20, 35), (30, 50), (50, 75), (60, 85),
                       (70, 93), (80, 97), (90, 100))
#: libwebp quality recovered from the VP8 quantizer -> compression. WebP degrades into blur
#: rather than blocks, more gracefully than JPEG at the same nominal quality: the GCompris
#: photographs, saved at about 40, show nothing at their own size.
WEBP_QUALITY: Curve = ((0, 5), (5, 20), (10, 35), (20, 58), (30, 75), (40, 87), (50, 92),
                       (60, 95), (75, 98), (90, 100))
#: Blockiness ratio (1 = no 8 px grid) -> compression, for files whose header says nothing
#: (a PNG or BMP made from a JPEG). Floored at 40: periodic patterns in graphics also read as
#: a grid, so blockiness alone never makes a picture Low.
BLOCKINESS: Curve = ((1.0, 100), (1.06, 99), (1.15, 92), (1.3, 75), (1.6, 55), (2.2, 45),
                     (3.5, 40))
