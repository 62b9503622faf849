"""Real images tables for store and backfill tests, on SQLite or PostgreSQL (``db_url``).

Tables are made with plain DDL, the way an application would have made them before pixelgrade
existed, or with ``SqlStore.init`` when a test wants pixelgrade's own table. ``count_updates``
installs a trigger that logs every UPDATE of a row, so "scored exactly once" is measured by the
database itself, not inferred.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from pixelgrade.stores import SqlStore, TableSpec, database_url


@contextmanager
def connect(url: str) -> Iterator[sa.Connection]:
    """A connection of our own (not the store's), committed on exit."""
    engine = sa.create_engine(database_url(url))
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql", "postgres:"))


def bare_table(url: str, locations: Sequence[str | None], *, table: str = "images",
               with_score: bool = True, uuid_ids: bool = False,
               sqlite_id_type: str = "TEXT") -> list[Any]:
    """A pre-pixelgrade table: ``id``, ``url`` and (``with_score``) ``quality_score`` only.

    Returns the ids in key order. Integer ids are 1..n; UUID ids are made by the database on
    PostgreSQL (``gen_random_uuid()``) and by Python on SQLite (stored as text, declared
    ``sqlite_id_type``).
    """
    postgres = is_postgres(url)
    if uuid_ids:
        key = ("id uuid PRIMARY KEY DEFAULT gen_random_uuid()" if postgres
               else f"id {sqlite_id_type} PRIMARY KEY")
    else:
        key = "id BIGINT PRIMARY KEY" if postgres else "id INTEGER PRIMARY KEY"
    score = ", quality_score INTEGER" if with_score else ""
    with connect(url) as conn:
        conn.exec_driver_sql(f"CREATE TABLE {table} ({key}, url TEXT{score})")
        for number, location in enumerate(locations, start=1):
            if uuid_ids and postgres:
                conn.execute(sa.text(f"INSERT INTO {table} (url) VALUES (:url)"),
                             {"url": location})
            else:
                key_value: Any = str(uuid.uuid4()) if uuid_ids else number
                conn.execute(sa.text(f"INSERT INTO {table} (id, url) VALUES (:id, :url)"),
                             {"id": key_value, "url": location})
        return list(conn.execute(sa.text(f"SELECT id FROM {table} ORDER BY id")).scalars())


def pixelgrade_table(url: str, locations: Sequence[str | None], *,
                     table: str = "images") -> list[int]:
    """``pixelgrade init``'s table holding ``locations`` (ids 1..n); returns the ids."""
    store = SqlStore(url, TableSpec(table=table), must_exist=False, inspect=False)
    try:
        store.init()
    finally:
        store.close()
    with connect(url) as conn:
        for number, location in enumerate(locations, start=1):
            conn.execute(sa.text(f"INSERT INTO {table} (id, url) VALUES (:id, :url)"),
                         {"id": number, "url": location})
    return list(range(1, len(locations) + 1))


def rows(url: str, table: str = "images") -> dict[Any, dict[str, Any]]:
    """Every row by id, as plain dicts (details parsed from JSON on both databases)."""
    with connect(url) as conn:
        result = conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY id")).mappings().all()
    out = {}
    for row in result:
        record = dict(row)
        if isinstance(record.get("quality_details"), str):
            record["quality_details"] = json.loads(record["quality_details"])
        out[record["id"]] = record
    return out


def checksum(url: str, table: str = "images") -> str:
    """A digest of every column of every row, in key order."""
    with connect(url) as conn:
        result = conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY id")).all()
    return hashlib.sha256(repr([tuple(row) for row in result]).encode()).hexdigest()


def columns(url: str, table: str = "images", schema: str | None = None) -> list[str]:
    engine = sa.create_engine(database_url(url))
    try:
        return sorted(c["name"] for c in sa.inspect(engine).get_columns(table, schema=schema))
    finally:
        engine.dispose()


def schema_snapshot(url: str, table: str = "images") -> tuple[Any, ...]:
    """Columns (name, type, nullable) and index names: what a migration could change."""
    engine = sa.create_engine(database_url(url))
    try:
        inspector = sa.inspect(engine)
        cols = tuple((c["name"], str(c["type"]), c["nullable"])
                     for c in inspector.get_columns(table))
        indexes = tuple(sorted(i["name"] or "" for i in inspector.get_indexes(table)))
        return cols, indexes
    finally:
        engine.dispose()


def count_updates(url: str, table: str = "images") -> None:
    """Log every UPDATE of a row of ``table`` in ``row_updates`` (see :func:`updates`)."""
    with connect(url) as conn:
        conn.exec_driver_sql("CREATE TABLE row_updates (row_id TEXT NOT NULL)")
        if is_postgres(url):
            conn.exec_driver_sql(
                "CREATE FUNCTION log_row_update() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN INSERT INTO row_updates (row_id) VALUES (NEW.id::text); RETURN NEW; END $$")
            conn.exec_driver_sql(f"CREATE TRIGGER {table}_updates AFTER UPDATE ON {table} "
                                 "FOR EACH ROW EXECUTE FUNCTION log_row_update()")
        else:
            conn.exec_driver_sql(f"CREATE TRIGGER {table}_updates AFTER UPDATE ON {table} "
                                 "BEGIN INSERT INTO row_updates (row_id) VALUES (NEW.id); END")


def updates(url: str) -> dict[str, int]:
    """UPDATEs per row id (as text) since :func:`count_updates`."""
    with connect(url) as conn:
        return {str(row_id): int(n) for row_id, n in conn.execute(sa.text(
            "SELECT row_id, count(*) FROM row_updates GROUP BY row_id"))}
