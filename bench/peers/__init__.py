"""Throughput peers measured beside pixelgrade by ``bench/backfill.py``, on the same files.

Each peer reads the benchmark's test files from disk in its own process(es), one process per
core, and returns a :class:`PeerRun`: how many images it analysed in how many seconds, or why
it could not run. The peers:

* ``sharp_stats``: the original stack's analysis, Node.js + sharp ``metadata()`` and
  ``stats()`` per image (``sharp-stats.mjs``, sharp pinned in ``package.json``);
* ``cleanvision_checks``: cleanvision's ``Imagelab.find_issues()`` with its default checks,
  and with its per-image property checks alone (its duplicate checks need the whole set);
* ``pixelgrade_scoring``: pixelgrade's full ``score_bytes`` on the same files, the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class PeerRun:
    """One peer's measured run (``missing`` says why it did not run; then the rest is 0)."""

    tool: str
    computes: str
    images: int = 0
    seconds: float = 0.0
    processes: int = 0
    missing: str | None = None
    #: CPU seconds the tool's own processes used while analysing (0 when not measured).
    cpu_seconds: float = 0.0
    #: Share of the machine's CPU that processes outside the run used while it ran.
    others: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0

    def per_core(self, cores: int) -> float:
        """Images/s per core busy: the run used ``min(processes, cores)`` cores."""
        return self.rate / max(1, min(self.processes, cores))

    def per_cpu_second(self) -> float:
        """Images per CPU second of the tool's own processes: what one core would do if it
        were the tool's alone, whatever else ran on the machine meanwhile."""
        return self.images / self.cpu_seconds if self.cpu_seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def peer_names(names: list[str], passes: int) -> list[str]:
    """Every test file ``passes`` times, in the benchmark's mixed order."""
    return [name for _ in range(passes) for name in names]


def report(runs: list[PeerRun], cores: int, ours: str = "pixelgrade") -> tuple[list[str],
                                                                            list[str]]:
    """(Markdown table, verdict lines): every peer's images/s and images/s per core beside
    pixelgrade's (the run whose tool starts with ``ours``)."""
    mine = next(r for r in runs if r.tool.startswith(ours))
    table = [
        "| tool | computes per image | images | seconds | images/s | processes | "
        "images/s per core | images per CPU second | pixelgrade is (per core; per CPU second) "
        "| CPU used by other processes |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    verdict = []
    for r in runs:
        if r.missing:
            table.append(f"| {r.tool} | {r.computes} | - | - | - | - | - | - | not run: "
                         f"{r.missing} | - |")
            verdict.append(f"- not checked: pixelgrade vs {r.tool} ({r.missing})")
            continue
        ratio = mine.per_core(cores) / r.per_core(cores) if r.rate else 0.0
        cpu_ratio = (f"{mine.per_cpu_second() / r.per_cpu_second():,.1f}x"
                     if r.per_cpu_second() and mine.per_cpu_second() else "-")
        table.append(f"| {r.tool} | {r.computes} | {r.images:,} | {r.seconds:.1f} | "
                     f"{r.rate:,.1f} | {r.processes} | {r.per_core(cores):,.1f} | "
                     f"{f'{r.per_cpu_second():,.1f}' if r.cpu_seconds else '-'} | "
                     f"{'-' if r is mine else f'{ratio:,.1f}x; {cpu_ratio} as fast'} | "
                     f"{100 * r.others:.0f}% |")
        if r is not mine:
            verdict.append(f"- {'met' if ratio > 1 else 'MISSED'}: pixelgrade faster per core "
                           f"than {r.tool.split(' (libvips')[0]} ({mine.per_core(cores):,.1f} vs "
                           f"{r.per_core(cores):,.1f} images/s per core, {ratio:,.1f}x; per CPU "
                           f"second {cpu_ratio})")
    return table, verdict
