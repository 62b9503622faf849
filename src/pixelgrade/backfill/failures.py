"""Failures grouped by kind, each with the first fix to try: what a dry run's verdict and a
run's end summary print, so that "52 of 52 rows failed" comes with the one flag that fixes it
instead of 52 lines to read.

A failure's message already ends with its advice (``"<url>: <what>; <advice>"``, see
:mod:`pixelgrade.sources.http`); for the kinds whose fix depends on the rows themselves (the
hosts the network guard refused, the folder local paths lead to) the fix names them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pixelgrade.backfill.images import RowResult

#: Hosts listed in one fix at most (a table of a thousand hosts gets a shorter line).
MAX_HOSTS_SHOWN = 5
#: The first fix for kinds whose messages name the problem but not the remedy.
FIXES = {
    "not_found": "the files are not there: fix or clear their paths in the table, or pass "
                 "--root with the folder that holds them",
    "permission": "pixelgrade may not read these files: fix their permissions",
    "not_a_file": "the paths name folders or devices, not image files: fix them in the table",
    "invalid_path": "fix the paths in the table",
    "decode": "the files are not images pixelgrade can read (or are damaged): replace them, "
              "or leave them failed",
    "too_large": "raise --max-bytes / --max-pixels if these images are wanted",
    "worker_crash": "an image crashed its scoring process: see the error log for which",
    "timeout": "the server is slow: retry later with --resume, or lower --concurrency",
}


@dataclass
class FailureGroup:
    """The rows that failed for one reason."""

    kind: str
    count: int = 0
    #: The first row's message (with its advice).
    example: str = ""
    transient: bool = False
    hosts: list[str] = field(default_factory=list)

    @property
    def fix(self) -> str:
        """The first thing to try, in words a person can act on."""
        if self.kind == "forbidden_address" and self.hosts:
            flags = " ".join(f"--allow-host {host}" for host in self.hosts[:MAX_HOSTS_SHOWN])
            more = " ..." if len(self.hosts) > MAX_HOSTS_SHOWN else ""
            return (f"pass {flags}{more} if these hosts are yours (or "
                    "--allow-private-network for every private address)")
        if self.kind == "outside_root":
            return "pass --root with the folder that holds the images"
        if self.kind in FIXES:
            return FIXES[self.kind]
        _, _, advice = self.example.rpartition("; ")
        if advice:
            return advice
        if self.transient:
            return "temporary: retry later with `pixelgrade backfill --resume`"
        return f"for example: {self.example}"

    @property
    def label(self) -> str:
        """``forbidden_address (127.0.0.1, 10.0.0.5)``: the kind and, when known, the hosts."""
        if not self.hosts:
            return self.kind
        shown = ", ".join(self.hosts[:MAX_HOSTS_SHOWN])
        return f"{self.kind} ({shown}{', ...' if len(self.hosts) > MAX_HOSTS_SHOWN else ''})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "count": self.count, "example": self.example,
                "transient": self.transient, "hosts": self.hosts, "fix": self.fix}


@dataclass
class FailureTally:
    """Failures of a run (or of a dry run's sample), by kind, in order of first appearance."""

    groups: dict[str, FailureGroup] = field(default_factory=dict)

    def add(self, results: Iterable[RowResult]) -> None:
        for result in results:
            failure = result.failure
            if failure is None:
                continue
            group = self.groups.get(failure.kind)
            if group is None:
                group = self.groups[failure.kind] = FailureGroup(
                    failure.kind, example=failure.message, transient=failure.transient)
            group.count += 1
            host = _host(result.location) if failure.kind == "forbidden_address" else None
            if host and host not in group.hosts:
                group.hosts.append(host)

    @property
    def total(self) -> int:
        return sum(group.count for group in self.groups.values())

    def ranked(self) -> list[FailureGroup]:
        """Largest group first."""
        return sorted(self.groups.values(), key=lambda group: -group.count)

    def lines(self) -> list[str]:
        """One line per kind: ``12 forbidden_address (127.0.0.1): pass --allow-host ...``."""
        return [f"{group.count} {group.label}: {group.fix}" for group in self.ranked()]

    def to_list(self) -> list[dict[str, Any]]:
        return [group.to_dict() for group in self.ranked()]


def _host(location: str | None) -> str | None:
    if not location:
        return None
    try:
        return urlsplit(location).hostname
    except ValueError:
        return None
