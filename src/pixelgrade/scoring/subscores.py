"""Measurements to 0-100 sub-scores, one per component, through the curves of
:mod:`pixelgrade.scoring.curves`. Exposure and contrast keep their factors, so the sentence that
explains a low sub-score names the factor that made it low.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pixelgrade.scoring import curves
from pixelgrade.scoring.config import ScoringConfig
from pixelgrade.scoring.measure import Measurements
from pixelgrade.scoring.signals import ToneStats

#: Exponent of every group's score but the lowest in the total (the lowest counts fully).
SECONDARY_WEIGHT = 0.5
#: Components that measure one kind of harm, so that a picture is not punished twice for one
#: cause: a dark design is dim, flat and few-toned at once (tone); an enlarged picture is soft
#: and short of pixels at once (detail). A group scores its worst component.
GROUPS: dict[str, tuple[str, ...]] = {
    "detail": ("sharpness", "resolution"),
    "grain": ("noise", "impulses"),
    "tone": ("exposure", "contrast", "banding"),
    "compression": ("compression",),
}

@dataclass(frozen=True, slots=True)
class Exposure:
    """The factors of the exposure sub-score (each 0-100), kept for the explanation."""

    under: float
    crushed: float
    over: float

    @property
    def score(self) -> float:
        return self.under * self.crushed * self.over / 1e4

    @property
    def side(self) -> str:
        return "overexposed" if self.over < min(self.under, self.crushed) else "underexposed"


def exposure_factors(t: ToneStats) -> Exposure:
    under = max(curves.curve(curves.BRIGHTEST, t.brightest),
                curves.curve(curves.MEDIAN_RELIEF, t.median))
    weight = curves.curve(curves.CLIP_WEIGHT, t.unclipped_median)
    # Two views of one defect (blown highlights, pushed mid-tones): the worse one counts.
    over = min(curves.curve(curves.HIGHLIGHT_CLIP, t.highlights_clipped * weight),
               curves.curve(curves.BRIGHT_MIDTONES, t.unclipped_median))
    return Exposure(under=under, crushed=curves.curve(curves.SHADOW_CLIP, t.shadows_clipped),
                    over=over)


def contrast_factors(t: ToneStats) -> tuple[float, float]:
    """(dark-level factor, tonal-range factor) of the contrast sub-score."""
    return (curves.curve(curves.DARK_LEVEL, t.dark_level),
            curves.curve(curves.TONAL_RANGE, t.dynamic_range))


def compression_score(m: Measurements) -> float | None:
    if m.jpeg_quality is not None:
        return curves.curve(curves.JPEG_QUALITY, m.jpeg_quality)
    if m.webp_quality is not None:
        return curves.curve(curves.WEBP_QUALITY, m.webp_quality)
    if m.blockiness is not None:
        return curves.curve(curves.BLOCKINESS, m.blockiness)
    return None


#: A picture whose tones span at most this many grey levels is nearly blank.
BLANK_LEVELS = 3
#: Focus width (px at working size) of a crisp photograph: an enlargement by k at the working
#: size makes its detail as coarse as edges k times this wide.
CRISP_WIDTH = 1.6


def sharpness_width(m: Measurements) -> float | None:
    """The focus width the sharpness is judged on: measured, or for an enlarged picture the
    width its enlargement implies at the working size, whichever is wider.

    Bicubic and Lanczos enlargement overshoot at edges, so an enlarged picture can measure
    nearly crisp edges while it carries none of the detail between them.
    """
    width = m.focus.width
    if m.enlargement is None:
        return width
    implied = CRISP_WIDTH * m.enlargement.factor * m.working_scale
    return implied if width is None else max(width, implied)


def sub_scores(m: Measurements, config: ScoringConfig) -> dict[str, float | None]:
    """The 0-100 sub-score of every component (None: nothing to judge)."""
    width = sharpness_width(m)
    # A nearly blank picture (its tones span a few levels) is judged by its contrast alone:
    # its brightness is not an exposure, nor its single tone a band.
    blank = m.tones.dynamic_range * 255 <= BLANK_LEVELS
    return {
        "sharpness": None if width is None else curves.curve(curves.SHARPNESS, width),
        "noise": curves.curve(curves.NOISE, m.noise),
        "exposure": None if blank else exposure_factors(m.tones).score,
        "contrast": min(contrast_factors(m.tones)),
        "resolution": curves.curve(curves.RESOLUTION, math.log2(
            max(m.effective_megapixels, 1e-9) / config.target_megapixels)),
        "compression": compression_score(m),
        "impulses": curves.curve(curves.IMPULSES, m.impulses),
        "banding": None if blank else curves.curve(curves.BANDING, m.banding),
    }


def group_scores(sub: dict[str, float | None]) -> dict[str, tuple[str, float]]:
    """group -> (its worst judged component, that component's sub-score)."""
    out = {}
    for group, names in GROUPS.items():
        judged = [(name, sub[name]) for name in names if sub.get(name) is not None]
        if judged:
            name, value = min(judged, key=lambda item: item[1])  # type: ignore[arg-type,return-value]
            out[group] = (name, max(0.0, float(value)))  # type: ignore[arg-type]
    return out


def overall_score(sub: dict[str, float | None]) -> float:
    """The lowest group score, times every other group's (as a fraction) to SECONDARY_WEIGHT."""
    values = sorted(value for _, value in group_scores(sub).values())
    if not values:
        return 100.0
    total = values[0]
    for value in values[1:]:
        total *= (value / 100.0) ** SECONDARY_WEIGHT
    return total
