"""pixelgrade: a 0-100 quality score for every image in your app's images table."""

from pixelgrade.scoring import QualityReport, ScoringConfig, score_bytes

__version__ = "0.1.0"
__all__ = ["QualityReport", "ScoringConfig", "__version__", "score_bytes"]
