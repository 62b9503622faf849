"""``pixelgrade verify``: the seed's verification query, and the checks a person would make.

The seed's figures (total, with score, without score, average) plus counts per band and per
status, a decile histogram, and warnings when the numbers look wrong: a distribution stuck on
one value (every score 0, every score 100, or all the same), or more failures than a share of
the table (broken URLs, a storage outage, a scorer bug).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pixelgrade.scoring.report import SCORER_VERSION
from pixelgrade.stores.base import StoreStats

#: Warn when more than this share of the rows failed.
DEFAULT_MAX_FAILED_SHARE = 0.05


@dataclass
class Verification:
    stats: StoreStats
    warnings: list[str] = field(default_factory=list)
    max_failed_share: float = DEFAULT_MAX_FAILED_SHARE

    @property
    def complete(self) -> bool:
        """True when no row is still waiting for a score (failed/skipped rows are settled)."""
        return self.stats.statuses.get("pending", 0) == 0

    @property
    def failed_share(self) -> float:
        failed = self.stats.statuses.get("failed", 0)
        return failed / self.stats.total if self.stats.total else 0.0

    @property
    def too_many_failures(self) -> bool:
        return self.failed_share > self.max_failed_share

    def strict_failures(self) -> list[str]:
        """Why ``verify --strict`` fails (empty: it passes)."""
        reasons = []
        if not self.complete:
            reasons.append(f"{self.stats.statuses.get('pending', 0)} rows still wait for a "
                           "score")
        if self.too_many_failures:
            reasons.append(f"{100 * self.failed_share:.1f}% of rows failed, more than "
                           f"--max-failed-share {100 * self.max_failed_share:g}%")
        return reasons

    def to_dict(self) -> dict[str, Any]:
        stats = asdict(self.stats)
        return {
            "total_images": stats["total"],
            "images_with_scores": stats["with_score"],
            "images_without_scores": self.stats.without_score,
            "avg_quality_score": stats["average"],
            "min_quality_score": stats["minimum"],
            "max_quality_score": stats["maximum"],
            "bands": stats["bands"],
            "statuses": stats["statuses"],
            "histogram": {f"{10 * i}-{10 * i + 9 if i < 9 else 100}": n
                          for i, n in enumerate(stats["histogram"])},
            "scorer_versions": stats["versions"],
            "complete": self.complete,
            "failed_share": round(self.failed_share, 4),
            "warnings": self.warnings,
        }


def verify(stats: StoreStats, max_failed_share: float = DEFAULT_MAX_FAILED_SHARE
           ) -> Verification:
    """Judge ``stats``; the warnings say what looks wrong and what to do."""
    warnings: list[str] = []
    if stats.total == 0:
        warnings.append("the table is empty: nothing to verify")
        return Verification(stats, warnings, max_failed_share)
    if stats.with_score >= 2 and stats.minimum == stats.maximum:
        value = stats.minimum
        what = {0: "every score is 0", 100: "every score is 100"}.get(
            value, f"every score is {value}")
        warnings.append(f"{what}: a real library is never that uniform; check that the URL "
                        "column points at the images themselves (not at thumbnails or error "
                        "pages) and score a few by hand with `pixelgrade score URL`")
    failed = stats.statuses.get("failed", 0)
    if failed and failed / stats.total > max_failed_share:
        warnings.append(
            f"{failed} of {stats.total} rows ({100 * failed / stats.total:.1f}%) failed, more "
            f"than {100 * max_failed_share:.0f}%: read the error log, fix the cause, then run "
            "`pixelgrade backfill --retry-failed`")
    pending = stats.statuses.get("pending", 0)
    if pending:
        warnings.append(f"{pending} rows still have no score: run `pixelgrade backfill` "
                        "(or `--resume` to continue an interrupted run)")
    older = {v: n for v, n in stats.versions.items() if v != SCORER_VERSION}
    if older:
        listed = ", ".join(f"{n} by scorer version {v}" for v, n in sorted(older.items()))
        warnings.append(f"rows scored by another scorer version ({listed}; this pixelgrade "
                        f"scores with version {SCORER_VERSION}): `pixelgrade backfill "
                        "--rescore-version` scores them again")
    return Verification(stats, warnings, max_failed_share)
