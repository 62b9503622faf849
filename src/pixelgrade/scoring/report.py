"""The result of scoring one image: what the CLI prints, the API returns and the store saves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["scored", "skipped", "failed"]

#: Bumped whenever a change to decoding, signals or weights can move a score; stored with each
#: score so `backfill --rescore-version` can find rows scored by an older scorer.
SCORER_VERSION = "2"
#: Every scorer version pixelgrade has shipped, oldest first (version 1: pixelgrade 0.1.0).
KNOWN_SCORER_VERSIONS = ("1", "2")


@dataclass(frozen=True, slots=True)
class Component:
    """One signal: its 0-100 sub-score, the raw measurement behind it, and that value's unit."""

    score: int | None
    value: float | None
    unit: str
    weight: float

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "value": self.value, "unit": self.unit,
                "weight": self.weight}


@dataclass(frozen=True, slots=True)
class Issue:
    """A problem a person would notice: a short code and a sentence with the numbers."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class QualityReport:
    """Score, band and the evidence for them; ``score`` is None unless ``status == "scored"``."""

    status: Status
    score: int | None = None
    band: str | None = None
    reason: str | None = None
    components: dict[str, Component] = field(default_factory=dict)
    issues: tuple[Issue, ...] = ()
    #: What limits the total ("limited by exposure (39) and contrast (46)"); None when nothing.
    summary: str | None = None
    #: How the total is made, with this image's numbers.
    formula: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    bytes: int | None = None
    scorer_version: str = SCORER_VERSION

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the documented keys (see ``pixelgrade score --json``)."""
        return {
            "score": self.score,
            "band": self.band,
            "status": self.status,
            "reason": self.reason,
            "components": {name: c.to_dict() for name, c in self.components.items()},
            "issues": [issue.to_dict() for issue in self.issues],
            "summary": self.summary,
            "formula": self.formula,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "bytes": self.bytes,
            "scorer_version": self.scorer_version,
        }
