"""What every store offers the backfill, the verifier and the gallery: one small interface.

A *store* is the user's images table in some database. The backfill engine only ever asks a
store for the next rows to do (keyset: ids greater than a cursor, in id order), and hands back
outcomes to write. Which rows are "to do" is a :class:`Selection`; a write is guarded by the
same selection, so a row that stopped needing work meanwhile (someone else scored it) is left
exactly as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pixelgrade.errors import StoreError

#: Plain SQL identifiers only: letters, digits, underscores, not starting with a digit. Names are
#: still quoted by the SQL layer; this check makes a typo fail with a clear message instead.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

Status = Literal["scored", "skipped", "failed"]


def check_identifier(name: str, what: str) -> str:
    """Return ``name`` if it is a plain SQL identifier, else raise :class:`StoreError`."""
    if not _IDENTIFIER.fullmatch(name):
        raise StoreError(
            f"{what} {name!r} is not a plain SQL identifier (letters, digits and underscores, "
            "not starting with a digit, at most 63 characters)"
        )
    return name


@dataclass(frozen=True)
class TableSpec:
    """Where the images and their scores live: the user's table and column names.

    ``table`` may be schema-qualified (``media.images``). Optional columns that the table
    does not have are simply not used (see :class:`Capabilities`).
    """

    table: str = "images"
    id_column: str = "id"
    url_column: str = "url"
    score_column: str = "quality_score"
    status_column: str = "quality_status"
    details_column: str = "quality_details"
    scored_at_column: str = "quality_scored_at"

    def __post_init__(self) -> None:
        parts = self.table.split(".")
        if len(parts) > 2:
            raise StoreError(f"table {self.table!r}: use 'table' or 'schema.table'")
        for part in parts:
            check_identifier(part, "table name")
        for what in ("id_column", "url_column", "score_column", "status_column",
                     "details_column", "scored_at_column"):
            check_identifier(getattr(self, what), what.replace("_", " "))

    @property
    def schema(self) -> str | None:
        return self.table.split(".")[0] if "." in self.table else None

    @property
    def name(self) -> str:
        return self.table.split(".")[-1]


@dataclass(frozen=True)
class Capabilities:
    """Which of pixelgrade's optional columns the table has."""

    status: bool
    details: bool
    scored_at: bool


@dataclass(frozen=True)
class Selection:
    """Which rows need work.

    By default: rows with no score that were never recorded as failed or skipped. With
    ``retry_failed``, rows recorded as failed are done again too. With ``rescore_version`` set
    (the current scorer version), rows scored by any other version are done again too.
    """

    retry_failed: bool = False
    rescore_version: str | None = None

    def describe(self) -> str:
        parts = ["rows without a score"]
        if self.retry_failed:
            parts.append("rows that failed before")
        if self.rescore_version:
            parts.append(f"rows scored by a scorer version other than {self.rescore_version}")
        return ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]


@dataclass(frozen=True)
class Row:
    """One image to score: its key and where its bytes are (a URL or a path, as stored)."""

    id: Any
    location: str | None


@dataclass(frozen=True)
class Outcome:
    """What to write for one row."""

    id: Any
    status: Status
    score: int | None
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class StoreStats:
    """The verification figures (the seed's query, plus bands, statuses and a histogram)."""

    total: int
    with_score: int
    average: float | None
    minimum: int | None
    maximum: int | None
    bands: dict[str, int]
    statuses: dict[str, int]
    #: Rows per score decile: index 0 holds 0-9, ..., index 9 holds 90-100.
    histogram: list[int] = field(default_factory=lambda: [0] * 10)

    @property
    def without_score(self) -> int:
        return self.total - self.with_score


class Store(Protocol):
    """The interface the engine, ``verify`` and the gallery use. See :mod:`pixelgrade.stores`."""

    spec: TableSpec
    capabilities: Capabilities

    def describe(self) -> str:
        """Where this store points, safe to print (no password, no key)."""
        ...

    def identity(self) -> str:
        """A stable fingerprint of database + table, for checkpoints (no secrets in it)."""
        ...

    def count_todo(self, selection: Selection, after: Any = None) -> int:
        """Rows needing work (with id > ``after`` when given)."""
        ...

    def fetch_todo(self, selection: Selection, after: Any, limit: int) -> list[Row]:
        """Up to ``limit`` rows needing work with id > ``after`` (None: from the start), by id."""
        ...

    def fetch_rows(self, selection: Selection, ids: Sequence[Any]) -> list[Row]:
        """Those of ``ids`` that still need work, by id."""
        ...

    def write(self, selection: Selection, outcomes: Sequence[Outcome]) -> int:
        """Write ``outcomes`` in one transaction, each only if its row still needs work under
        ``selection``. Returns how many rows were written."""
        ...

    def lock(self) -> AbstractContextManager[None]:
        """Hold the one-backfill-per-table lock; raises BackfillLockedError if taken."""
        ...

    def stats(self, high_from: int, medium_from: int) -> StoreStats: ...

    def key_from_json(self, value: Any) -> Any:
        """Turn a cursor read back from a checkpoint into a value the id column accepts."""
        ...

    def close(self) -> None: ...


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``items`` in consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
