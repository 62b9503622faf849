"""Geometry of the stats page's charts, drawn as inline SVG by the templates (no JavaScript).

Functions here only compute rectangles and labels from counts; ``templates/_charts.html``
turns them into ``<svg>`` elements (escaped by Jinja like everything else).
"""

from __future__ import annotations

from dataclasses import dataclass

from pixelgrade.scoring import Bands


@dataclass(frozen=True)
class Bar:
    label: str
    count: int
    x: float
    y: float
    width: float
    height: float
    css_class: str


@dataclass(frozen=True)
class Chart:
    title: str
    width: int
    height: int
    bars: list[Bar]
    #: Baseline y (column charts) or label column width (bar charts).
    axis: float
    horizontal: bool


def histogram(counts: list[int], bands: Bands, *, width: int = 640, height: int = 260) -> Chart:
    """Columns for the ten score deciles (0-9 ... 90-100), coloured by the band of the
    decile's middle score."""
    top, bottom, left, right = 24, 36, 8, 8
    peak = max(counts, default=0) or 1
    slot = (width - left - right) / max(len(counts), 1)
    plot = height - top - bottom
    bars = []
    for i, count in enumerate(counts):
        low = 10 * i
        label = f"{low}-{low + 9 if i < 9 else 100}"
        h = plot * count / peak
        bars.append(Bar(label, count, left + i * slot + 3, top + plot - h, slot - 6, h,
                        f"band-{bands.band(low + 5)}"))
    return Chart("Score distribution", width, height, bars, top + plot, horizontal=False)


def bar_chart(title: str, counts: dict[str, int], classes: dict[str, str], *,
              width: int = 640, row: int = 30) -> Chart:
    """Horizontal bars, one per entry of ``counts``, longest for the largest count."""
    label_width, right = 110, 70
    peak = max(counts.values(), default=0) or 1
    span = width - label_width - right
    bars = [Bar(label, count, label_width, i * row + 4, span * count / peak, row - 8,
                classes.get(label, "neutral"))
            for i, (label, count) in enumerate(counts.items())]
    return Chart(title, width, max(row * len(bars), row), bars, label_width, horizontal=True)
