"""A Supabase project as a store: the images table through its REST API (PostgREST).

For users who have only ``SUPABASE_URL`` and ``SUPABASE_SERVICE_ROLE_KEY``. Everything goes
through the official ``supabase`` client:

* reads are keyset pages (``id=gt.<cursor>&order=id&limit=n``); the project's ``max-rows``
  cap (1,000 on hosted Supabase) may shorten a page, which is harmless because the engine
  only stops on an empty page;
* counts use ``Prefer: count=exact`` on ``HEAD`` requests;
* writes call ``pixelgrade_write_scores`` (see :mod:`pixelgrade.stores.supabase_sql`), one RPC
  per batch, when the project has it; otherwise each row is a PATCH whose filter carries the
  guard (``quality_score=is.null``...), a few in flight at once. ``write_mode`` says which.
  Either way an outcome's ``source`` is checked too (``url=eq.<source>``): a score computed
  for the row's old URL is not written once the URL changed;
* re-opened rows (URL changed since the last result) come from ``pixelgrade_reopened_rows``,
  the REST API being unable to compare two columns; without that function, none are found
  (``watch``'s sweeps still find them);
* 429 and 5xx answers and network errors are retried with backoff, and when they last they
  are raised as *transient* (the engine retries the batch later); 4xx answers are permanent
  and say what to do (see :mod:`pixelgrade.stores.supabase_errors`).

The service-role key is a secret: it is handed to the client and to nothing else; messages
name the project by host only.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from dotenv import dotenv_values

from pixelgrade.errors import BackfillLockedError, StoreError
from pixelgrade.scoring.report import KNOWN_SCORER_VERSIONS
from pixelgrade.stores.base import (
    DEFAULT_CREATED_COLUMN,
    Capabilities,
    ImagePage,
    ImageQuery,
    ImageRecord,
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
    position,
)
from pixelgrade.stores.supabase_errors import (
    KEY_VARIABLE,
    StatusNotes,
    api_error,
    network_error,
)
from pixelgrade.stores.supabase_sql import REOPENED_FUNCTION, STATS_FUNCTION, WRITE_FUNCTION

URL_VARIABLE = "SUPABASE_URL"
#: PATCH requests in flight when the bulk-write function is missing.
PATCH_CONCURRENCY = 8
#: Ids per ``in.(...)`` filter (keeps the URL short).
IDS_PER_REQUEST = 200
#: Attempts for a request answered with 429/5xx or cut by the network.
ATTEMPTS = 5

T = TypeVar("T")


def supabase_settings(env_file: Path | None = None) -> tuple[str, str]:
    """``SUPABASE_URL`` and ``SUPABASE_SERVICE_ROLE_KEY`` from the environment, else from
    ``./.env``; a clear error naming what is missing and where it was looked for."""
    env_file = env_file or Path.cwd() / ".env"
    from_file = dotenv_values(env_file) if env_file.is_file() else {}
    values = {name: os.environ.get(name) or from_file.get(name)
              for name in (URL_VARIABLE, KEY_VARIABLE)}
    missing = [name for name, value in values.items() if not value]
    if missing:
        where = f"the environment or {env_file}" + ("" if env_file.is_file() else
                                                     " (which does not exist)")
        raise StoreError(
            f"Missing required environment variable{'s' if len(missing) > 1 else ''}: "
            f"{', '.join(missing)} (looked in {where}). Set them, e.g. in .env:\n"
            f"  {URL_VARIABLE}=https://your-project.supabase.co\n"
            f"  {KEY_VARIABLE}=your-service-role-key"
        )
    return str(values[URL_VARIABLE]), str(values[KEY_VARIABLE])


def supabase_configured(env_file: Path | None = None) -> bool:
    """True when either variable is set (environment or ``./.env``): the user means
    Supabase, and a missing one is then reported by :func:`supabase_settings` instead of
    silently falling back to another database."""
    env_file = env_file or Path.cwd() / ".env"
    from_file = dotenv_values(env_file) if env_file.is_file() else {}
    return any(os.environ.get(name) or from_file.get(name)
               for name in (URL_VARIABLE, KEY_VARIABLE))


class SupabaseStore:
    """The images table of a Supabase project, reached through its REST API."""

    dialect_name = "supabase"

    def __init__(self, url: str, key: str, spec: TableSpec | None = None, *,
                 timeout: float = 30.0, sleep: Callable[[float], None] = time.sleep) -> None:
        from supabase import ClientOptions, create_client

        self.url = url.rstrip("/")
        self.host = urlsplit(self.url).netloc or self.url
        self.spec = spec or TableSpec()
        self._sleep = sleep
        role = _key_role(key)
        if role is not None and role != "service_role":
            raise StoreError(
                f"{KEY_VARIABLE} holds the project's {role!r} key, not the service-role key: "
                "pixelgrade must read and write every row, whatever the row-level security "
                f"policies; copy the service_role (secret) key of {self.host} from the "
                "dashboard (Project Settings > API)")
        try:
            self.client = create_client(self.url, key, options=ClientOptions(
                postgrest_client_timeout=timeout, postgrest_client_retry=False,
                auto_refresh_token=False, persist_session=False, schema=self.spec.schema
                or "public"))
        except Exception as exc:  # the client validates URL and key format
            raise StoreError(f"cannot use the Supabase settings for {self.host}: "
                             f"{_message(exc)}") from exc
        self._statuses = StatusNotes()
        self.capabilities = Capabilities(status=False, details=False, scored_at=False)
        self.sort_keys = SortKeys()
        self.write_mode = "rpc"
        #: The table has the source column (see :class:`~pixelgrade.stores.sql.SqlStore`).
        self.source_tracked = False
        self.reopened_function = False
        self.refresh()

    # -- inspection ----------------------------------------------------------------------

    def _table(self) -> Any:
        return self.client.table(self.spec.name)

    def _has_column(self, column: str) -> bool:
        try:
            self._call(lambda: self._table().select(column).limit(0).execute())
        except StoreError as exc:
            if "column" in str(exc) and "does not exist" in str(exc):
                return False
            raise
        return True

    def refresh(self) -> None:
        spec = self.spec
        for what, column in (("id column", spec.id_column), ("url column", spec.url_column),
                             ("score column", spec.score_column)):
            if not self._has_column(column):
                hint = ("add it with `pixelgrade migrate --supabase --sql` (paste the SQL into "
                        "the SQL editor)" if what == "score column"
                        else f"pass --{what.split()[0]}-column NAME")
                raise StoreError(f"{what} {column!r} not found in table {spec.table!r} of "
                                 f"Supabase project {self.host}; {hint}")
        self.capabilities = Capabilities(
            status=self._has_column(spec.status_column),
            details=self._has_column(spec.details_column),
            scored_at=self._has_column(spec.scored_at_column),
        )
        self.sort_keys = SortKeys(created_column=self._created_column(),
                                  integer_key=self._integer_key())
        self.source_tracked = self._has_column(spec.source_column)
        self.write_mode = "rpc" if self._has_write_function() else "patch"
        self.reopened_function = self.source_tracked and self._has_function(
            lambda: self.client.rpc(REOPENED_FUNCTION, {}, get=True).limit(0).execute())

    def _created_column(self) -> str | None:
        """``spec.created_column`` (which must exist), else ``created_at`` if there is one."""
        wanted = self.spec.created_column
        if wanted is None:
            return DEFAULT_CREATED_COLUMN if self._has_column(DEFAULT_CREATED_COLUMN) else None
        if not self._has_column(wanted):
            raise StoreError(
                f"created column {wanted!r} not found in table {self.spec.table!r} of Supabase "
                f"project {self.host}; pass --created-column with the column that records "
                "when each row was added, or leave the option out to sort 'Newest' by key")
        return wanted

    def _integer_key(self) -> bool:
        """Whether the key is an integer, judged by one row (the REST API does not say the
        column's type); an empty table counts as integer-keyed."""
        key = self.spec.id_column
        rows = self._call(lambda: self._table().select(key).limit(1).execute()).data or []
        return not rows or isinstance(rows[0].get(key), int)

    def _has_write_function(self) -> bool:
        """The bulk-write function, in its URL-checking version (an older one, without
        ``url_checked``, does not count: writes are then PATCHes, which check the URL)."""
        caps = self.capabilities
        if not (caps.status and caps.details and caps.scored_at and self.source_tracked):
            return False
        return self._has_function(lambda: self.client.rpc(
            WRITE_FUNCTION, {"results": [], "url_checked": True}).execute())

    def _has_function(self, probe: Callable[[], Any]) -> bool:
        try:
            self._call(probe)
        except StoreError as exc:
            if "PGRST202" in str(exc) or "Could not find the function" in str(exc):
                return False
            raise
        return True

    def describe(self) -> str:
        return f"Supabase project {self.host}, table {self.spec.table}"

    def describe_database(self) -> str:
        return f"Supabase project {self.host}"

    def identity(self) -> str:
        return f"supabase:{self.host}#{self.spec.table}.{self.spec.score_column}"

    # -- filters -------------------------------------------------------------------------

    def _todo_filter(self, selection: Selection) -> str:
        """The selection as one PostgREST logic expression (for ``or=(...)``)."""
        spec, caps = self.spec, self.capabilities
        needs = [f"{spec.score_column}.is.null"]
        if caps.status:
            allowed = [f"{spec.status_column}.is.null", f"{spec.status_column}.eq.scored"]
            if selection.retry_failed:
                allowed.append(f"{spec.status_column}.eq.failed")
            needs.append(f"or({','.join(allowed)})")
        expression = f"and({','.join(needs)})"
        if selection.rescore_version is not None:
            if not caps.details:
                raise StoreError(f"--rescore-version needs the {spec.details_column!r} column; "
                                 "add it with `pixelgrade migrate --supabase --sql`")
            version = f"{spec.details_column}->>scorer_version"
            older = (f"and({version}.not.is.null,"
                     f"{version}.neq.{_quote_value(selection.rescore_version)})")
            expression = f"or({expression},{older})"
        return expression

    def _filtered(self, builder: Any, selection: Selection) -> Any:
        # PostgREST's or=(...) takes a list; a single and(...)/or(...) group goes inside it.
        return builder.or_(self._todo_filter(selection))

    # -- reading -------------------------------------------------------------------------

    def count_todo(self, selection: Selection, after: Any = None) -> int:
        def request() -> Any:
            query = self._filtered(
                self._table().select(self.spec.id_column, count="exact", head=True), selection)
            if after is not None:
                query = query.gt(self.spec.id_column, after)
            return query.execute()
        return int(self._call(request).count or 0)

    def fetch_todo(self, selection: Selection, after: Any, limit: int) -> list[Row]:
        spec = self.spec

        def request() -> Any:
            query = self._filtered(
                self._table().select(f"{spec.id_column},{spec.url_column}"), selection)
            if after is not None:
                query = query.gt(spec.id_column, after)
            return query.order(spec.id_column).limit(limit).execute()
        rows = self._call(request).data or []
        return [Row(row[spec.id_column], row.get(spec.url_column)) for row in rows]

    def fetch_rows(self, selection: Selection, ids: Sequence[Any]) -> list[Row]:
        spec = self.spec
        found: list[Row] = []
        for part in chunks([str(i) for i in ids], IDS_PER_REQUEST):
            def request(part: Sequence[str] = part) -> Any:
                return self._filtered(
                    self._table().select(f"{spec.id_column},{spec.url_column}"),
                    selection).in_(spec.id_column, list(part)).order(spec.id_column).execute()
            found.extend(Row(row[spec.id_column], row.get(spec.url_column))
                         for row in self._call(request).data or [])
        return sorted(found, key=lambda row: row.id)

    def fetch_reopened(self, selection: Selection, after: Any, limit: int) -> list[Row]:
        """Rows re-opened by a URL change and still to do (``pixelgrade_reopened_rows``, with
        the selection and the keyset as filters on its result); empty without the function."""
        if not self.reopened_function:
            return []
        spec, caps = self.spec, self.capabilities
        # PostgREST filters a function's rows only on the columns it selects: those the
        # selection's filter names come along (cleared, on these rows: a few bytes).
        names = [spec.id_column, spec.url_column, spec.score_column,
                 *(name for name, present in ((spec.status_column, caps.status),
                                              (spec.details_column, caps.details)) if present)]

        def request() -> Any:
            query = self._filtered(self.client.rpc(REOPENED_FUNCTION, {}, get=True).select(
                ",".join(names)), selection)
            if after is not None:
                query = query.gt(spec.id_column, after)
            return query.order(spec.id_column).limit(limit).execute()
        rows = self._call(request).data or []
        return [Row(row[spec.id_column], row.get(spec.url_column)) for row in rows]

    def notify_channel(self) -> None:
        """The REST API cannot LISTEN: ``watch`` polls (with ``--db postgresql://...``, the
        project's direct connection, it listens)."""
        return None

    # -- writing -------------------------------------------------------------------------

    def _values(self, outcome: Outcome) -> dict[str, Any]:
        spec, caps = self.spec, self.capabilities
        values: dict[str, Any] = {spec.score_column: outcome.score}
        if caps.status:
            values[spec.status_column] = outcome.status
        if caps.details:
            values[spec.details_column] = outcome.details
        if self.source_tracked and outcome.source is not None:
            values[spec.source_column] = outcome.source
        return values

    def _same_source(self, builder: Any, outcome: Outcome) -> Any:
        """The request's filter, plus "the row still points at what was scored"."""
        if outcome.source is None:
            return builder
        return builder.eq(self.spec.url_column, outcome.source)

    def write(self, selection: Selection, outcomes: Sequence[Outcome]) -> int:
        if not outcomes:
            return 0
        if self.write_mode == "rpc":
            spec = self.spec
            results = [{spec.id_column: o.id, **self._values(o),
                        **({spec.url_column: o.source} if o.source is not None else {})}
                       for o in outcomes]
            params = {"results": results, "retry_failed": selection.retry_failed,
                      "rescore_version": selection.rescore_version, "url_checked": True}
            response = self._call(lambda: self.client.rpc(WRITE_FUNCTION, params).execute())
            return int(response.data or 0)
        with ThreadPoolExecutor(PATCH_CONCURRENCY) as pool:
            return sum(pool.map(lambda o: self._patch(selection, o), outcomes))

    def _patch(self, selection: Selection, outcome: Outcome) -> int:
        from postgrest.types import CountMethod, ReturnMethod

        spec = self.spec
        values = self._values(outcome)
        if self.capabilities.scored_at:
            values[spec.scored_at_column] = "now"  # PostgreSQL's special timestamp input

        def request() -> Any:
            # Count, not representation: PostgREST applies the or=(...) guard to the returned
            # rows too, where a row just scored no longer matches it (the data is empty).
            return self._same_source(self._filtered(self._table().update(
                values, count=CountMethod.exact, returning=ReturnMethod.minimal), selection).eq(
                spec.id_column, outcome.id), outcome).execute()
        return int(self._call(request).count or 0)

    # -- statistics ----------------------------------------------------------------------

    def stats(self, high_from: int = 70, medium_from: int = 40) -> StoreStats:
        try:
            figures = self._call(lambda: self.client.rpc(
                STATS_FUNCTION, {"high_from": high_from, "medium_from": medium_from}).execute()
            ).data
        except StoreError as exc:
            if "PGRST202" not in str(exc) and "Could not find the function" not in str(exc):
                raise
            return self._stats_by_counting(high_from, medium_from)
        return StoreStats(
            total=int(figures["total"]), with_score=int(figures["with_score"]),
            average=None if figures["average"] is None else float(figures["average"]),
            minimum=figures["minimum"], maximum=figures["maximum"],
            bands={"high": figures["high"], "medium": figures["medium"], "low": figures["low"],
                   "unscored": int(figures["total"]) - int(figures["with_score"])},
            statuses={k: int(v) for k, v in (figures["statuses"] or {}).items()},
            histogram=[int(n) for n in figures["histogram"]],
            # A function created by an earlier pixelgrade has no "versions": count them here.
            versions=({k: int(v) for k, v in figures["versions"].items()}
                      if isinstance(figures.get("versions"), dict) else self._count_versions()),
        )

    def _count(self, apply: Callable[[Any], Any]) -> int:
        response = self._call(lambda: apply(
            self._table().select(self.spec.id_column, count="exact", head=True)).execute())
        return int(response.count or 0)

    def _stats_by_counting(self, high_from: int, medium_from: int) -> StoreStats:
        """Without the stats function: counts by HEAD requests, the average by paging scores."""
        score = self.spec.score_column
        total = self._count(lambda q: q)
        with_score = self._count(lambda q: q.not_.is_(score, "null"))
        histogram = [self._count(lambda q, i=i: q.gte(score, 10 * i).lt(
            score, 10 * i + 10 if i < 9 else 101)) for i in range(10)]
        bands = {
            "high": self._count(lambda q: q.gte(score, high_from)),
            "medium": self._count(lambda q: q.gte(score, medium_from).lt(score, high_from)),
            "low": self._count(lambda q: q.lt(score, medium_from)),
            "unscored": total - with_score,
        }
        pending = self.count_todo(Selection())
        statuses = {"pending": pending}
        if self.capabilities.status:
            status = self.spec.status_column
            for name in ("failed", "skipped"):
                statuses[name] = self._count(lambda q, name=name: q.eq(status, name))
        statuses["scored"] = with_score
        scores = list(self._scores())
        return StoreStats(
            total=total, with_score=with_score,
            average=round(sum(scores) / len(scores), 2) if scores else None,
            minimum=min(scores) if scores else None, maximum=max(scores) if scores else None,
            bands=bands, statuses={k: v for k, v in statuses.items() if v}, histogram=histogram,
            versions=self._count_versions())

    def _count_versions(self) -> dict[str, int]:
        """Rows per scorer version, by one HEAD count per version this pixelgrade knows of (the
        REST API cannot group); versions from a newer pixelgrade are not counted."""
        if not self.capabilities.details:
            return {}
        column = f"{self.spec.details_column}->>scorer_version"
        counts = {version: self._count(lambda q, v=version: q.eq(column, v))
                  for version in KNOWN_SCORER_VERSIONS}
        return {version: n for version, n in counts.items() if n}

    def _scores(self) -> Iterator[int]:
        spec, after = self.spec, None
        while True:
            def request(after: Any = after) -> Any:
                query = self._table().select(f"{spec.id_column},{spec.score_column}").not_.is_(
                    spec.score_column, "null")
                if after is not None:
                    query = query.gt(spec.id_column, after)
                return query.order(spec.id_column).limit(1000).execute()
            rows = self._call(request).data or []
            if not rows:
                return
            yield from (int(row[spec.score_column]) for row in rows)
            after = rows[-1][spec.id_column]

    # -- the gallery (pixelgrade serve) --------------------------------------------------

    def _record_columns(self) -> str:
        spec, caps = self.spec, self.capabilities
        names = [spec.id_column, spec.url_column, spec.score_column]
        names += [name for name, present in ((spec.status_column, caps.status),
                                             (spec.details_column, caps.details),
                                             (spec.scored_at_column, caps.scored_at))
                  if present]
        if self.sort_keys.created_column is not None:
            names.append(self.sort_keys.created_column)
        return ",".join(names)

    def _record(self, row: dict[str, Any]) -> ImageRecord:
        spec = self.spec
        details = row.get(spec.details_column)
        return ImageRecord(
            id=row[spec.id_column], location=row.get(spec.url_column),
            score=row.get(spec.score_column), status=row.get(spec.status_column),
            details=details if isinstance(details, dict) else None,
            scored_at=row.get(spec.scored_at_column),
            created=(row.get(self.sort_keys.created_column)
                     if self.sort_keys.created_column else None))

    def _segment_rows(self, segment: Segment, limit: int) -> list[ImageRecord]:
        score, key = self.spec.score_column, self.spec.id_column
        created = self.sort_keys.created_column
        beyond = "lt" if segment.descending else "gt"
        first = score if segment.order == "score" else created

        def request() -> Any:
            query = self._table().select(self._record_columns())
            if segment.scored is True:
                query = query.not_.is_(score, "null")
            elif segment.scored is False:
                query = query.is_(score, "null")
            if segment.low is not None:
                query = query.gte(score, segment.low)
            if segment.high is not None:
                query = query.lt(score, segment.high)
            if segment.created is not None and created is not None:
                query = (query.not_.is_(created, "null") if segment.created
                         else query.is_(created, "null"))
            if segment.after is not None:
                after_id = _quote_value(str(segment.after[1]))
                if segment.order == "id":
                    query = query.filter(key, beyond, after_id)
                else:
                    value = (str(int(segment.after[0] or 0)) if segment.order == "score"
                             else _quote_value(str(segment.after[0])))
                    query = query.or_(f"{first}.{beyond}.{value},"
                                      f"and({first}.eq.{value},{key}.{beyond}.{after_id})")
            if segment.order != "id" and first is not None:
                query = query.order(first, desc=segment.descending)
            return query.order(key, desc=segment.descending).limit(limit).execute()
        return [self._record(row) for row in self._call(request).data or []]

    def list_images(self, query: ImageQuery) -> ImagePage:
        by_created = self.sort_keys.created_column is not None
        rows: list[ImageRecord] = []
        for segment in page_segments(query, by_created):
            # A short answer may be the project's max-rows cap rather than the end of the
            # segment: ask again from the last row until the segment is done or the page full.
            while (wanted := query.limit + 1 - len(rows)) > 0:
                found = self._segment_rows(segment, wanted)
                rows.extend(found)
                if not found or len(found) >= wanted:
                    break
                segment = replace(segment, after=position(found[-1], query.sort, by_created))
        return cut_page(rows, query, by_created)

    def band_counts(self, high_from: int = 70, medium_from: int = 40) -> dict[str, int]:
        score = self.spec.score_column
        total = self._count(lambda q: q)
        with_score = self._count(lambda q: q.not_.is_(score, "null"))
        high = self._count(lambda q: q.gte(score, high_from))
        medium = self._count(lambda q: q.gte(score, medium_from).lt(score, high_from))
        return {"all": total, "high": high, "medium": medium,
                "low": with_score - high - medium, "unscored": total - with_score}

    def get_image(self, key: Any) -> ImageRecord | None:
        spec = self.spec
        try:
            rows = self._call(lambda: self._table().select(self._record_columns()).eq(
                spec.id_column, str(key)).limit(1).execute()).data or []
        except StoreError as exc:
            if "22P02" in str(exc):  # invalid input syntax for the key's type
                return None
            raise
        return self._record(rows[0]) if rows else None

    def insert_image(self, location: str) -> Any:
        spec = self.spec
        rows = self._call(lambda: self._table().insert(
            {spec.url_column: location}).execute()).data or []
        if not rows:
            raise StoreError(f"adding an image to {self.describe()} returned no row")
        return rows[0][spec.id_column]

    def set_result(self, outcome: Outcome) -> bool:
        from postgrest.types import CountMethod, ReturnMethod

        values = self._values(outcome)
        if self.capabilities.scored_at:
            values[self.spec.scored_at_column] = "now"
        response = self._call(lambda: self._same_source(self._table().update(
            values, count=CountMethod.exact, returning=ReturnMethod.minimal).eq(
            self.spec.id_column, outcome.id), outcome).execute())
        return bool(response.count)

    # -- misc ----------------------------------------------------------------------------

    @contextmanager
    def lock(self, job: str = "backfill") -> Iterator[None]:
        """One ``job`` (backfill, watch) per table *from this machine* (a lock file under the
        working directory); PostgREST pools its connections, so a database session lock cannot be
        held across requests."""
        import fcntl

        folder = Path.cwd() / ".pixelgrade"
        folder.mkdir(exist_ok=True)
        path = folder / f"{self.host.replace(':', '_')}-{self.spec.table}.{job}.lock"
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise BackfillLockedError(
                    f"another {job} from this machine is running on table "
                    f"{self.spec.table} of Supabase project {self.host} (lock file {path})"
                ) from exc
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def key_from_json(self, value: Any) -> Any:
        return value

    def _call(self, request: Callable[[], T]) -> T:
        """Run one REST request; retry transient failures (429/5xx, network) with backoff.

        Raises :class:`StoreError` with ``transient`` set when the failure outlasted the
        attempts but may still pass later, so the engine can retry the batch again."""
        from postgrest.exceptions import APIError

        # The client may rebuild its REST session (auth events): install the hook each time.
        self._statuses.install(self.client.postgrest.session)
        for attempt in range(1, ATTEMPTS + 1):
            self._statuses.clear()
            try:
                return request()
            except APIError as exc:
                failure = api_error(exc, self._statuses.last(), self.host, self.spec.table)
                cause: BaseException = exc
            except httpx.HTTPError as exc:
                failure = network_error(exc, self.host)
                cause = exc
            if not failure.transient or attempt == ATTEMPTS:
                raise failure from cause
            self._sleep(min(30.0, 0.5 * 2 ** (attempt - 1)))
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Nothing to release: the client's HTTP connections close with it."""

    # -- service (pixelgrade.service) ----------------------------------------------------

    def ping(self) -> None:
        """A request for no rows (``limit=0``): raises StoreError when the REST API cannot
        be reached (/healthz)."""
        self._call(lambda: self._table().select(self.spec.id_column).limit(0).execute())

    def created_times(self, ids: Sequence[Any]) -> dict[Any, Any]:
        """When each of ``ids`` was added (``sort_keys.created_column``), by id; empty when
        the table has no such column. Only rows that never had a result, as
        :meth:`SqlStore.created_times <pixelgrade.stores.sql.SqlStore.created_times>`."""
        created, spec = self.sort_keys.created_column, self.spec
        if created is None or not ids:
            return {}
        found: dict[Any, Any] = {}
        for part in chunks([str(i) for i in ids], IDS_PER_REQUEST):
            def request(part: Sequence[str] = part) -> Any:
                query = self._table().select(f"{spec.id_column},{created}").in_(
                    spec.id_column, list(part))
                if self.source_tracked:
                    query = query.is_(spec.source_column, "null")
                return query.execute()
            found.update((row[spec.id_column], row.get(created))
                         for row in self._call(request).data or [])
        return found


def _key_role(key: str) -> str | None:
    """The ``role`` claim of a JWT-format API key (read, not verified: only to tell the anon
    key from the service-role key early), ``"publishable"`` for an ``sb_publishable_`` key,
    else None."""
    if key.startswith("sb_publishable_"):
        return "publishable"
    parts = key.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    role = claims.get("role") if isinstance(claims, dict) else None
    return role if isinstance(role, str) else None


def _quote_value(value: str) -> str:
    """A value for a PostgREST logic expression (quoted if it has reserved characters)."""
    if any(ch in value for ch in ',.:()"\\ '):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


def _message(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    code = getattr(exc, "code", None)
    return f"{message} ({code})" if code else str(message)
