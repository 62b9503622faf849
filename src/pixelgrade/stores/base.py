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
from dataclasses import dataclass, field, replace
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
    #: The URL column's value each result was computed for (see :mod:`pixelgrade.stores.
    #: schema`): a row whose URL differs from it was re-opened by a URL change.
    source_column: str = "quality_source"
    #: When each row was added, for the gallery's "Newest" (``--created-column``). None: the
    #: column named :data:`DEFAULT_CREATED_COLUMN` when the table has one, else none.
    created_column: str | None = None

    def __post_init__(self) -> None:
        parts = self.table.split(".")
        if len(parts) > 2:
            raise StoreError(f"table {self.table!r}: use 'table' or 'schema.table'")
        for part in parts:
            check_identifier(part, "table name")
        for what in ("id_column", "url_column", "score_column", "status_column",
                     "details_column", "scored_at_column", "source_column"):
            check_identifier(getattr(self, what), what.replace("_", " "))
        if self.created_column is not None:
            check_identifier(self.created_column, "created column")
            taken = {self.id_column, self.url_column, self.score_column, self.status_column,
                     self.details_column, self.scored_at_column, self.source_column}
            if self.created_column.lower() in {name.lower() for name in taken}:
                raise StoreError(
                    f"created column {self.created_column!r} is one of the columns pixelgrade "
                    "reads or writes already: name the column that records when each row was "
                    "added (e.g. created_at)")

    @property
    def schema(self) -> str | None:
        return self.table.split(".")[0] if "." in self.table else None

    @property
    def name(self) -> str:
        return self.table.split(".")[-1]


#: The creation-time column used for "Newest" when ``--created-column`` is not given.
DEFAULT_CREATED_COLUMN = "created_at"


@dataclass(frozen=True)
class Capabilities:
    """Which of pixelgrade's optional columns the table has."""

    status: bool
    details: bool
    scored_at: bool


@dataclass(frozen=True)
class SortKeys:
    """What the gallery's "Newest" can sort by: the table's creation-time column, else its
    key (found when the store opens; the backfill does not use it)."""

    #: The column "Newest" sorts by (None: the table has none; "Newest" is then key order).
    created_column: str | None = None
    #: That column may hold NULL (False when the schema says NOT NULL: no row lacks a time).
    created_nullable: bool = True
    #: The key is an integer (so key order is the order rows were added in, usually); False
    #: for UUID and text keys, whose order says nothing about age.
    integer_key: bool = True


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
    """What to write for one row.

    ``source`` is the URL column's value the result was computed for, exactly as it was read
    (:attr:`Row.location`). When it is set, every write is also guarded by ``url = source``: a
    score computed for a picture the row no longer points at is never written (the row's URL
    changed while it was being scored; the URL-change trigger has made it to do again, see
    :func:`pixelgrade.stores.schema.reopen_statements`). None: written whatever the URL.
    """

    id: Any
    status: Status
    score: int | None
    details: dict[str, Any] | None = None
    source: str | None = None


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
    #: Rows per scorer version that wrote them (scored, skipped or failed; rows whose details
    #: name no version, such as scores written by the app, are not counted).
    versions: dict[str, int] = field(default_factory=dict)

    @property
    def without_score(self) -> int:
        return self.total - self.with_score


@dataclass(frozen=True)
class NotifyChannel:
    """Where a PostgreSQL database announces its new rows: ``LISTEN channel`` on a connection
    to ``dsn`` receives the id of each row inserted (the trigger ``pixelgrade migrate``
    installs, see :func:`pixelgrade.stores.schema.notify_statements`)."""

    #: libpq connection string, password included: never printed.
    dsn: str = field(repr=False)
    channel: str


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

    def fetch_reopened(self, selection: Selection, after: Any, limit: int) -> list[Row]:
        """Up to ``limit`` rows re-opened by a URL change (their URL differs from the source
        column's) that still need work, with id > ``after`` (None: from the start), by id.
        Read off a partial index holding only such rows, so a poll costs what there is to
        find, not the table's size. Empty when the table has no source column."""
        ...

    def notify_channel(self) -> NotifyChannel | None:
        """Where new rows are announced, or None when the database does not push them (SQLite,
        the REST API, PostgreSQL without pixelgrade's trigger): ``watch`` then polls."""
        ...

    def write(self, selection: Selection, outcomes: Sequence[Outcome]) -> int:
        """Write ``outcomes`` in one transaction, each only if its row still needs work under
        ``selection`` and (when the outcome has a ``source``) still points at that source.
        Returns how many rows were written."""
        ...

    def lock(self, job: str = "backfill") -> AbstractContextManager[None]:
        """Hold the one-``job``-per-table lock (a backfill and a watch may run side by side:
        their writes are guarded); raises BackfillLockedError if taken."""
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


# -- the gallery's reads and writes ---------------------------------------------------------
#
# The gallery (``pixelgrade serve``) lists images by band and sort with keyset pagination. The
# plan of a page, which rows in which order, is worked out here once (:func:`page_segments`);
# each store only runs the plain range scans it is given, so SQLite, PostgreSQL and Supabase
# cannot disagree about what "High" or "low first" means.

Band = Literal["all", "high", "medium", "low", "unscored"]
Sort = Literal["score_desc", "score_asc", "newest"]
BANDS: tuple[Band, ...] = ("all", "high", "medium", "low", "unscored")
SORTS: tuple[Sort, ...] = ("score_desc", "score_asc", "newest")


@dataclass(frozen=True)
class ImageQuery:
    """One page of the gallery: which band, in which order, after which row.

    ``after`` is the position of the last row of the previous page (None: the first page):
    (score, id) for the score orders, (creation time, id) for ``newest`` on a table with a
    creation-time column (see :attr:`SortKeys.created_column`), (None, id) for ``newest``
    on one without. Orders are total, so pages never repeat or skip a row:

    * ``score_desc``: score high to low, ties by id high to low; unscored rows last, by id
      high to low;
    * ``score_asc``: score low to high, ties by id low to high; unscored rows last, by id
      low to high;
    * ``newest`` with a creation-time column: creation time, latest first, ties by id high to
      low; rows without a creation time last, by id high to low (scored or not);
    * ``newest`` without one: id high to low (scored or not).

    ``backward``: the rows *before* ``after`` in that order, nearest first (None: from the
    end); the image page's "previous" link.

    ``high_from``/``medium_from`` are the band thresholds (:class:`pixelgrade.scoring.Bands`).
    """

    band: Band = "all"
    sort: Sort = "score_desc"
    after: tuple[Any, Any] | None = None
    limit: int = 48
    backward: bool = False
    high_from: int = 70
    medium_from: int = 40


#: What a segment is ordered by: (score, id), (creation time, id), or the id alone.
Order = Literal["score", "created", "id"]


@dataclass(frozen=True)
class Segment:
    """One index range scan of a page plan.

    ``scored``: True for rows with a score, False for rows without, None for both.
    ``low``/``high``: score >= low and score < high (None: unbounded). ``order``: by (score,
    id), by (creation time, id) or by id alone; ``descending`` for both keys. ``after``:
    continue past this (value, id) (only the id counts when ordered by id); None from the
    start. ``created``: True for rows with a creation time, False for rows without, None for
    both.
    """

    scored: bool | None
    low: int | None
    high: int | None
    order: Order
    descending: bool
    after: tuple[Any, Any] | None
    created: bool | None = None


def band_range(band: Band, high_from: int, medium_from: int
               ) -> tuple[bool | None, int | None, int | None]:
    """(scored, low, high) of ``band``: the rows it holds, as :class:`Segment` bounds."""
    if band == "high":
        return True, high_from, None
    if band == "medium":
        return True, medium_from, high_from
    if band == "low":
        return True, None, medium_from
    if band == "unscored":
        return False, None, None
    return None, None, None


def page_segments(query: ImageQuery, by_created: bool = False, undated: bool = True
                  ) -> list[Segment]:
    """The scans that make up ``query``'s page, in order: a store runs them one after the other
    until it has ``limit + 1`` rows (the extra row says whether there is a next page).
    ``by_created``: the table has a creation-time column, which ``newest`` sorts by;
    ``undated``: that column may be NULL (rows without a time come after the others)."""
    if query.backward:
        return _backward_segments(query, by_created, undated)
    scored, low, high = band_range(query.band, query.high_from, query.medium_from)
    after = query.after
    if query.sort == "newest":
        if not by_created:
            return [Segment(scored, low, high, "id", True, after)]
        without_time = Segment(scored, low, high, "id", True, None, created=False)
        if after is not None and after[0] is None:  # the previous page ended among those
            return [replace(without_time, after=after)] if undated else []
        dated = Segment(scored, low, high, "created", True, after, created=True)
        return [dated, without_time] if undated else [replace(dated, created=None)]
    descending = query.sort == "score_desc"
    unscored_part = Segment(False, None, None, "id", descending, None)
    if scored is False:
        return [replace(unscored_part, after=after)]
    if after is not None and after[0] is None:  # the previous page ended among unscored rows
        return [replace(unscored_part, after=after)] if scored is None else []
    scored_part = Segment(True, low, high, "score", descending, after)
    return [scored_part, unscored_part] if scored is None else [scored_part]


def _backward_segments(query: ImageQuery, by_created: bool, undated: bool) -> list[Segment]:
    """The forward plan read from ``after`` towards its start: the same scans, each in the
    other direction, the last one first (rows that come last going forward, unscored or
    undated, come first going back)."""
    scored, low, high = band_range(query.band, query.high_from, query.medium_from)
    after = query.after
    if query.sort == "newest":
        if not by_created:
            return [Segment(scored, low, high, "id", False, after)]
        dated = Segment(scored, low, high, "created", False, None,
                        created=True if undated else None)
        if not undated:
            return [replace(dated, after=after)]
        without_time = Segment(scored, low, high, "id", False, None, created=False)
        if after is not None and after[0] is not None:  # among dated rows: only dated ones
            return [replace(dated, after=after)]  # come before it
        return [replace(without_time, after=after), dated]
    descending = query.sort == "score_asc"  # the reverse of the forward direction
    unscored_part = Segment(False, None, None, "id", descending, None)
    scored_part = Segment(True, low, high, "score", descending, None)
    if scored is False:
        return [replace(unscored_part, after=after)]
    if after is not None and after[0] is not None:  # among scored rows: only scored ones
        return [replace(scored_part, after=after)]  # come before it
    parts = [] if scored is True else [replace(unscored_part, after=after)]
    return [*parts, scored_part]


@dataclass(frozen=True)
class ImageRecord:
    """One row as the gallery reads it."""

    id: Any
    location: str | None
    score: int | None
    status: str | None = None
    details: dict[str, Any] | None = None
    scored_at: Any = None
    #: The creation-time column's value (None when the table has none, or the row no value).
    created: Any = None

    @property
    def state(self) -> str:
        """``scored``, ``skipped``, ``failed`` or ``pending`` (no score and no recorded reason:
        the same rule as the backfill's, so "pending" is what a backfill would pick up)."""
        if self.score is not None:
            return "scored"
        if self.status in ("skipped", "failed"):
            return self.status
        return "pending"


@dataclass(frozen=True)
class ImagePage:
    """Rows of one page and where the next one starts (None: this was the last)."""

    items: list[ImageRecord]
    next_after: tuple[Any, Any] | None


def position(record: ImageRecord, sort: Sort, by_created: bool = False) -> tuple[Any, Any]:
    """Where ``record`` stands in ``sort`` order: the ``after`` of the page that follows it."""
    if sort == "newest":
        return (record.created if by_created else None, record.id)
    return (record.score, record.id)


def cut_page(rows: list[ImageRecord], query: ImageQuery, by_created: bool = False
             ) -> ImagePage:
    """The page from up to ``query.limit + 1`` rows read in order."""
    limit = query.limit
    if len(rows) <= limit:
        return ImagePage(rows, None)
    return ImagePage(rows[:limit], position(rows[limit - 1], query.sort, by_created))


class GalleryStore(Store, Protocol):
    """What ``pixelgrade serve`` needs beyond the backfill's interface."""

    sort_keys: SortKeys

    def list_images(self, query: ImageQuery) -> ImagePage:
        """One page (see :class:`ImageQuery` for the orders)."""
        ...

    def band_counts(self, high_from: int, medium_from: int) -> dict[str, int]:
        """Rows per band: ``all``, ``high``, ``medium``, ``low``, ``unscored``."""
        ...

    def get_image(self, key: Any) -> ImageRecord | None: ...

    def insert_image(self, location: str) -> Any:
        """Add a row for a new image (no score yet); returns its id."""
        ...

    def set_result(self, outcome: Outcome) -> bool:
        """Write ``outcome`` whatever the row holds (a re-score overwrites on purpose, unlike
        the backfill's guarded :meth:`Store.write`), as long as the row still points at
        ``outcome.source`` (when set). Returns whether the row was written."""
        ...
