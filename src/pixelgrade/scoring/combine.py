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
from pixelgrade.scoring.explain import describe, evidence, formula, limiting
from pixelgrade.scoring.measure import measure
from pixelgrade.scoring.report import Component, Issue, QualityReport
from pixelgrade.scoring.subscores import (
    SECONDARY_WEIGHT,
    group_scores,
    overall_score,
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
    components = {}
    for name in COMPONENTS:
        value, unit = evidence(name, m)
        components[name] = Component(
            score=None if sub[name] is None else round(sub[name]),  # type: ignore[arg-type]
            value=None if value is None else round(float(value), 4),
            unit=unit,
            weight=exponent[name],
        )
    costs = {name: overall_score({**sub, name: 100.0}) - total
             for name, value in sub.items() if value is not None and value < 100}
    ranked = [name for name, _ in sorted(costs.items(), key=lambda item: -item[1])]
    # Named: every component that is a visible defect, and every one without which the picture
    # would be in a better band.
    named = [name for name in ranked
             if sub[name] < ISSUE_BELOW  # type: ignore[operator]
             or config.bands.band(round(total + costs[name])) != band]
    issues = tuple(Issue(*describe(name, sub[name], m, config))  # type: ignore[arg-type]
                   for name in named)
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

