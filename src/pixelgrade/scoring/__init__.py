"""The image quality validator: bytes in, a :class:`QualityReport` with a 0-100 score out.

>>> from pixelgrade.scoring import score_bytes
>>> report = score_bytes(open("photo.jpg", "rb").read())      # doctest: +SKIP
>>> report.score, report.band, [i.code for i in report.issues]  # doctest: +SKIP
(84, 'high', [])

``score_bytes`` never raises for bad input: unreadable bytes give ``status="failed"`` and vector
images ``status="skipped"``, each with a ``reason`` that names the cause.
"""

from __future__ import annotations

from pixelgrade.errors import ImageError
from pixelgrade.scoring.combine import assess
from pixelgrade.scoring.config import Bands, ScoringConfig
from pixelgrade.scoring.decode import DecodedImage, decode
from pixelgrade.scoring.report import SCORER_VERSION, Component, Issue, QualityReport

__all__ = [
    "SCORER_VERSION",
    "Bands",
    "Component",
    "DecodedImage",
    "Issue",
    "QualityReport",
    "ScoringConfig",
    "decode",
    "score_bytes",
]


def score_bytes(data: bytes, config: ScoringConfig | None = None) -> QualityReport:
    """Score one encoded image (any supported format). Deterministic: same bytes, same report."""
    config = config or ScoringConfig()
    try:
        decoded = decode(data, config)
    except ImageError as exc:
        return QualityReport(status=exc.status, reason=str(exc), bytes=len(data))  # type: ignore[arg-type]
    return assess(decoded, len(data), config)
