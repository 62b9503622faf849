""""Newest" on real databases: by the table's creation-time column (``created_at``, or the one
``--created-column`` names), latest first, ties by id, rows without a time last; pages walked
through real cursors must give that order exactly, with UUID keys too. Tables without such a
column say what their last sort really is ("Last added (by id)", "Key order").
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from pixelgrade.errors import StoreError
from pixelgrade.gallery import Gallery, GalleryQueryError, encode_cursor
from pixelgrade.stores import Outcome, SqlStore, TableSpec
from pixelgrade.stores.base import BANDS
from tests.stores import tables

#: Creation times with ties (three rows share T1, two share T3) and rows without one.
T0 = dt.datetime(2024, 3, 1, 9, 0, 0, 250_000, tzinfo=dt.UTC)
T1 = dt.datetime(2024, 3, 1, 9, 0, 1, tzinfo=dt.UTC)
T2 = dt.datetime(2024, 3, 2, 18, 30, 0, 999_999, tzinfo=dt.UTC)
T3 = dt.datetime(2025, 1, 1, 0, 0, 0, tzinfo=dt.UTC)
#: (creation time, score) per row, inserted in this order: insertion and key order are not
#: age order (UUID keys are random; the times were set by the app, e.g. from an import).
ROWS: list[tuple[dt.datetime | None, int | None]] = [
    (T1, 90), (T3, 10), (None, 55), (T0, 70), (T1, None), (T2, 39), (T1, 40),
    (None, None), (T3, 100), (T2, 69), (T0, None), (None, 80),
]
PAGE_SIZES = (1, 2, 3, 5, 50)


def _uuid_table_with_times(url: str, column: str = "created_at", *,
                           not_null: bool = False) -> list[dict[str, Any]]:
    """A UUID-keyed app table (id, url, ``column``) holding :data:`ROWS`, migrated and
    scored; returns the rows as (id, created, score) dicts."""
    postgres = tables.is_postgres(url)
    key = "id uuid PRIMARY KEY" if postgres else "id TEXT PRIMARY KEY"
    created_type = "timestamptz" if postgres else "TIMESTAMP"
    rows = [(time or T0, score) for time, score in ROWS] if not_null else ROWS
    null = " NOT NULL" if not_null else ""
    made = []
    with tables.connect(url) as conn:
        conn.exec_driver_sql(f"CREATE TABLE images ({key}, url TEXT, {column} "
                             f"{created_type}{null})")
        for time, score in rows:
            key_value = uuid.uuid4()
            stored: Any = time
            if not postgres and time is not None:
                stored = time.strftime("%Y-%m-%d %H:%M:%S.%f")  # how SQLite apps store them
            conn.execute(sa.text(f"INSERT INTO images (id, url, {column}) "
                                 "VALUES (:id, 'a.jpg', :created)"),
                         {"id": key_value if postgres else str(key_value), "created": stored})
            made.append({"id": key_value, "created": time, "score": score})
    store = SqlStore(url, TableSpec(created_column=None if column == "created_at" else column),
                     inspect=False)
    store.migrate()
    for row in made:
        if row["score"] is not None:
            store.set_result(Outcome(store.key_from_json(str(row["id"])), "scored",
                                     row["score"], {}))
    store.close()
    return made


def _expected(rows: list[dict[str, Any]], band: str) -> list[str]:
    """The documented order, the obvious way: by time latest first, ties by id high to low,
    rows without a time last (by id high to low)."""
    def in_band(score: int | None) -> bool:
        return {"all": True, "unscored": score is None,
                "high": score is not None and score >= 70,
                "medium": score is not None and 40 <= score < 70,
                "low": score is not None and score < 40}[band]

    chosen = [r for r in rows if in_band(r["score"])]
    dated = sorted((r for r in chosen if r["created"] is not None),
                   key=lambda r: (r["created"], r["id"]), reverse=True)
    undated = sorted((r for r in chosen if r["created"] is None), key=lambda r: r["id"],
                     reverse=True)
    return [str(r["id"]) for r in dated + undated]


def _walk(gallery: Gallery, band: str, limit: int) -> list[str]:
    ids: list[str] = []
    cursor = None
    for _ in range(100):
        page = gallery.list(band, "newest", cursor, limit)
        assert len(page.items) <= limit
        ids.extend(str(view.id) for view in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return ids
        assert len(page.items) == limit
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize("not_null", [False, True], ids=["nullable", "not-null"])
def test_newest_pages_by_created_at_with_uuid_keys(db_url: str, not_null: bool) -> None:
    rows = _uuid_table_with_times(db_url, not_null=not_null)
    store = SqlStore(db_url, TableSpec())
    try:
        assert store.sort_keys.created_column == "created_at"
        assert store.sort_keys.created_nullable is not not_null
        assert not store.sort_keys.integer_key
        gallery = Gallery(store)
        assert gallery.sort_labels["newest"] == "Newest"
        for band in BANDS:
            expected = _expected(rows, band)
            for limit in PAGE_SIZES:
                assert _walk(gallery, band, limit) == expected, (band, limit)
    finally:
        store.close()


def test_created_column_option_names_another_column(db_url: str) -> None:
    rows = _uuid_table_with_times(db_url, column="added_on")
    store = SqlStore(db_url, TableSpec(created_column="added_on"))
    try:
        assert store.sort_keys.created_column == "added_on"
        assert _walk(Gallery(store), "all", 4) == _expected(rows, "all")
    finally:
        store.close()
    # Not given: no created_at here, so "newest" is key order, and says so.
    plain = SqlStore(db_url, TableSpec())
    try:
        assert plain.sort_keys.created_column is None
        gallery = Gallery(plain)
        assert gallery.sort_labels["newest"] == "Key order"
        assert gallery.sort_choices("score_desc") == ["score_desc", "score_asc"]
        assert gallery.sort_choices("newest") == ["score_desc", "score_asc", "newest"]
        assert _walk(gallery, "all", 5) == sorted((str(r["id"]) for r in rows), reverse=True)
    finally:
        plain.close()
    with pytest.raises(StoreError, match=r"created column 'made_at' not found.*added_on"):
        SqlStore(db_url, TableSpec(created_column="made_at"))
    with pytest.raises(StoreError, match="one of the columns pixelgrade reads or writes"):
        TableSpec(created_column="quality_score")


def test_integer_keys_without_a_time_are_labelled_by_id(db_url: str) -> None:
    tables.bare_table(db_url, ["a.jpg", "b.jpg", "c.jpg"])
    store = SqlStore(db_url, TableSpec())
    try:
        gallery = Gallery(store)
        assert store.sort_keys.created_column is None and store.sort_keys.integer_key
        assert gallery.sort_labels["newest"] == "Last added (by id)"
        assert gallery.sort_choices("score_desc") == ["score_desc", "score_asc", "newest"]
        assert [v.id for v in gallery.list("all", "newest").items] == [3, 2, 1]
    finally:
        store.close()


def test_a_cursor_of_another_order_is_refused(db_url: str) -> None:
    """A cursor made while "newest" was key order names no creation time: after a restart that
    sorts by created_at it is refused with what to do, not misread."""
    rows = _uuid_table_with_times(db_url)
    store = SqlStore(db_url, TableSpec())
    try:
        gallery = Gallery(store)
        stale = encode_cursor("all", "newest", (None, str(rows[0]["id"])), "id")
        with pytest.raises(GalleryQueryError, match="start again without a cursor"):
            gallery.list("all", "newest", stale, 3)
        with pytest.raises(GalleryQueryError, match="not one this server made"):
            gallery.list("all", "newest", encode_cursor("all", "newest", (1, 2))[:-3] + "!!",
                         3)
    finally:
        store.close()


def test_init_makes_an_index_for_newest(db_url: str) -> None:
    store = SqlStore(db_url, TableSpec(), must_exist=False, inspect=False)
    try:
        store.init()
        assert store.sort_keys.created_column == "created_at"
        assert not store.sort_keys.created_nullable
        assert store.has_index_on("created_at")
        assert not store.has_index_on("url")
    finally:
        store.close()
