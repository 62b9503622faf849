"""PostgreSQL write rate of the backfill's real write path: ``SqlStore.write``.

A fresh database (created here, dropped at the end) holds an ``images`` table made by
``pixelgrade init``'s code (score, status, JSONB details, scored-at timestamp, the (score, id)
index and the notify trigger) with ``--rows`` unscored rows (default 20,000). Each run writes
an outcome for every row through ``SqlStore.write(Selection(), outcomes)``, one call per batch,
exactly as the backfill does after scoring a batch: one transaction per batch, guarded (a row
is updated only while it still needs a score), returning how many rows changed. The outcomes
carry a real ``score_bytes`` report's details (~0.8 KB of JSON) and vary the score.

Measured for the backfill's default batch size (100) and for 500 and 1,000 rows per batch,
each on a freshly filled table (VACUUM ANALYZE first). Then every batch of the last run is
written again, to time the guard refusing rows that are already scored (0 rows changed).

Also measured: the WAL PostgreSQL wrote per row (``pg_current_wal_lsn()`` before and after
the first write; includes full-page images after checkpoints, so it varies) and how much the
table with its indexes and TOAST grew per row (each UPDATE writes a new row version; the old
one is dead until VACUUM). These are what a 100-million-row backfill costs the database's disk
(docs/scaling.md).

Target (issue 6): >= 5,000 rows/s, batched and guarded.

Usage::

    python bench/writes.py [--rows 20000] [--batch-sizes 100,500,1000] [--write docs/performance.md]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TARGET_ROWS_PER_SECOND = 5_000


def sample_details() -> dict[str, Any]:
    """The details the backfill writes for one real image (a 2 MP JPEG of the corpus)."""
    sys.path.insert(0, str(HERE))
    from backfill import corpus_dir, make_corpus

    from pixelgrade.scoring import score_bytes

    files = make_corpus()
    name = next(f.name for f in files if f.label == "2 MP JPEG")
    report = score_bytes((corpus_dir() / name).read_bytes()).to_dict()
    # The keys the backfill keeps (pixelgrade.backfill.images.DETAIL_KEYS).
    keep = ("reason", "components", "issues", "width", "height", "format", "bytes",
            "scorer_version")
    return {key: report[key] for key in keep if key in report}


def refill(db_url: str, rows: int) -> list[tuple[int, str]]:
    """``rows`` unscored rows in a fresh ``images`` table; their (id, url) in key order."""
    sys.path.insert(0, str(HERE))
    import psycopg
    from backfill import fill_table

    fill_table(db_url, [f"https://cdn.example.com/images/{i:08d}.jpg" for i in range(rows)])
    with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return [(row[0], row[1]) for row in conn.execute(
            "SELECT id, url FROM images ORDER BY id")]


def wal_and_size(db_url: str) -> tuple[int, int]:
    """(bytes of WAL written since the cluster started, bytes of ``images`` with its indexes
    and TOAST): the disk cost of a run is the difference of two readings."""
    import psycopg

    with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        wal, size = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, "
            "pg_total_relation_size('images')").fetchone()  # type: ignore[misc]
    return int(wal), int(size)


def timed_writes(store: Any, batches: list[list[Any]]) -> tuple[float, int, list[float]]:
    """(seconds, rows changed, per-batch seconds) for one ``store.write`` call per batch."""
    from pixelgrade.stores.base import Selection

    selection = Selection()
    changed, each = 0, []
    started = time.perf_counter()
    for batch in batches:
        one = time.perf_counter()
        changed += store.write(selection, batch)
        each.append(time.perf_counter() - one)
    return time.perf_counter() - started, changed, each


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows written per run")
    parser.add_argument("--batch-sizes", default="100,500,1000",
                        help="comma-separated rows per store.write call")
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="PostgreSQL URL allowed to create and drop a scratch database")
    parser.add_argument("--write", type=Path, help="also write the report into this Markdown file")
    args = parser.parse_args()
    sizes = [int(s) for s in args.batch_sizes.split(",") if s.strip()]

    sys.path.insert(0, str(HERE))
    from backfill import scratch_database

    from pixelgrade import __version__
    from pixelgrade.stores import open_store
    from pixelgrade.stores.base import Outcome

    details = sample_details()
    lines = []
    best = 0.0
    with scratch_database(args.admin_url) as (db_url, pg_version):
        for size in sizes:
            print(f"writing {args.rows:,} outcomes in batches of {size} ...", file=sys.stderr,
                  flush=True)
            ids = refill(db_url, args.rows)
            # With the URL each was scored from, as the backfill writes them: the write is
            # URL-checked and records it in quality_source.
            outcomes = [Outcome(key, "scored", 20 + key % 81, details, source=url)
                        for key, url in ids]
            batches = [outcomes[i:i + size] for i in range(0, len(outcomes), size)]
            store = open_store(db_url)
            try:
                wal_before, size_before = wal_and_size(db_url)
                seconds, changed, each = timed_writes(store, batches)
                wal_after, size_after = wal_and_size(db_url)
                again, refused, _ = timed_writes(store, batches)
            finally:
                store.close()
            if changed != args.rows or refused != 0:
                raise SystemExit(f"the guard is broken: {changed} of {args.rows} rows written, "
                                 f"then {refused} rows overwritten on a second write")
            rate = args.rows / seconds
            best = max(best, rate)
            each.sort()
            lines.append(f"| {size:,} | {len(batches):,} | {seconds:.2f} | {rate:,.0f} | "
                         f"{1000 * each[len(each) // 2]:.1f} | "
                         f"{1000 * each[int(0.95 * (len(each) - 1))]:.1f} | "
                         f"{args.rows / again:,.0f} | "
                         f"{(wal_after - wal_before) / args.rows:,.0f} | "
                         f"{(size_after - size_before) / args.rows:,.0f} |")
    header = (f"pixelgrade {__version__}, Python {platform.python_version()}, PostgreSQL "
              f"{pg_version} on 127.0.0.1 (TCP), {args.rows:,} rows per run, details "
              f"~{len(__import__('json').dumps(details))} bytes of JSON per row; command: "
              f"`python bench/writes.py{f' --rows {args.rows}' if args.rows != 20_000 else ''}`")
    table = ["| rows per `store.write` | batches | seconds | rows/s | median ms per batch | "
             "p95 ms per batch | rows/s refused by the guard (second write, 0 changed) | "
             "WAL bytes per row | table + index growth, bytes per row |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", *lines]
    verdict = (f"- {'met' if best >= TARGET_ROWS_PER_SECOND else 'MISSED'}: PostgreSQL writes "
               f">= {TARGET_ROWS_PER_SECOND:,} rows/s, batched and guarded (best "
               f"{best:,.0f} rows/s)")
    report = "\n".join([header, "", *table, "", verdict])
    print(report)
    if args.write:
        from docblock import write_block

        write_block(args.write, "writes", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
