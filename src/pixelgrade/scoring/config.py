"""Settings of the validator: limits, working size, resolution target and band thresholds.

One frozen dataclass, passed explicitly (no module-level mutable state), so two callers in the
same process can score with different settings.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Default cap on input size. Larger payloads are refused before any decoding.
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
#: Default cap on pixel count read from the header (decompression-bomb guard).
DEFAULT_MAX_PIXELS = 100_000_000
#: Long side, in pixels, that images are analysed at. Signals are calibrated at this size.
WORKING_LONG_SIDE = 1024
#: JPEG DCT scaling may stop short of WORKING_LONG_SIDE by this factor instead of decoding at
#: twice the size and resizing: a 4032 px photo is analysed at 1008 px after a 1/4 DCT decode.
WORKING_SIDE_SLACK = 0.75
#: Pixel count at which the resolution signal is full marks: 1 MP (1000 x 1000, the minimum
#: marketplaces such as Amazon ask for to enable zoom, and about the size a gallery shows).
DEFAULT_TARGET_MEGAPIXELS = 1.0


@dataclass(frozen=True, slots=True)
class Bands:
    """Score thresholds: ``high`` if score >= high_from, ``medium`` if >= medium_from, else low."""

    high_from: int = 70
    medium_from: int = 40

    def __post_init__(self) -> None:
        if not 0 < self.medium_from < self.high_from <= 100:
            raise ValueError(
                f"band thresholds must satisfy 0 < medium ({self.medium_from}) "
                f"< high ({self.high_from}) <= 100"
            )

    def band(self, score: int | None) -> str | None:
        """Name the band of ``score`` (``None`` for an unscored image)."""
        if score is None:
            return None
        if score >= self.high_from:
            return "high"
        if score >= self.medium_from:
            return "medium"
        return "low"


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    """Everything that changes how bytes become a report."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    target_megapixels: float = DEFAULT_TARGET_MEGAPIXELS
    bands: Bands = Bands()

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_pixels <= 0:
            raise ValueError("max_bytes and max_pixels must be positive")
        if self.target_megapixels <= 0:
            raise ValueError("target_megapixels must be positive")
