"""Image signals: each a pure function of a decoded uint8 luma array (no I/O, no globals).

Each module documents what its number means, its range, when it stops being meaningful, and the
paper or rule it implements. Turning these raw numbers into 0-100 sub-scores and one overall score
happens in one place only: :mod:`pixelgrade.scoring.combine`.
"""

from pixelgrade.scoring.signals.banding import banding_index, flat_share, histogram_comb
from pixelgrade.scoring.signals.compression import blockiness, jpeg_quality
from pixelgrade.scoring.signals.enlargement import Enlargement, detect_enlargement
from pixelgrade.scoring.signals.exposure import ToneStats, tone_stats
from pixelgrade.scoring.signals.impulse import impulse_share
from pixelgrade.scoring.signals.noise import noise_sigma
from pixelgrade.scoring.signals.sharpness import Focus, focus

__all__ = [
    "Enlargement",
    "Focus",
    "ToneStats",
    "banding_index",
    "blockiness",
    "detect_enlargement",
    "flat_share",
    "focus",
    "histogram_comb",
    "impulse_share",
    "jpeg_quality",
    "noise_sigma",
    "tone_stats",
]
