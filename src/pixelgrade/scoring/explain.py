"""Sentences a person understands: what is wrong, what limits the total, how the total is made.

Each sentence is made from the same measurement its component scored, so it cannot contradict
it: an "underexposed" sentence is only written when the exposure factor that is low is the
underexposure one, and it quotes the brightest detail that made it low. Numbers are rounded to
what a reader can use ("64x64, under 0.01 MP", "0.3% of the pixels").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pixelgrade.scoring.config import ScoringConfig
from pixelgrade.scoring.measure import Measurements
from pixelgrade.scoring.report import Component
from pixelgrade.scoring.subscores import (
    SECONDARY_WEIGHT,
    contrast_factors,
    exposure_factors,
    group_scores,
    sharpness_width,
)

#: Sub-scores at or above this are "fine" and never named as a limit.
FINE_FROM = 85


def megapixels(width: int, height: int) -> str:
    """'12 MP', '2.1 MP', '0.24 MP', 'under 0.01 MP'."""
    mp = width * height / 1e6
    if mp < 0.01:
        return "under 0.01 MP"
    if mp >= 10:
        return f"{mp:.0f} MP"
    if mp >= 1:
        return f"{mp:.1f} MP"
    return f"{mp:.2f} MP"


def share(value: float) -> str:
    """A share of pixels: '12%', '0.3%', '0.04%'."""
    percent = 100 * value
    if percent >= 10:
        return f"{percent:.0f}%"
    if percent >= 1:
        return f"{percent:.1f}".rstrip("0").rstrip(".") + "%"
    if percent >= 0.1:
        return f"{percent:.1f}%"
    return f"{percent:.2f}%"


def _sharpness(m: Measurements) -> tuple[str, str]:
    width = sharpness_width(m) or 0.0
    if m.enlargement is not None:
        shown = m.enlargement.factor * m.working_scale
        return "blurry", (f"soft: enlarged about {shown:.1f}x even at 1024 px, so its detail is "
                          f"as coarse as edges ~{width:.1f} px wide (crisp photos: under 2)")
    where = "even where the picture is sharpest, " if m.focus.sharp_share < 0.5 else ""
    return "blurry", (f"blurry: nothing is in focus; {where}edges spread over ~{width:.1f} px "
                      "at 1024 px (crisp photos: under 2)")


def _exposure(m: Measurements) -> tuple[str, str]:
    t = m.tones
    factors = exposure_factors(t)
    if factors.side == "overexposed":
        if t.highlights_clipped < 0.01:
            return "overexposed", (f"overexposed: the middle tones are pushed up to "
                                   f"{t.unclipped_median:.0%} of white (pale, high-key photos: "
                                   "under 77%)")
        return "overexposed", (f"overexposed: {share(t.highlights_clipped)} of the picture is "
                               f"blown to pure white and the rest is bright too (middle tones "
                               f"at {t.unclipped_median:.0%})")
    if factors.crushed < factors.under:
        return "underexposed", (f"underexposed: {share(t.shadows_clipped)} of the picture is "
                                "crushed to pure black")
    return "underexposed", (f"underexposed: the brightest detail reaches only "
                            f"{t.brightest:.0%} of white and the middle tones {t.median:.0%}")


def _contrast(m: Measurements) -> tuple[str, str]:
    t = m.tones
    dark, tonal_range = contrast_factors(t)
    if tonal_range <= dark:
        levels = round(t.dynamic_range * 255)
        if levels <= 3:
            return "nearly_blank", (f"nearly blank: one flat tone (its tones span {levels} grey "
                                    f"level{'s' if levels != 1 else ''})")
        return "low_contrast", (f"flat: all the tones fit in {t.dynamic_range:.0%} of the range "
                                "from black to white")
    return "low_contrast", (f"washed out: even the darkest tones are {t.dark_level:.0%} grey, as "
                            "through haze or a veil (photos: under 25%)")


def _resolution(m: Measurements, config: ScoringConfig) -> tuple[str, str]:
    if m.enlargement is not None:
        w, h = m.detail_size
        how = "by pixel repetition" if m.enlargement.kind == "repeated" else "by interpolation"
        return "enlarged", (f"enlarged {how}: detail of about {w}x{h} in a {m.width}x{m.height} "
                            f"image ({megapixels(w, h)} of real detail)")
    return "low_resolution", (f"low resolution: {m.width}x{m.height}, "
                              f"{megapixels(m.width, m.height)} "
                              f"(target: {config.target_megapixels:g} MP)")


def _compression(m: Measurements) -> tuple[str, str]:
    if m.jpeg_quality is not None:
        return "heavy_compression", (f"heavy compression: saved at JPEG quality "
                                     f"~{m.jpeg_quality:.0f} (web photos: 75-90)")
    if m.webp_quality is not None:
        return "heavy_compression", (f"heavy compression: saved at WebP quality "
                                     f"~{m.webp_quality:.0f} (web photos: 60-90)")
    return "heavy_compression", (f"heavy compression: an 8x8 block grid is visible "
                                 f"(blockiness {m.blockiness or 0:.2f}; clean: ~1.0)")


def describe(component: str, m: Measurements, config: ScoringConfig) -> tuple[str, str]:
    """Issue code and sentence for a component that limits the score."""
    if component == "sharpness":
        return _sharpness(m)
    if component == "noise":
        return "noisy", (f"noisy: grain of about {m.noise:.0f} grey levels at 1024 px "
                         "(clean photos: under 1)")
    if component == "exposure":
        return _exposure(m)
    if component == "contrast":
        return _contrast(m)
    if component == "resolution":
        return _resolution(m, config)
    if component == "compression":
        return _compression(m)
    if component == "impulses":
        return "impulse_noise", (f"specks: {share(m.impulses)} of the pixels are isolated black "
                                 "or white dots (clean photos: under 0.15%)")
    if component == "banding":
        return "banding", ("banding: the tones fall into visible steps, as when a picture is "
                           f"posterised (histogram comb {m.comb:.2f}; photos: under 0.25)")
    raise ValueError(f"no sentence for component {component!r}")


def limiting(named: Sequence[str], components: Mapping[str, Component]) -> str | None:
    """'limited by exposure (39) and contrast (46)', or None when nothing limits the score."""
    parts = [f"{name} ({components[name].score})" for name in named
             if (components[name].score or 0) < FINE_FROM][:3]
    if not parts:
        return None
    if len(parts) == 1:
        return f"limited by {parts[0]}"
    return f"limited by {', '.join(parts[:-1])} and {parts[-1]}"


def formula(components: Mapping[str, Component], score: int) -> str:
    """How the total is made, with this image's numbers."""
    sub = {name: None if c.score is None else float(c.score) for name, c in components.items()}
    groups = sorted(group_scores(sub).items(), key=lambda item: item[1][1])
    if not groups:
        return "nothing could be judged: total 100"
    (group, (name, lowest)), others = groups[0], [g for g in groups[1:] if g[1][1] < 100]
    head = (f"each group counts its worst sub-score; the worst group ({group}: {name} "
            f"{lowest:.0f}) counts fully")
    if not others:
        return f"{head}, the others are perfect: {score}"
    power = "the square root" if SECONDARY_WEIGHT == 0.5 else f"the power {SECONDARY_WEIGHT:g}"
    terms = " x ".join(f"{value / 100:.2f}^{SECONDARY_WEIGHT:g}" for _, (_, value) in others)
    listed = ", ".join(f"{g}: {n} {v:.0f}" for g, (n, v) in others)
    return f"{head}, each other group by {power} ({listed}): {lowest:.0f} x {terms} = {score}"
