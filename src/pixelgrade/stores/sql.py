"""SQLite and PostgreSQL stores, through SQLAlchemy Core 2 (psycopg 3 for PostgreSQL).

The user's table is inspected once (does it exist, which columns does it have, what type is the
key) and then addressed through a lightweight ``sqlalchemy.table`` construct, so every name is
quoted by SQLAlchemy and no value is ever pasted into SQL text.

Writes are one transaction per batch and guarded: a row is updated only if it still matches the
:class:`~pixelgrade.stores.base.Selection` it was picked by. On PostgreSQL the batch is one
``UPDATE ... FROM jsonb_to_recordset(:rows) ... RETURNING`` statement (the batch is one JSON
parameter, so the SQL text is the same for every batch: compiled once, prepared by the
server); on SQLite (in-process, no round trips) the same guarded UPDATE once per row, inside
the batch's transaction, so each row's count of updated rows is known. An outcome that names
its ``source`` (the URL it was computed for) is also guarded by ``url = source``, and every
write records the URL in the source column (when the table has one): a score is never
written onto a row that meanwhile points at another picture.

Re-opened rows (:meth:`SqlStore.fetch_reopened`, for ``watch``'s polls): rows whose URL
differs from their source column and that have no score, read off the partial index
:func:`~pixelgrade.stores.schema.source_index_statement` makes. The plans, measured on a
table of 1,000,000 rows, 10% of them unscored, two re-opened (``tests/stores/test_rescore.py``
checks them on 200,000): SQLite ``SEARCH images USING
INDEX ix_images_quality_source (id>?)``; PostgreSQL ``Index Scan using
ix_images_quality_source on images`` (``Index Cond: (id > $1)``, the rest of the to-do
condition as a filter; 0.03 ms). Either way a poll reads the index's entries, which are the
rows waiting after a URL change, never the table.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError
from sqlalchemy.ext.compiler import compiles

from pixelgrade.errors import BackfillLockedError, StoreError
from pixelgrade.stores.base import (
    DEFAULT_CREATED_COLUMN,
    Capabilities,
    ImagePage,
    ImageQuery,
    ImageRecord,
    NotifyChannel,
    Outcome,
    Row,
    Segment,
    Selection,
    SortKeys,
    StoreStats,
    TableSpec,
    chunks,
    cut_page,
    page_segments,
)
from pixelgrade.stores.pg_lock import AdvisoryLock
from pixelgrade.stores.schema import (
    NOTIFY_TRIGGER,
    create_table_statements,
    migration_statements,
    notify_channel,
    source_index_name,
)
from pixelgrade.stores.sql_errors import describe_failure, is_transient
from pixelgrade.stores.urls import without_password

#: Rows per ``UPDATE ... FROM jsonb_to_recordset(...)`` statement on PostgreSQL. The rows
#: travel as one JSON parameter, so PostgreSQL's 65,535-parameter limit does not apply; this
#: only bounds one statement's size (about 1 KB a row) when a caller writes a huge batch.
VALUES_ROWS_PER_STATEMENT = 5_000


def database_url(url: str) -> sa.URL:
    """Parse a database URL, mapping ``postgres://`` and ``postgresql://`` to psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise StoreError(
            "the database URL cannot be parsed; expected sqlite:///path/to/file.db or "
            "postgresql://user:password@host:5432/dbname"
        ) from exc
    if parsed.drivername in ("postgresql", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(
            f"unsupported database {parsed.get_backend_name()!r}: use sqlite:///file.db, "
            "postgresql://... or supabase"
        )
    return parsed


def safe_url(url: sa.URL) -> str:
    """The URL without its password, for messages."""
    return url.render_as_string(hide_password=True)


class SqlStore:
    """A table in SQLite or PostgreSQL. Open with :func:`pixelgrade.stores.open_store`."""

    def __init__(self, url: str | sa.URL, spec: TableSpec | None = None, *,
                 must_exist: bool = True, inspect: bool = True) -> None:
        self.url = url if isinstance(url, sa.URL) else database_url(url)
        #: The URL as the user typed it, password masked: what messages show.
        self.shown_url = (safe_url(self.url) if isinstance(url, sa.URL)
                          else without_password(url, "***"))
        self.spec = spec or TableSpec()
        self.dialect_name = self.url.get_backend_name()
        if self.dialect_name == "sqlite":
            path = self.url.database or ""
            if must_exist and path and path != ":memory:" and not os.path.exists(path):
                raise StoreError(
                    f"SQLite database {path} does not exist; create it with `pixelgrade init "
                    f"--db sqlite:///{path}` or point --db at your database"
                )
            self.engine = sa.create_engine(self.url, connect_args={"timeout": 30})
        else:
            self.engine = sa.create_engine(self.url, pool_pre_ping=True, pool_size=2,
                                           connect_args={"connect_timeout": 10})
        self.capabilities = Capabilities(status=False, details=False, scored_at=False)
        self.sort_keys = SortKeys()
        #: The table has the source column (``pixelgrade migrate`` adds it): results record
        #: the URL they were computed for, and re-opened rows can be found (fetch_reopened).
        self.source_tracked = False
        self._source_index: str | None = None
        self._locks: list[AdvisoryLock] = []
        self._id_type: sa.types.TypeEngine[Any] = sa.Integer()
        self._created_type: sa.types.TypeEngine[Any] = sa.types.NullType()
        self.table = self._table()
        if inspect:
            self.refresh()

    # -- inspection ----------------------------------------------------------------------

    def columns(self) -> dict[str, dict[str, Any]]:
        """The table's columns by lower-cased name; raises StoreError if the table is missing."""
        try:
            inspector = sa.inspect(self.engine)
            found = inspector.get_columns(self.spec.name, schema=self.spec.schema)
        except NoSuchTableError as exc:
            raise StoreError(
                f"table {self.spec.table!r} not found in {self.describe_database()}; pass "
                "--table NAME, or create a new one with `pixelgrade init`"
            ) from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot connect to {self.describe_database()}: "
                             f"{_first_line(exc)}") from exc
        return {column["name"].lower(): column for column in found}

    def refresh(self) -> None:
        """Re-read which columns exist (after ``migrate``)."""
        columns = self.columns()
        spec = self.spec
        missing = [(what, name) for what, name in (("id column", spec.id_column),
                                                   ("url column", spec.url_column),
                                                   ("score column", spec.score_column))
                   if name.lower() not in columns]
        if missing:
            what, name = missing[0]
            hint = ("; add it with `pixelgrade migrate`" if what == "score column"
                    else f"; pass --{what.split()[0]}-column NAME")
            raise StoreError(
                f"{what} {name!r} not found in table {spec.table!r} (its columns: "
                f"{', '.join(sorted(columns))}){hint}"
            )
        self._id_type = columns[spec.id_column.lower()]["type"]
        if self.dialect_name == "sqlite" and type(self._id_type) is sa.NUMERIC:
            # SQLite gives a type name it does not know (``id UUID``) NUMERIC affinity, and
            # SQLAlchemy would read such keys as Decimal (failing on UUID text): take the values
            # as SQLite stores them.
            self._id_type = sa.types.NullType()
        created = self._created_column(columns)
        if created is not None and self.dialect_name == "postgresql":
            self._created_type = columns[created.lower()]["type"]
        else:
            # SQLite: the values exactly as stored (a TIMESTAMP column holds text there, which
            # SQLAlchemy's DateTime would re-format on the way back in, and the pages' keyset
            # comparisons must see the stored text). String adds no processing either way.
            self._created_type = sa.String()
        self.capabilities = Capabilities(
            status=spec.status_column.lower() in columns,
            details=spec.details_column.lower() in columns,
            scored_at=spec.scored_at_column.lower() in columns,
        )
        self.source_tracked = spec.source_column.lower() in columns
        self._source_index = self._index_named(source_index_name(spec)) if (
            self.source_tracked and self.dialect_name == "sqlite") else None
        self.sort_keys = SortKeys(
            created_column=created, integer_key=_integer_type(self._id_type),
            created_nullable=created is None or bool(columns[created.lower()]["nullable"]))
        self.table = self._table()

    def _created_column(self, columns: dict[str, dict[str, Any]]) -> str | None:
        """The column "Newest" sorts by: ``spec.created_column`` (which must exist), else
        ``created_at`` when the table has it."""
        wanted = self.spec.created_column
        if wanted is None:
            found = columns.get(DEFAULT_CREATED_COLUMN)
            return None if found is None else str(found["name"])
        if wanted.lower() not in columns:
            raise StoreError(
                f"created column {wanted!r} not found in table {self.spec.table!r} (its "
                f"columns: {', '.join(sorted(columns))}); pass --created-column with the "
                "column that records when each row was added, or leave the option out to "
                "sort 'Newest' by key")
        return str(columns[wanted.lower()]["name"])

    def _index_named(self, name: str) -> str | None:
        """``name`` if the table has an index of that name (None otherwise)."""
        try:
            indexes = sa.inspect(self.engine).get_indexes(self.spec.name,
                                                          schema=self.spec.schema)
        except SQLAlchemyError as exc:
            raise self._failure(f"reading the indexes of {self.describe()}", exc) from exc
        return name if any(index.get("name") == name for index in indexes) else None

    def has_index_on(self, column: str) -> bool:
        """True when an index (or the primary key) of the table starts with ``column``: a
        gallery sorted by it then reads pages off the index instead of sorting the table."""
        try:
            inspector = sa.inspect(self.engine)
            indexes = inspector.get_indexes(self.spec.name, schema=self.spec.schema)
            key = inspector.get_pk_constraint(self.spec.name, schema=self.spec.schema)
        except SQLAlchemyError as exc:
            raise self._failure(f"reading the indexes of {self.describe()}", exc) from exc
        leading = [(index.get("column_names") or [None])[0] for index in indexes]
        leading.append((key.get("constrained_columns") or [None])[0])
        return column.lower() in {str(name).lower() for name in leading if name}

    def _table(self, indexed_by: str | None = None) -> sa.TableClause:
        """The table's construct; ``indexed_by``: one that SQLite reads through that index."""
        spec, caps = self.spec, self.capabilities
        details_type: sa.types.TypeEngine[Any] = (
            JSONB() if self.dialect_name == "postgresql" else sa.JSON())
        columns = [
            sa.column(spec.id_column, self._id_type),
            sa.column(spec.url_column, sa.String()),
            sa.column(spec.score_column, sa.Integer()),
        ]
        if caps.status:
            columns.append(sa.column(spec.status_column, sa.String()))
        if caps.details:
            columns.append(sa.column(spec.details_column, details_type))
        if caps.scored_at:
            columns.append(sa.column(spec.scored_at_column, sa.DateTime(timezone=True)))
        if self.source_tracked:
            columns.append(sa.column(spec.source_column, sa.String()))
        created = self.sort_keys.created_column
        if created is not None:
            columns.append(sa.column(created, self._created_type))
        if indexed_by is not None:
            return IndexedTable(spec.name, *columns, schema=spec.schema, index=indexed_by)
        return sa.table(spec.name, *columns, schema=spec.schema)

    # -- descriptions --------------------------------------------------------------------

    def describe_database(self) -> str:
        if self.dialect_name == "sqlite":
            return f"SQLite database {self.url.database}"
        return f"PostgreSQL database {self.shown_url}"

    def describe(self) -> str:
        return f"{self.describe_database()}, table {self.spec.table}"

    def identity(self) -> str:
        if self.dialect_name == "sqlite":
            where = os.path.realpath(self.url.database or ":memory:")
        else:
            where = f"{self.url.host or 'localhost'}:{self.url.port or 5432}/{self.url.database}"
        return f"{self.dialect_name}:{where}#{self.spec.table}.{self.spec.score_column}"

    # -- reading -------------------------------------------------------------------------

    def _c(self, name: str) -> sa.ColumnClause[Any]:
        return self.table.c[name]

    def todo_clause(self, selection: Selection, table: sa.TableClause | None = None
                    ) -> sa.ColumnElement[bool]:
        """SQL condition for "this row needs work", used to select and to guard writes
        (on the columns of ``table``, by default :attr:`table`)."""
        spec, caps = self.spec, self.capabilities
        columns = (self.table if table is None else table).c
        score = columns[spec.score_column]
        needs: sa.ColumnElement[bool] = score.is_(None)
        if caps.status:
            status = columns[spec.status_column]
            allowed = [status.is_(None), status == "scored"]  # "scored" with NULL: reset by hand
            if selection.retry_failed:
                allowed.append(status == "failed")
            needs = sa.and_(needs, sa.or_(*allowed))
        if selection.rescore_version is not None:
            if not caps.details:
                raise StoreError(
                    f"--rescore-version needs the {spec.details_column!r} column, where the "
                    "scorer version is kept; add it with `pixelgrade migrate`"
                )
            version = columns[spec.details_column]["scorer_version"].as_string()
            needs = sa.or_(needs, sa.and_(version.is_not(None),
                                          version != selection.rescore_version))
        return needs

    def count_todo(self, selection: Selection, after: Any = None) -> int:
        query = sa.select(sa.func.count()).select_from(self.table).where(
            self.todo_clause(selection))
        if after is not None:
            query = query.where(self._c(self.spec.id_column) > after)
        with self._connect() as conn:
            return int(conn.execute(query).scalar_one())

    def fetch_todo(self, selection: Selection, after: Any, limit: int) -> list[Row]:
        id_col = self._c(self.spec.id_column)
        query = (sa.select(id_col, self._c(self.spec.url_column))
                 .where(self.todo_clause(selection)).order_by(id_col).limit(limit))
        if after is not None:
            query = query.where(id_col > after)
        with self._connect() as conn:
            self._keep_locks()
            return [Row(row[0], row[1]) for row in conn.execute(query)]

    def fetch_rows(self, selection: Selection, ids: Sequence[Any]) -> list[Row]:
        id_col = self._c(self.spec.id_column)
        rows: list[Row] = []
        with self._connect() as conn:
            for part in chunks(list(ids), 1000):
                query = (sa.select(id_col, self._c(self.spec.url_column))
                         .where(self.todo_clause(selection), id_col.in_(part)).order_by(id_col))
                rows.extend(Row(row[0], row[1]) for row in conn.execute(query))
        return sorted(rows, key=lambda row: row.id)

    def fetch_reopened(self, selection: Selection, after: Any, limit: int) -> list[Row]:
        """Rows re-opened by a URL change and still to do, id > ``after``, by id (see the
        module docstring for the plan); empty without the source column."""
        if not self.source_tracked:
            return []
        query = self.reopened_query(selection, after, limit)
        with self._connect() as conn:
            self._keep_locks()
            return [Row(row[0], row[1]) for row in conn.execute(query)]

    def reopened_query(self, selection: Selection, after: Any, limit: int) -> sa.Select[Any]:
        """The SELECT of :meth:`fetch_reopened` (public so its plan can be checked)."""
        spec = self.spec
        # Without statistics SQLite prefers the (score, id) index, whose NULL range may hold
        # every row not scored yet: there, the partial index is named (INDEXED BY).
        table = self._table(self._source_index) if self._source_index else self.table
        id_col, url = table.c[spec.id_column], table.c[spec.url_column]
        source, score = table.c[spec.source_column], table.c[spec.score_column]
        # The partial index's own condition, term for term (SQLite matches it literally),
        # then the selection's.
        query = (sa.select(id_col, url)
                 .where(source.is_not(None), score.is_(None), url.is_distinct_from(source),
                        self.todo_clause(selection, table))
                 .order_by(id_col).limit(limit))
        if after is not None:
            query = query.where(id_col > after)
        return query

    def notify_channel(self) -> NotifyChannel | None:
        """PostgreSQL with the insert trigger that ``migrate`` installs (and not disabled): the
        channel its notifications arrive on. None on SQLite, and on PostgreSQL without it."""
        if self.dialect_name != "postgresql":
            return None
        prep = self.engine.dialect.identifier_preparer
        table = ".".join(prep.quote(part) for part in self.spec.table.split("."))
        query = sa.text("SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass(:table) "
                        "AND tgname = :trigger AND tgenabled <> 'D'")
        with self._connect() as conn:
            found = conn.execute(query, {"table": table, "trigger": NOTIFY_TRIGGER}).scalar_one()
        if not found:
            return None
        dsn = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        return NotifyChannel(dsn=dsn, channel=notify_channel(self.spec))

    # -- writing -------------------------------------------------------------------------

    def write(self, selection: Selection, outcomes: Sequence[Outcome]) -> int:
        if not outcomes:
            return 0
        guard = self.todo_clause(selection)
        try:
            with self.engine.begin() as conn:
                if self.dialect_name == "postgresql":
                    return sum(self._write_values(conn, guard, part)
                               for part in chunks(outcomes, VALUES_ROWS_PER_STATEMENT))
                return self._write_many(conn, guard, outcomes)
        except SQLAlchemyError as exc:
            raise self._failure(f"writing {len(outcomes)} scores to {self.describe()}",
                                exc) from exc

    def _assignments(self, source: dict[str, Any]) -> dict[str, Any]:
        spec, caps = self.spec, self.capabilities
        values = {spec.score_column: source["score"]}
        if caps.status:
            values[spec.status_column] = source["status"]
        if caps.details:
            values[spec.details_column] = source["details"]
        if caps.scored_at:
            values[spec.scored_at_column] = sa.func.now()
        if self.source_tracked:
            # What the result was computed for: the URL the guard has just matched.
            values[spec.source_column] = self._c(spec.url_column)
        return values

    def _same_source(self, source: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        """The row still points at the picture that was scored (``source`` NULL: no check)."""
        return sa.or_(source.is_(None), self._c(self.spec.url_column) == source)

    def _write_many(self, conn: sa.Connection, guard: sa.ColumnElement[bool],
                    outcomes: Sequence[Outcome]) -> int:
        id_col = self._c(self.spec.id_column)
        statement = sa.update(self.table).where(
            id_col == sa.bindparam("o_id"), guard,
            self._same_source(sa.bindparam("o_source", type_=sa.String()))).values(
            self._assignments({
                "score": sa.bindparam("o_score", type_=sa.Integer()),
                "status": sa.bindparam("o_status", type_=sa.String()),
                "details": sa.bindparam("o_details", type_=sa.JSON()),
            }))
        params = [{"o_id": o.id, "o_score": o.score, "o_status": o.status,
                   "o_details": o.details, "o_source": o.source} for o in outcomes]
        written = 0
        for one in params:  # sqlite3's executemany rowcount is per statement; count each
            written += conn.execute(statement, one).rowcount
        return written

    def _write_values(self, conn: sa.Connection, guard: sa.ColumnElement[bool],
                      outcomes: Sequence[Outcome]) -> int:
        """One guarded ``UPDATE ... FROM jsonb_to_recordset(:rows)`` for the whole batch.

        The batch travels as one JSON array parameter, so the SQL text is the same for every
        batch and every batch size: SQLAlchemy compiles it once (its compiled cache) and
        psycopg prepares it on the server after a few runs. A ``VALUES`` list with one tuple
        of parameters per row is a new statement for SQLAlchemy each time and cost ~0.25 ms
        of compilation per row, more than PostgreSQL's own work; text arrays (``unnest``)
        cost as much again in psycopg escaping each JSON document (bench/writes.py).
        """
        rows = json.dumps([{"o_id": key_to_json(o.id), "o_score": o.score,
                            "o_status": o.status, "o_details": o.details,
                            "o_source": o.source} for o in outcomes],
                          separators=(",", ":"))
        return len(conn.execute(self._values_statement(guard), {"o_rows": rows}).all())

    def _values_statement(self, guard: sa.ColumnElement[bool]) -> sa.Update:
        id_col = self._c(self.spec.id_column)
        incoming = sa.func.jsonb_to_recordset(
            sa.cast(sa.bindparam("o_rows", type_=sa.Text()), JSONB())
        ).table_valued(
            sa.column("o_id", self._id_type), sa.column("o_score", sa.SmallInteger()),
            sa.column("o_status", sa.Text()), sa.column("o_details", JSONB()),
            sa.column("o_source", sa.Text()), name="incoming").render_derived(with_types=True)
        return (
            sa.update(self.table)
            .where(id_col == incoming.c.o_id, guard, self._same_source(incoming.c.o_source))
            .values(self._assignments({
                "score": incoming.c.o_score,
                "status": incoming.c.o_status,
                "details": incoming.c.o_details,
            }))
            .returning(id_col)
        )

    # -- locking -------------------------------------------------------------------------

    @contextmanager
    def lock(self, job: str = "backfill") -> Iterator[None]:
        if self.dialect_name == "postgresql":
            with self._advisory_lock(job):
                yield
        else:
            with self._file_lock(job):
                yield

    @contextmanager
    def _advisory_lock(self, job: str) -> Iterator[None]:
        name = f"pixelgrade-{job}:{self.spec.table}"
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        lock = AdvisoryLock(self.engine, key)
        try:
            taken = lock.acquire()
        except SQLAlchemyError as exc:
            raise self._failure(f"taking the {job} lock on {self.describe()}", exc) from exc
        if not taken:
            raise BackfillLockedError(
                f"another {job} is running on table {self.spec.table} in "
                f"{self.describe_database()} (it holds PostgreSQL advisory lock {key}); "
                "wait for it to finish or stop it first"
            )
        self._locks.append(lock)
        try:
            yield
        finally:
            self._locks.remove(lock)
            lock.release()

    def _keep_locks(self) -> None:
        """Before each batch: the advisory locks held are still ours (see
        :mod:`pixelgrade.stores.pg_lock`); stop if another run took one meanwhile."""
        for lock in list(self._locks):
            if not lock.keep():
                raise BackfillLockedError(
                    f"the lock on table {self.spec.table} in {self.describe_database()} was "
                    "lost when its database session was cut, and another run took it "
                    "meanwhile: this run stops here (its checkpoint is saved); let the other "
                    "one finish, or stop it, then continue with --resume"
                )

    @contextmanager
    def _file_lock(self, job: str) -> Iterator[None]:
        database = self.url.database or ""
        if not database or database == ":memory:":
            yield
            return
        path = f"{database}.{self.spec.table}.{job}.lock"
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise BackfillLockedError(
                    f"another {job} is running on table {self.spec.table} in "
                    f"{self.describe_database()} (lock file {path} is held); wait for it to "
                    "finish or stop it first"
                ) from exc
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- statistics ----------------------------------------------------------------------

    def stats(self, high_from: int = 70, medium_from: int = 40) -> StoreStats:
        spec = self.spec
        score = self._c(spec.score_column)
        figures = sa.select(
            sa.func.count(),
            sa.func.count(score),
            sa.func.avg(score),
            sa.func.min(score),
            sa.func.max(score),
            sa.func.count(score).filter(score >= high_from),
            sa.func.count(score).filter(score >= medium_from, score < high_from),
            sa.func.count(score).filter(score < medium_from),
        ).select_from(self.table)
        decile = sa.case((score >= 90, 9), else_=score // 10)
        histogram_query = (sa.select(decile, sa.func.count()).select_from(self.table)
                           .where(score.is_not(None)).group_by(decile))
        with self._connect() as conn:
            total, with_score, average, low, high, n_high, n_medium, n_low = conn.execute(
                figures).one()
            histogram = [0] * 10
            for bucket, count in conn.execute(histogram_query):
                histogram[max(0, min(9, int(bucket)))] = int(count)
            statuses: dict[str, int] = {}
            if self.capabilities.status:
                status = self._c(spec.status_column)
                # Same rule as todo_clause: NULL with no status, or "scored" with NULL (reset
                # by hand), is still waiting for a score.
                label = sa.case((score.is_(None) & (status.is_(None) | (status == "scored")),
                                 "pending"),
                                (status.is_(None), "scored"), else_=status)
                for name, count in conn.execute(
                        sa.select(label, sa.func.count()).select_from(self.table)
                        .group_by(label)):
                    statuses[str(name)] = int(count)
            else:
                statuses = {"scored": int(with_score), "pending": int(total - with_score)}
            versions: dict[str, int] = {}
            if self.capabilities.details:
                version = self._c(spec.details_column)["scorer_version"].as_string()
                for name, count in conn.execute(
                        sa.select(version, sa.func.count()).select_from(self.table)
                        .where(version.is_not(None)).group_by(version)):
                    versions[str(name)] = int(count)
        return StoreStats(
            total=int(total), with_score=int(with_score),
            average=None if average is None else round(float(average), 2),
            minimum=low, maximum=high,
            bands={"high": int(n_high), "medium": int(n_medium), "low": int(n_low),
                   "unscored": int(total - with_score)},
            statuses=statuses, histogram=histogram, versions=versions,
        )

    # -- schema --------------------------------------------------------------------------

    def migration_sql(self) -> list[str]:
        return migration_statements(self.engine.dialect, self.spec, set(self.columns()))

    def migrate(self) -> list[str]:
        """Apply :meth:`migration_sql`; returns the statements run."""
        statements = self.migration_sql()
        self.apply_ddl(statements)
        self.refresh()
        return statements

    def init_sql(self) -> list[str]:
        return create_table_statements(self.engine.dialect, self.spec)

    def init(self) -> list[str]:
        """Create the table; if it exists already, add only the columns it lacks (SQLite has
        no ``ADD COLUMN IF NOT EXISTS``, so a second ``init`` would fail there otherwise)."""
        try:
            exists = sa.inspect(self.engine).has_table(self.spec.name, schema=self.spec.schema)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot connect to {self.describe_database()}: "
                             f"{_first_line(exc)}") from exc
        statements = self.migration_sql() if exists else self.init_sql()
        self.apply_ddl(statements)
        self.refresh()
        return statements

    def apply_ddl(self, statements: list[str]) -> None:
        # Autocommit: CREATE INDEX CONCURRENTLY cannot run inside a transaction.
        try:
            with self.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT") as conn:
                for statement in statements:
                    conn.exec_driver_sql(statement)
        except SQLAlchemyError as exc:
            raise StoreError(f"schema change on {self.describe()} failed: "
                             f"{_first_line(exc)}") from exc

    # -- the gallery (pixelgrade serve) --------------------------------------------------

    def _record_columns(self) -> list[sa.ColumnClause[Any]]:
        spec, caps = self.spec, self.capabilities
        names = [spec.id_column, spec.url_column, spec.score_column]
        names += [name for name, present in ((spec.status_column, caps.status),
                                             (spec.details_column, caps.details),
                                             (spec.scored_at_column, caps.scored_at))
                  if present]
        if self.sort_keys.created_column is not None:
            names.append(self.sort_keys.created_column)
        return [self._c(name) for name in names]

    def _record(self, row: sa.Row[Any]) -> ImageRecord:
        spec, values = self.spec, row._mapping
        details = values.get(spec.details_column)
        if isinstance(details, str):  # JSON text written by someone else's driver
            try:
                details = json.loads(details)
            except ValueError:
                details = None
        return ImageRecord(
            id=values[spec.id_column], location=values[spec.url_column],
            score=values[spec.score_column], status=values.get(spec.status_column),
            details=details if isinstance(details, dict) else None,
            scored_at=values.get(spec.scored_at_column),
            created=(values.get(self.sort_keys.created_column)
                     if self.sort_keys.created_column else None))

    def _segment_select(self, segment: Segment, limit: int) -> sa.Select[Any]:
        id_col, score = self._c(self.spec.id_column), self._c(self.spec.score_column)
        query = sa.select(*self._record_columns())
        if segment.scored is True:
            query = query.where(score.is_not(None))
        elif segment.scored is False:
            query = query.where(score.is_(None))
        if segment.low is not None:
            query = query.where(score >= segment.low)
        if segment.high is not None:
            query = query.where(score < segment.high)
        if segment.created is not None:
            created = self._created()
            query = query.where(created.is_not(None) if segment.created else created.is_(None))
        if segment.order == "id":
            keys: tuple[Any, ...] = (id_col,)
            if segment.after is not None:
                query = query.where(id_col < segment.after[1] if segment.descending
                                    else id_col > segment.after[1])
        else:
            first, first_type = ((score, sa.Integer()) if segment.order == "score"
                                 else (self._created(), self._created_type))
            keys = (first, id_col)
            if segment.after is not None:
                # A row-value comparison: one range of the (value, id) index.
                position = sa.tuple_(first, id_col)
                bound = sa.tuple_(sa.literal(segment.after[0], first_type),
                                  sa.literal(segment.after[1], self._id_type))
                query = query.where(position < bound if segment.descending
                                    else position > bound)
        order = [key.desc() if segment.descending else key.asc() for key in keys]
        return query.order_by(*order).limit(limit)

    def _created(self) -> sa.ColumnClause[Any]:
        name = self.sort_keys.created_column
        if name is None:
            raise StoreError(f"table {self.spec.table} has no creation-time column")
        return self._c(name)

    def list_images(self, query: ImageQuery) -> ImagePage:
        keys = self.sort_keys
        by_created = keys.created_column is not None
        rows: list[ImageRecord] = []
        with self._connect() as conn:
            for segment in page_segments(query, by_created, keys.created_nullable):
                wanted = query.limit + 1 - len(rows)
                if wanted <= 0:
                    break
                rows.extend(self._record(row) for row in conn.execute(
                    self._segment_select(segment, wanted)))
        return cut_page(rows, query, by_created)

    def band_counts(self, high_from: int = 70, medium_from: int = 40) -> dict[str, int]:
        score = self._c(self.spec.score_column)
        figures = sa.select(
            sa.func.count(),
            sa.func.count(score).filter(score >= high_from),
            sa.func.count(score).filter(score >= medium_from, score < high_from),
            sa.func.count(score).filter(score < medium_from),
            sa.func.count(score),
        ).select_from(self.table)
        with self._connect() as conn:
            total, high, medium, low, with_score = conn.execute(figures).one()
        return {"all": int(total), "high": int(high), "medium": int(medium), "low": int(low),
                "unscored": int(total - with_score)}

    def get_image(self, key: Any) -> ImageRecord | None:
        try:
            key = self.key_from_json(key)
        except (TypeError, ValueError):
            return None  # not a key of this table ("abc" for an integer id): no such image
        query = sa.select(*self._record_columns()).where(self._c(self.spec.id_column) == key)
        with self._connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else self._record(row)

    def insert_image(self, location: str) -> Any:
        id_col = self._c(self.spec.id_column)
        values: dict[str, Any] = {self.spec.url_column: location}
        if self.dialect_name == "sqlite" and not _integer_type(self._id_type):
            # SQLite gives a non-INTEGER primary key no value of its own (it would even
            # accept NULL): text keys get a UUID, as the demo's and the tests' UUID tables.
            values[self.spec.id_column] = str(uuid.uuid4())
        statement = sa.insert(self.table).values(values).returning(id_col)
        try:
            with self.engine.begin() as conn:
                return conn.execute(statement).scalar_one()
        except SQLAlchemyError as exc:
            raise StoreError(f"adding an image to {self.describe()} failed: "
                             f"{_first_line(exc)} (the table's other columns need defaults)"
                             ) from exc

    def set_result(self, outcome: Outcome) -> bool:
        try:
            with self.engine.begin() as conn:
                return self._write_many(conn, sa.true(), [outcome]) > 0
        except SQLAlchemyError as exc:
            raise StoreError(f"writing the score of image {outcome.id} to {self.describe()} "
                             f"failed: {_first_line(exc)}") from exc

    # -- misc ----------------------------------------------------------------------------

    def key_from_json(self, value: Any) -> Any:
        if value is None:
            return None
        try:
            python_type = self._id_type.python_type
        except NotImplementedError:
            return value
        if python_type is uuid.UUID:
            return uuid.UUID(str(value))
        if python_type is int:
            return int(value)
        return value

    @contextmanager
    def _connect(self) -> Iterator[sa.Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise self._failure(f"query on {self.describe()}", exc) from exc

    def _failure(self, what: str, exc: SQLAlchemyError) -> StoreError:
        """``what`` failed: a StoreError that says whether trying again may help (see
        :mod:`pixelgrade.stores.sql_errors`) and, if not, what to do."""
        message = describe_failure(exc, _first_line(exc), self.spec.table, self.url.username)
        return StoreError(f"{what} failed: {message}", transient=is_transient(exc))

    def close(self) -> None:
        self.engine.dispose()

    # -- service (pixelgrade.service) ----------------------------------------------------

    def ping(self) -> None:
        """``SELECT 1 FROM <table> LIMIT 0``: raises StoreError when the database cannot be
        reached (/healthz). Through the table, as SQLite answers a bare ``SELECT 1`` even on
        a new, empty file; and a SQLite file deleted under an open connection still answers
        it, so its path is looked at too."""
        path = self.url.database or ""
        if self.dialect_name == "sqlite" and path not in ("", ":memory:") and not (
                os.path.isfile(path)):
            raise StoreError(f"SQLite database {path} is gone (deleted or moved)")
        with self._connect() as conn:
            conn.execute(sa.select(sa.literal(1)).select_from(self.table).limit(0))

    def created_times(self, ids: Sequence[Any]) -> dict[Any, Any]:
        """When each of ``ids`` was added (``sort_keys.created_column``, as stored), by id;
        empty when the table has no such column. One query (watch's insert-to-score time).

        Only rows that never had a result (``quality_source`` NULL, where the table has it):
        a row re-opened by a URL change was added long before its new picture, so its
        creation time would say nothing about how fast the new picture was scored."""
        created = self.sort_keys.created_column
        if created is None or not ids:
            return {}
        id_col = self._c(self.spec.id_column)
        first = (self._c(self.spec.source_column).is_(None) if self.source_tracked
                 else sa.true())
        with self._connect() as conn:
            return {row[0]: row[1] for part in chunks(list(ids), 1000) for row in conn.execute(
                sa.select(id_col, self._c(created)).where(id_col.in_(part), first))}


class IndexedTable(sa.TableClause):
    """A table that SQLite reads through the index ``index`` (``FROM t INDEXED BY index``:
    an error, not a slow scan, if that index cannot serve the query); elsewhere a plain
    table."""

    inherit_cache = False  # the index name changes the SQL

    def __init__(self, name: str, *columns: sa.ColumnClause[Any], index: str,
                 **kw: Any) -> None:
        super().__init__(name, *columns, **kw)
        self.index = index


@compiles(IndexedTable, "sqlite")
def _indexed_table_sqlite(element: IndexedTable, compiler: Any, **kw: Any) -> str:
    text: str = compiler.visit_table(element, **kw)
    if kw.get("asfrom"):
        text += f" INDEXED BY {compiler.preparer.quote(element.index)}"
    return text


def key_to_json(value: Any) -> Any:
    """A key as JSON: ints stay ints, everything else (UUID, text) becomes a string."""
    if value is None or isinstance(value, int | str):
        return value
    return str(value)


def _integer_type(column_type: sa.types.TypeEngine[Any]) -> bool:
    try:
        return column_type.python_type is int
    except NotImplementedError:
        return False


def _first_line(exc: BaseException) -> str:
    """The driver's message without SQLAlchemy's SQL echo and background link."""
    original = getattr(exc, "orig", None) or exc
    return str(original).strip().splitlines()[0] if str(original).strip() else type(
        original).__name__
