"""From a decoded image to sub-scores and one 0-100 score: the only place signals are combined.

How the score is made
---------------------
1. Every signal of :mod:`pixelgrade.scoring.signals` is measured on the working-size luma (the
   enlargement search on the decoder's grid) into a :class:`Measurements`.
2. Each component turns its measurements into a 0-100 **sub-score** through the curves of
   :mod:`pixelgrade.scoring.curves` (see there for what each knee means).
3. The **total** is led by the worst component and lowered a little by each other one::

       total = lowest * product over the others of (sub_score / 100) ** SECONDARY_WEIGHT

   One serious defect decides, as it does for a person (a blurred picture is bad however well
   exposed), which an average would hide; a second defect makes it worse, but less, because
   defects come in correlated pairs (a dark picture is also low in contrast; a blurred one
   also loses its noise) and counting both fully would sink every flawed picture to 0.

Where a picture's subject is, what its exposure is meant to be and whether its detail is real
are judged by the signals themselves (focus where the picture is sharpest, brightest detail
rather than mean brightness, enlargement traces); see each signal's docstring.
"""

from __future__ import annotations

from pixelgrade.scoring.config import ScoringConfig
from pixelgrade.scoring.decode import DecodedImage
from pixelgrade.scoring.explain import FINE_FROM, describe, formula, limiting
from pixelgrade.scoring.measure import Measurements, measure
from pixelgrade.scoring.report import Component, Issue, QualityReport
from pixelgrade.scoring.subscores import (
    SECONDARY_WEIGHT,
    exposure_factors,
    group_scores,
    overall_score,
    sharpness_width,
    sub_scores,
)

#: Components in the order reports list them.
COMPONENTS = ("sharpness", "noise", "exposure", "contrast", "resolution", "compression",
              "impulses", "banding")
#: A component scoring under this is an issue even when it does not change the band.
ISSUE_BELOW = 70


def weights(sub: dict[str, float | None]) -> dict[str, float]:
    """The exponent each component got in this image's total: 1 for the worst component of the
    worst group, SECONDARY_WEIGHT for the worst of each other group, 0 for the rest."""
    groups = group_scores(sub)
    ordered = sorted(groups.values(), key=lambda item: item[1])
    out = dict.fromkeys(sub, 0.0)
    for rank, (name, _) in enumerate(ordered):
        out[name] = 1.0 if rank == 0 else SECONDARY_WEIGHT
    return out


_UNITS = {
    "sharpness": "px edge width where sharpest (at 1024 px)",
    "noise": "noise sigma (grey levels)",
    "exposure": "brightest detail (0-1)",
    "contrast": "darkest tones (0-1)",
    "resolution": "megapixels of real detail",
    "impulses": "share of isolated specks",
    "banding": "histogram comb (0-2)",
}


def _values(m: Measurements) -> dict[str, float | None]:
    t = m.tones
    exposure = exposure_factors(t)
    compression: float | None = m.jpeg_quality if m.jpeg_quality is not None else (
        m.webp_quality if m.webp_quality is not None else m.blockiness)
    return {
        "sharpness": sharpness_width(m),
        "noise": m.noise,
        "exposure": t.highlights_clipped if exposure.side == "overexposed" else t.brightest,
        "contrast": t.dark_level,
        "resolution": m.effective_megapixels,
        "compression": compression,
        "impulses": m.impulses,
        "banding": m.comb,
    }


def _unit(name: str, m: Measurements) -> str:
    if name == "compression":
        if m.jpeg_quality is not None:
            return "JPEG quality (1-100)"
        if m.webp_quality is not None:
            return "WebP quality (0-100)"
        return "blockiness ratio"
    if name == "exposure" and exposure_factors(m.tones).side == "overexposed":
        return "share blown to white"
    return _UNITS[name]


def assess(decoded: DecodedImage, data_size: int, config: ScoringConfig) -> QualityReport:
    """Measure every signal of ``decoded`` and combine them into a :class:`QualityReport`."""
    m = measure(decoded)
    # Rounded first, so that the total can be recomputed from the sub-scores a report shows.
    sub = {name: None if v is None else float(round(v))
           for name, v in sub_scores(m, config).items()}
    total = overall_score(sub)
    score = round(total)
    band = config.bands.band(score)
    exponent = weights(sub)
    values = _values(m)
    components = {
        name: Component(
            score=None if sub[name] is None else round(sub[name]),  # type: ignore[arg-type]
            value=None if values[name] is None else round(float(values[name]), 4),  # type: ignore[arg-type]
            unit=_unit(name, m),
            weight=exponent[name],
        )
        for name in COMPONENTS
    }
    costs = {name: overall_score({**sub, name: 100.0}) - total
             for name, value in sub.items() if value is not None and value < 100}
    ranked = [name for name, _ in sorted(costs.items(), key=lambda item: -item[1])]
    named = [name for name in ranked
             if sub[name] < ISSUE_BELOW  # type: ignore[operator]
             or (sub[name] < FINE_FROM  # type: ignore[operator]
                 and config.bands.band(round(total + costs[name])) != band)]
    issues = tuple(Issue(*describe(name, m, config)) for name in named)
    return QualityReport(
        status="scored",
        score=score,
        band=band,
        components=components,
        issues=issues,
        summary=limiting(ranked, components),
        formula=formula(components, score),
        width=decoded.width,
        height=decoded.height,
        format=decoded.format,
        bytes=data_size,
    )

