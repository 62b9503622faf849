"""Calibration across pictures: does "High" mean a good picture whatever the picture shows?

Figures over the real-photo corpus (:mod:`corpus`), per split, for any scorer whose number is
higher-is-better on 0-100:

* **good photos in High**: library renditions of good photos scoring >= 70;
* **graphics not Low**: clean digital art, renders and screenshots scoring >= 40;
* **damaged not High**: damaged copies of good photos scoring < 70 (each family of
  :mod:`corpus.damage`, one level drawn per photo, visible on a 1024 px screen);
* **flawed not High**: photographs with authentic defects scoring < 70;
* **cross-picture AUC**: P(score(good photo A) > score(damaged copy of another photo B)) over
  every such pair, ties counting one half. This is what a filter needs: a damaged copy of a
  striking picture must still rank below a plain good one.

An image a scorer could not score counts as the lowest score (pixelgrade's "failed").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from corpus import FAMILIES, SPLITS, CorpusFile

HIGH_FROM = 70
MEDIUM_FROM = 40

Scores = Mapping[str, float]  # corpus file path -> score


def _value(scores: Scores, f: CorpusFile) -> float:
    value = scores[f.path]
    return -1.0 if value is None or math.isnan(value) else value


def select(files: Sequence[CorpusFile], split: str, cls: str | None = None,
           variant: str | None = None, damaged: bool = False) -> list[CorpusFile]:
    return [f for f in files if f.split == split and (cls is None or f.cls == cls)
            and (variant is None or f.variant == variant) and (not damaged or f.damaged)]


def cross_auc(good: Sequence[float], good_ids: Sequence[str], bad: Sequence[float],
              bad_ids: Sequence[str]) -> float:
    """P(good > bad) over pairs of different pictures, ties one half."""
    g = np.asarray(good)[:, None]
    b = np.asarray(bad)[None, :]
    other = np.asarray(good_ids)[:, None] != np.asarray(bad_ids)[None, :]
    wins = (g > b) + 0.5 * (g == b)
    return float(wins[other].mean())


def figures(scores: Scores, files: Sequence[CorpusFile], split: str,
            variant: str = "library") -> dict[str, float]:
    photos = select(files, split, "photo", variant)
    graphics = select(files, split, "graphic", variant)
    flawed = select(files, split, "flawed", variant)
    damaged = select(files, split, damaged=True)
    p = [_value(scores, f) for f in photos]
    d = [_value(scores, f) for f in damaged]
    return {
        "photos": len(photos),
        "graphics": len(graphics),
        "damaged": len(damaged),
        "flawed": len(flawed),
        "good_high": float(np.mean([v >= HIGH_FROM for v in p])),
        "graphics_not_low": float(np.mean([_value(scores, f) >= MEDIUM_FROM for f in graphics])),
        "damaged_not_high": float(np.mean([v < HIGH_FROM for v in d])),
        "flawed_not_high": float(np.mean([_value(scores, f) < HIGH_FROM for f in flawed])),
        "auc": cross_auc(p, [f.id for f in photos], d, [f.id for f in damaged]),
    }


def by_family(scores: Scores, files: Sequence[CorpusFile], split: str) -> dict[str, float]:
    """Share of damaged copies not in High, family by family."""
    out = {}
    for family in FAMILIES:
        copies = [f for f in select(files, split, damaged=True) if f.variant == family]
        out[family] = float(np.mean([_value(scores, f) < HIGH_FROM for f in copies]))
    return out


def by_content(scores: Scores, files: Sequence[CorpusFile], split: str) -> dict[str, str]:
    """Good photos in High, by what the picture shows ("3/4")."""
    out: dict[str, list[bool]] = {}
    for f in select(files, split, "photo", "library"):
        out.setdefault(f.content, []).append(_value(scores, f) >= HIGH_FROM)
    return {k: f"{sum(v)}/{len(v)}" for k, v in sorted(out.items())}


def summary_table(results: Mapping[str, Mapping[str, Mapping[str, float]]]) -> list[str]:
    """results[scorer][split] = figures(...): one row per figure, a column per scorer x split."""
    names = list(results)
    head = "| figure | " + " | ".join(f"{n} ({s[:3]}.)" for n in names for s in SPLITS) + " |"
    lines = [head, "| --- | " + " | ".join("---:" for _ in names for _ in SPLITS) + " |"]
    rows = [("good photos in High", "good_high", "pct"),
            ("clean graphics not Low", "graphics_not_low", "pct"),
            ("damaged copies not High", "damaged_not_high", "pct"),
            ("flawed photos not High", "flawed_not_high", "pct"),
            ("cross-picture AUC", "auc", "auc")]
    for label, key, kind in rows:
        cells = []
        for n in names:
            for s in SPLITS:
                value = results[n][s][key]
                cells.append(f"{value:.1%}" if kind == "pct" else f"{value:.3f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def family_table(per_family: Mapping[str, Mapping[str, Mapping[str, float]]], split: str
                 ) -> list[str]:
    names = list(per_family)
    lines = ["| damage | " + " | ".join(names) + " |",
             "| --- | " + " | ".join("---:" for _ in names) + " |"]
    for family in FAMILIES:
        lines.append(f"| {family} | " + " | ".join(
            f"{per_family[n][split][family]:.0%}" for n in names) + " |")
    return lines


def targets(mine: Mapping[str, float], peers: Sequence[Mapping[str, float]]) -> list[str]:
    checks = [
        ("good photos in High >= 90%", mine["good_high"] >= 0.90, f"{mine['good_high']:.1%}"),
        ("clean graphics not Low >= 90%", mine["graphics_not_low"] >= 0.90,
         f"{mine['graphics_not_low']:.1%}"),
        ("damaged copies not High >= 95%", mine["damaged_not_high"] >= 0.95,
         f"{mine['damaged_not_high']:.1%}"),
        ("cross-picture AUC >= 0.97", mine["auc"] >= 0.97, f"{mine['auc']:.3f}"),
    ]
    if peers:
        best = max(p["auc"] for p in peers)
        checks.append(("AUC ahead of every peer", mine["auc"] > best,
                       f"{mine['auc']:.3f} vs best peer {best:.3f}"))
    return [f"- {'met' if ok else 'MISSED'}: {label} ({value})" for label, ok, value in checks]


def misses(scores: Scores, files: Sequence[CorpusFile], split: str,
           issues: Mapping[str, str]) -> list[str]:
    """The pictures a scorer puts in the wrong band, worst first, with its main issue."""
    rows = []
    for f in select(files, split, variant="library"):
        v = _value(scores, f)
        if (f.cls == "photo" and v < HIGH_FROM) or (f.cls == "graphic" and v < MEDIUM_FROM) or (
                f.cls == "flawed" and v >= HIGH_FROM):
            text = f"{f.cls} {f.id} ({f.content}): {v:.0f}  {issues.get(f.path, '')}"
            rows.append((f.cls, v, text))
    damaged = [(f, _value(scores, f)) for f in select(files, split, damaged=True)]
    for f, v in sorted(damaged, key=lambda item: -item[1]):
        if v >= HIGH_FROM:
            rows.append(("damaged", -v, f"damaged {f.id} {f.variant} ({f.level}): {v:.0f}  "
                                        f"{issues.get(f.path, '')}"))
    return [f"- {text}" for _, _, text in sorted(rows, key=lambda r: (r[0], r[1]))]
