"""How long a gallery page takes at 100,000 images: first page and a deep page (after half
the rows), every band x sort, on SQLite and (when reachable) PostgreSQL; plus the band counts.

    .venv/bin/python bench/gallery.py [--rows 100000] [--pg postgresql://postgres@127.0.0.1/postgres]

Rows: one in ten unscored, scores spread over 0-100 (so every band and many ties). Each figure
is the median of 15 calls of ``Gallery.list`` (the query layer the page and the API share).
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import sqlalchemy as sa

from pixelgrade.gallery import Gallery
from pixelgrade.stores import SqlStore, TableSpec
from pixelgrade.stores.base import BANDS, SORTS


def build(url: str, rows: int) -> SqlStore:
    store = SqlStore(url, TableSpec(), must_exist=False, inspect=False)
    store.init()
    with store.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO images (url, quality_score) VALUES (:u, :s)"),
                     [{"u": f"p/{i}.jpg", "s": None if i % 10 == 0 else (i * 37) % 101}
                      for i in range(rows)])
        if store.dialect_name == "postgresql":
            conn.exec_driver_sql("ANALYZE images")
    return store


def median_ms(call: object, repeat: int = 15) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def measure(name: str, store: SqlStore) -> None:
    gallery = Gallery(store)
    print(f"\n{name}: band counts {median_ms(gallery.counts):.1f} ms")
    print(f"{'band':<10}{'sort':<12}{'first page':>12}{'deep page':>12}")
    for band in BANDS:
        for sort in SORTS:
            first = gallery.list(band, sort, None, 48)
            # A cursor about half-way down: walk there with big pages once.
            cursor, seen = first.next_cursor, 0
            total = gallery.counts()[band]
            while cursor and seen < total // 2:
                page = gallery.list(band, sort, cursor, 200)
                cursor, seen = page.next_cursor, seen + 200
            deep = median_ms(lambda b=band, s=sort, c=cursor: gallery.list(b, s, c, 48)) \
                if cursor else float("nan")
            top = median_ms(lambda b=band, s=sort: gallery.list(b, s, None, 48))
            print(f"{band:<10}{sort:<12}{top:>9.1f} ms{deep:>9.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        store = build(f"sqlite:///{folder}/bench.db", args.rows)
        measure(f"SQLite, {args.rows:,} rows", store)
        store.close()
    admin = sa.create_engine(args.pg, isolation_level="AUTOCOMMIT")
    name = f"pixelgrade_bench_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        print(f"\nPostgreSQL not reachable ({exc.orig}); skipped")
        return
    try:
        store = build(sa.make_url(args.pg).set(database=name).render_as_string(False),
                      args.rows)
        measure(f"PostgreSQL, {args.rows:,} rows", store)
        store.close()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
