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
    BLANK_LEVELS,
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


def _word(score: float, severe: str, visible: str, slight: str) -> str:
    """The word for a defect of this sub-score: under 40 severe, under 70 visible, else slight."""
    return severe if score < 40 else visible if score < 70 else slight


def _sharpness(m: Measurements, score: float) -> tuple[str, str]:
    width = sharpness_width(m) or 0.0
    if m.enlargement is not None:
        shown = m.enlargement.factor * m.working_scale
        if m.enlargement.kind == "repeated":
            return "pixelated", (f"pixelated: each pixel of the original is a block of about "
                                 f"{shown:.1f} x {shown:.1f} pixels even at 1024 px")
        w, h = m.detail_size
        word = _word(score, "blurry", "soft", "slightly soft")
        return "blurry", (f"{word}: enlarged from detail of about {w}x{h}, so even at 1024 px "
                          f"it is as soft as edges ~{width:.1f} px wide (crisp photos: under 2)")
    if score < 40:
        return "blurry", (f"blurry: nothing is in focus; even where the picture is sharpest, "
                          f"edges spread over ~{width:.1f} px at 1024 px (crisp photos: under 2)")
    word = _word(score, "blurry", "soft", "slightly soft")
    return "blurry", (f"{word}: even where the picture is sharpest, edges spread over "
                      f"~{width:.1f} px at 1024 px (crisp photos: under 2)")


def _noise(m: Measurements, score: float) -> tuple[str, str]:
    word = _word(score, "very noisy", "noisy", "slightly grainy")
    return "noisy", (f"{word}: grain of about {m.noise:.0f} grey levels at 1024 px "
                     "(clean photos: under 1)")


def _exposure(m: Measurements, score: float) -> tuple[str, str]:
    t = m.tones
    factors = exposure_factors(t)
    if factors.side == "overexposed":
        word = _word(score, "badly overexposed", "overexposed", "a little bright")
        if t.highlights_clipped < 0.01:
            return "overexposed", (f"{word}: the middle tones are pushed up to "
                                   f"{t.unclipped_median:.0%} of white (pale, high-key photos: "
                                   "under 77%)")
        return "overexposed", (f"{word}: {share(t.highlights_clipped)} of the picture is blown "
                               "to pure white and the rest is bright too (middle tones at "
                               f"{t.unclipped_median:.0%})")
    word = _word(score, "badly underexposed", "underexposed", "a little dark")
    if factors.crushed < factors.under:
        return "underexposed", (f"{word}: {share(t.shadows_clipped)} of the picture is crushed to "
                                "pure black")
    return "underexposed", (f"{word}: the brightest detail reaches only {t.brightest:.0%} of "
                            f"white and the middle tones {t.median:.0%}")


def _contrast(m: Measurements, score: float) -> tuple[str, str]:
    t = m.tones
    dark, tonal_range = contrast_factors(t)
    if tonal_range <= dark:
        levels = round(t.dynamic_range * 255)
        if levels <= BLANK_LEVELS:
            return "nearly_blank", (f"nearly blank: one flat tone (its tones span {levels} grey "
                                    f"level{'s' if levels != 1 else ''})")
        word = _word(score, "very flat", "flat", "a little flat")
        return "low_contrast", (f"{word}: all the tones fit in {t.dynamic_range:.0%} of the "
                                "range from black to white")
    word = _word(score, "washed out", "washed out", "a little hazy")
    return "low_contrast", (f"{word}: even the darkest tones are {t.dark_level:.0%} grey, as "
                            "through haze or a veil (photos: under 25%)")


def _resolution(m: Measurements, score: float, config: ScoringConfig) -> tuple[str, str]:
    if m.enlargement is not None:
        w, h = m.detail_size
        how = "pixel repetition" if m.enlargement.kind == "repeated" else "interpolation"
        return "enlarged", (f"enlarged: detail of about {w}x{h} in a {m.width}x{m.height} image, "
                            f"by {how} ({megapixels(w, h)} of real detail)")
    word = _word(score, "very low resolution", "low resolution", "small")
    return "low_resolution", (f"{word}: {m.width}x{m.height}, {megapixels(m.width, m.height)} "
                              f"(full marks from {config.target_megapixels:g} MP)")


def _compression(m: Measurements, score: float) -> tuple[str, str]:
    word = _word(score, "heavy compression", "visible compression", "mild compression")
    if m.jpeg_quality is not None:
        return "heavy_compression", (f"{word}: saved at JPEG quality ~{m.jpeg_quality:.0f} "
                                     "(web photos: 70-90)")
    if m.webp_quality is not None:
        return "heavy_compression", (f"{word}: saved at WebP quality ~{m.webp_quality:.0f} "
                                     "(web photos: 40-90)")
    return "heavy_compression", (f"{word}: an 8x8 block grid is visible (blockiness "
                                 f"{m.blockiness or 0:.2f}; clean: about 1.0)")


#: Issue code -> the component whose sub-score it explains.
ISSUE_COMPONENT = {
    "blurry": "sharpness", "pixelated": "sharpness", "noisy": "noise",
    "underexposed": "exposure", "overexposed": "exposure", "low_contrast": "contrast",
    "nearly_blank": "contrast", "low_resolution": "resolution", "enlarged": "resolution",
    "heavy_compression": "compression", "impulse_noise": "impulses", "banding": "banding",
}


def evidence(component: str, m: Measurements) -> tuple[float | None, str]:
    """The measurement a component reports, and its unit: the one its sentence quotes (for
    exposure and contrast, that of the factor that decided)."""
    t = m.tones
    if component == "sharpness":
        return sharpness_width(m), "px edge width where sharpest (at 1024 px)"
    if component == "noise":
        return m.noise, "noise sigma (grey levels)"
    if component == "exposure":
        factors = exposure_factors(t)
        if factors.side == "overexposed":
            if t.highlights_clipped < 0.01:
                return t.unclipped_median, "middle tones (0-1)"
            return t.highlights_clipped, "share blown to white"
        if factors.crushed < factors.under:
            return t.shadows_clipped, "share crushed to black"
        return t.brightest, "brightest detail (0-1)"
    if component == "contrast":
        dark, tonal_range = contrast_factors(t)
        if tonal_range <= dark:
            return t.dynamic_range, "tonal range (0-1)"
        return t.dark_level, "darkest tones (0-1)"
    if component == "resolution":
        return m.effective_megapixels, "megapixels of real detail"
    if component == "compression":
        if m.jpeg_quality is not None:
            return m.jpeg_quality, "JPEG quality (1-100)"
        if m.webp_quality is not None:
            return m.webp_quality, "WebP quality (0-100)"
        return m.blockiness, "blockiness ratio"
    if component == "impulses":
        return m.impulses, "share of isolated specks"
    if component == "banding":
        return m.banding, "histogram comb where flat (0-2)"
    raise ValueError(f"no measurement for component {component!r}")


def describe(component: str, score: float, m: Measurements,
             config: ScoringConfig) -> tuple[str, str]:
    """Issue code and sentence for a component that limits the score (``score`` is its
    sub-score: it picks the words, the measurement gives the numbers)."""
    if component == "sharpness":
        return _sharpness(m, score)
    if component == "noise":
        return _noise(m, score)
    if component == "exposure":
        return _exposure(m, score)
    if component == "contrast":
        return _contrast(m, score)
    if component == "resolution":
        return _resolution(m, score, config)
    if component == "compression":
        return _compression(m, score)
    if component == "impulses":
        return "impulse_noise", (f"specks: {share(m.impulses)} of the pixels are isolated black "
                                 "or white dots (clean photos: under 0.15%)")
    if component == "banding":
        return "banding", (f"banding: the tones fall into flat steps, as when a picture is "
                           f"posterised ({share(m.flat)} of it is flat; histogram comb "
                           f"{m.banding:.2f}, photos: under 0.25)")
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
