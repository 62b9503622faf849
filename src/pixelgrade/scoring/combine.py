"""From raw signals to sub-scores, issues and one 0-100 score: the only place weights live.

How the score is made
---------------------
Each signal's raw value is mapped to a 0-100 **sub-score** by a piecewise-linear curve through
the named breakpoints below (log scale for resolution). The curves are nearly flat (95-100) over
the range where people see no problem and fall steeply where the damage becomes visible; their
knees were set on the scikit-image sample photos and graded distortions of them
(``bench/validity.py``, reported in ``docs/validity.md``).

The overall score is a **weighted geometric mean without normalisation**::

    score = 100 * product( (sub_score / 100) ** weight )

so each component acts as a multiplicative penalty. This matches how people judge pictures:
one serious defect (a blurred or black image) makes the picture bad however good the rest is,
which an arithmetic mean would hide (a black image with perfect resolution and no noise would
still average 70). A weight of 1.0 means a sub-score of 50 halves the score; resolution and
contrast weigh less because they are partly matters of use and taste.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pixelgrade.scoring.config import WORKING_LONG_SIDE, ScoringConfig
from pixelgrade.scoring.decode import DecodedImage
from pixelgrade.scoring.report import Component, Issue, QualityReport
from pixelgrade.scoring.signals import (
    ToneStats,
    blockiness,
    edge_width,
    jpeg_quality,
    noise_sigma,
    tone_stats,
)
from pixelgrade.scoring.vp8 import webp_quality

Curve = Sequence[tuple[float, float]]

#: Weights (exponents) of each sub-score in the overall score.
WEIGHTS: dict[str, float] = {
    "sharpness": 1.0,    # blur is the defect people reject first
    "noise": 0.8,
    "exposure": 1.0,     # a black or blown-out picture shows nothing
    "contrast": 0.7,     # flat pictures are weak, but fog and snow are flat on purpose
    "resolution": 0.5,   # small is a limit of use, not a defect of the picture
    "compression": 0.8,
    "information": 1.5,  # a blank image has no value whatever its other signals
}

#: Edge width (px at working size) -> sharpness. Crisp photos measure 2-3 px.
SHARPNESS_CURVE: Curve = ((1.5, 100), (3.0, 97), (3.6, 92), (4.5, 72), (6.0, 42), (8.0, 15),
                          (12.0, 0))
#: Noise sigma (grey levels at working size) -> noise sub-score. Grain shows from ~3 levels.
NOISE_CURVE: Curve = ((0.0, 100), (1.0, 98), (2.0, 94), (3.5, 82), (6.0, 58), (10.0, 30),
                      (16.0, 10), (25.0, 0))
#: Mean luminance (0-1) -> factor. Low-key and high-key photos are legitimate, so the curve is
#: nearly flat from 0.2 to 0.65 and only the extremes are punished here.
MEAN_LUMINANCE_CURVE: Curve = ((0.0, 0), (0.04, 5), (0.10, 40), (0.16, 80), (0.22, 96),
                               (0.35, 99.5), (0.5, 100), (0.62, 99), (0.70, 92), (0.80, 65),
                               (0.90, 30), (0.97, 5), (1.0, 0))
#: 99th percentile of luminance -> factor: the brightest tones of a properly exposed picture
#: come near white; without them it looks dim (underexposure).
BRIGHT_LEVEL_CURVE: Curve = ((0.0, 0), (0.15, 8), (0.30, 45), (0.45, 80), (0.55, 93),
                             (0.65, 98), (0.80, 100))
#: 1st percentile of luminance -> factor: without any dark tone a picture looks washed out
#: (overexposure, haze).
DARK_LEVEL_CURVE: Curve = ((0.0, 100), (0.10, 99.5), (0.20, 98), (0.30, 92), (0.45, 70),
                           (0.60, 35), (0.80, 5), (1.0, 0))
#: Share of pixels blown to white -> factor. A few specular highlights are normal.
HIGHLIGHT_CLIP_CURVE: Curve = ((0.0, 100), (0.005, 99.5), (0.02, 97), (0.05, 90), (0.15, 65),
                               (0.30, 35), (0.60, 5), (1.0, 0))
#: Share of pixels crushed to black -> factor. Deep shadows are common in good photos.
SHADOW_CLIP_CURVE: Curve = ((0.0, 100), (0.10, 99.5), (0.20, 97), (0.35, 80), (0.50, 55),
                            (0.80, 10), (1.0, 0))
#: RMS contrast (std / 255) -> contrast. Typical photos: 0.15-0.30.
CONTRAST_CURVE: Curve = ((0.0, 0), (0.015, 3), (0.03, 15), (0.05, 38), (0.08, 72), (0.10, 86),
                         (0.13, 95), (0.18, 98.5), (0.25, 100))
#: Pixels / target pixels, on a log2 axis -> resolution. A quarter of the target is still
#: usable (85); 1/64 of it (125 x 125 for 1 MP) is a thumbnail.
RESOLUTION_CURVE: Curve = ((-8.0, 0), (-6.0, 10), (-4.0, 45), (-2.0, 85), (0.0, 100))
#: Estimated JPEG quality (IJG 1-100) -> compression. Web images are typically saved at 75-85.
JPEG_QUALITY_CURVE: Curve = ((0, 0), (5, 3), (10, 15), (20, 35), (30, 50), (50, 72), (70, 88),
                             (80, 95), (90, 99), (100, 100))
#: libwebp quality recovered from the VP8 quantizer -> compression. WebP degrades into blur
#: rather than blocks, more gracefully than JPEG at the same nominal quality.
WEBP_QUALITY_CURVE: Curve = ((0, 5), (5, 20), (10, 35), (20, 55), (40, 78), (60, 90), (75, 96),
                             (90, 99.5), (100, 100))
#: Blockiness ratio (1 = no 8 px grid) -> compression.
BLOCKINESS_CURVE: Curve = ((1.0, 100), (1.06, 99), (1.15, 92), (1.3, 75), (1.6, 45), (2.2, 15),
                           (3.5, 0))
#: Histogram entropy (bits) -> information. Photos carry 6-7.8 bits; a flat fill ~0-2.
INFORMATION_CURVE: Curve = ((0.0, 0), (1.0, 5), (2.0, 30), (3.0, 70), (4.0, 95), (5.0, 100))

#: A component whose sub-score falls below this is reported as an issue.
ISSUE_BELOW = 70


def curve(points: Curve, value: float) -> float:
    """Piecewise-linear interpolation through ``points`` (clamped at both ends)."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return float(np.interp(value, xs, ys))


def _component(name: str, score: float | None, value: float | None, unit: str) -> Component:
    return Component(
        score=None if score is None else round(score),
        value=None if value is None else round(float(value), 4),
        unit=unit,
        weight=WEIGHTS[name],
    )


def _compression_component(sub_score: float | None, jpeg: float | None, webp: float | None,
                           blocks: float | None) -> Component:
    """The compression component reports the encoder's quality when the header gives it."""
    if jpeg is not None:
        return _component("compression", sub_score, jpeg, "JPEG quality (1-100)")
    if webp is not None:
        return _component("compression", sub_score, webp, "WebP quality (0-100)")
    return _component("compression", sub_score, blocks, "blockiness ratio")


def overall_score(sub_scores: dict[str, float | None]) -> float:
    """The weighted geometric product of sub-scores (None = not measurable, left out)."""
    log_total = 0.0
    for name, sub_score in sub_scores.items():
        if sub_score is None:
            continue
        factor = max(sub_score, 0.0) / 100.0
        if factor <= 0.0:
            return 0.0
        log_total += WEIGHTS[name] * math.log(factor)
    return 100.0 * math.exp(log_total)


def assess(decoded: DecodedImage, data_size: int, config: ScoringConfig) -> QualityReport:
    """Measure every signal of ``decoded`` and combine them into a :class:`QualityReport`."""
    grey = decoded.grey
    tones = tone_stats(grey)
    sigma = noise_sigma(grey)
    width_px = edge_width(grey, sigma)
    if width_px is not None and decoded.scale < 1.0:
        # A DCT-scaled decode may stop short of the working size; report widths at that size.
        width_px *= WORKING_LONG_SIDE / max(grey.shape)
    quality = jpeg_quality(decoded.quantization)
    webp = None if decoded.webp_quantizer is None else webp_quality(decoded.webp_quantizer)
    blocks = blockiness(decoded.grid, decoded.grid_period) if decoded.grid_period else None
    megapixels = decoded.width * decoded.height / 1e6

    sub: dict[str, float | None] = {}
    sub["sharpness"] = None if width_px is None else curve(SHARPNESS_CURVE, width_px)
    sub["noise"] = curve(NOISE_CURVE, sigma)
    mean_factor = curve(MEAN_LUMINANCE_CURVE, tones.mean) / 100
    highlight_factor = curve(HIGHLIGHT_CLIP_CURVE, tones.highlights_clipped) / 100
    shadow_factor = curve(SHADOW_CLIP_CURVE, tones.shadows_clipped) / 100
    bright_factor = curve(BRIGHT_LEVEL_CURVE, tones.bright_level) / 100
    dark_factor = curve(DARK_LEVEL_CURVE, tones.dark_level) / 100
    sub["exposure"] = (100 * mean_factor * highlight_factor * shadow_factor * bright_factor
                       * dark_factor)
    sub["contrast"] = curve(CONTRAST_CURVE, tones.rms_contrast)
    sub["resolution"] = curve(
        RESOLUTION_CURVE, math.log2(max(megapixels, 1e-9) / config.target_megapixels)
    )
    compression_scores = [curve(JPEG_QUALITY_CURVE, quality)] if quality is not None else []
    if webp is not None:
        compression_scores.append(curve(WEBP_QUALITY_CURVE, webp))
    if blocks is not None:
        compression_scores.append(curve(BLOCKINESS_CURVE, blocks))
    sub["compression"] = min(compression_scores) if compression_scores else None
    sub["information"] = curve(INFORMATION_CURVE, tones.entropy_bits)

    components = {
        "sharpness": _component("sharpness", sub["sharpness"], width_px, "px edge width"),
        "noise": _component("noise", sub["noise"], sigma, "noise sigma (grey levels)"),
        "exposure": _component("exposure", sub["exposure"], tones.mean, "mean luminance (0-1)"),
        "contrast": _component("contrast", sub["contrast"], tones.rms_contrast, "RMS contrast"),
        "resolution": _component("resolution", sub["resolution"], megapixels, "megapixels"),
        "compression": _compression_component(sub["compression"], quality, webp, blocks),
        "information": _component("information", sub["information"], tones.entropy_bits,
                                  "histogram entropy (bits)"),
    }
    under = (mean_factor if tones.mean < 0.5 else 1.0) * shadow_factor * bright_factor
    over = (mean_factor if tones.mean >= 0.5 else 1.0) * highlight_factor * dark_factor
    facts = _Facts(width_px, sigma, tones, megapixels, quality, webp, blocks, decoded, config,
                   "underexposed" if under < over else "overexposed")
    low = sorted(
        ((name, value) for name, value in sub.items() if value is not None and value < ISSUE_BELOW),
        key=lambda item: item[1],
    )
    if any(name == "information" for name, _ in low):
        # A blank image is also flat and often bright or dark; those are not separate problems.
        low = [("information", 0.0)]
    issues = [Issue(*_describe(name, facts)) for name, _ in low]
    score = round(overall_score(sub))
    return QualityReport(
        status="scored",
        score=score,
        band=config.bands.band(score),
        components=components,
        issues=tuple(issues),
        width=decoded.width,
        height=decoded.height,
        format=decoded.format,
        bytes=data_size,
    )


@dataclass(frozen=True, slots=True)
class _Facts:
    """The raw measurements an issue sentence quotes."""

    edge_width: float | None
    sigma: float
    tones: ToneStats
    megapixels: float
    jpeg_quality: float | None
    webp_quality: float | None
    blockiness: float | None
    decoded: DecodedImage
    config: ScoringConfig
    exposure_side: str


def _describe(component: str, f: _Facts) -> tuple[str, str]:
    """Issue code and a sentence a person understands, for a component that scored low."""
    t = f.tones
    if component == "sharpness":
        return "blurry", (f"blurry: edges are spread over ~{f.edge_width:.0f} px "
                          "(crisp photos: 2-3 px)")
    if component == "noise":
        return "noisy", (f"noisy: grain of about {f.sigma:.0f} grey levels "
                         "(clean photos: under 1)")
    if component == "exposure" and f.exposure_side == "underexposed":
        return "underexposed", (f"underexposed: average brightness {t.mean:.0%}, "
                                f"{t.shadows_clipped:.0%} of pixels crushed to black")
    if component == "exposure":
        return "overexposed", (f"overexposed: average brightness {t.mean:.0%}, "
                               f"{t.highlights_clipped:.0%} of pixels blown to white")
    if component == "contrast":
        return "low_contrast", (f"low contrast: most tones fit in {t.dynamic_range:.0%} of the "
                                f"range (RMS contrast {t.rms_contrast:.2f}; photos: 0.15-0.30)")
    if component == "resolution":
        return "low_resolution", (
            f"low resolution: {f.decoded.width}x{f.decoded.height} ({f.megapixels:.2f} MP) is far "
            f"below the {f.config.target_megapixels:g} MP target"
        )
    if component == "compression":
        if f.jpeg_quality is not None and curve(JPEG_QUALITY_CURVE, f.jpeg_quality) < ISSUE_BELOW:
            return "heavy_compression", (f"heavy compression: saved at JPEG quality "
                                         f"~{f.jpeg_quality:.0f} (web photos: 75-90)")
        if f.webp_quality is not None and curve(WEBP_QUALITY_CURVE, f.webp_quality) < ISSUE_BELOW:
            return "heavy_compression", (f"heavy compression: saved at WebP quality "
                                         f"~{f.webp_quality:.0f} (web photos: 60-90)")
        return "heavy_compression", (f"heavy compression: an 8x8 block grid is visible "
                                     f"(blockiness {f.blockiness:.2f}; clean: ~1.0)")
    bits = max(t.entropy_bits, 0.0)
    return "nearly_blank", (f"nearly blank: almost one flat tone ({bits:.1f} bits of tonal "
                            "detail; photos: 6-8)")
