"""Insert-to-score latency of the ways new rows get their score automatically.

A writer inserts rows pointing at 2 MP JPEGs (the 20 distinct photo mosaics of
``bench/backfill.py``'s corpus, cached in ``bench/.cache/``) at ``--rate`` rows per second
(20) for ``--seconds`` (60), from a connection of its own, while pixelgrade runs as its own
process, started exactly as a user starts it. Measured in one run, one way after the other:

* **listen**: ``pixelgrade watch`` on PostgreSQL; the ``pixelgrade_notify`` trigger that
  ``pixelgrade init`` installs announces each row (LISTEN/NOTIFY);
* **webhook**: ``pixelgrade hook`` on PostgreSQL; after each insert commits, the writer POSTs
  Supabase's Database Webhook payload (``{"type": "INSERT", "table", "schema", "record",
  "old_record"}``, ``Authorization: Bearer SECRET``) from a background thread, the way pg_net
  sends ``supabase_functions.http_request`` after the commit (once, no retry);
* **poll**: ``pixelgrade watch`` on a SQLite file, polling every 0.5 s (its default interval
  on SQLite).

Latency is read off the database's own clock, so nothing in the bench process can flatter it:
from the row's ``created_at`` (set by the insert) to the moment a trigger of the bench saw the
score written (``clock_timestamp()`` on PostgreSQL, ``strftime('%f')`` on SQLite, both in the
UPDATE that writes the result). That trigger also counts the writes of each row: a row written
more than once was scored twice. After the writer stops, the run waits (up to ``--drain``
seconds) for every row to have a result; a row still without one is reported as unscored.

Targets (issue 15): p50 < 0.5 s and p99 < 2 s on listen and webhook; no row unscored; no row
scored twice.

Usage::

    python bench/autoscore.py [--rate 20] [--seconds 60] [--ways listen,webhook,poll]
                              [--write docs/performance.md]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
WAYS = ("listen", "webhook", "poll")
TARGET_P50, TARGET_P99 = 0.5, 2.0
SECRET = "bench-autoscore-secret"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

#: PostgreSQL: one row per result written (the score or status changed), at the database's
#: clock while the UPDATE runs.
PG_WRITES = [
    "CREATE TABLE score_writes (id BIGINT NOT NULL, at TIMESTAMPTZ NOT NULL)",
    "CREATE FUNCTION count_score_write() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "BEGIN\n"
    "    INSERT INTO score_writes VALUES (NEW.id, clock_timestamp());\n"
    "    RETURN NULL;\n"
    "END $$",
    "CREATE TRIGGER count_score_write AFTER UPDATE ON images FOR EACH ROW\n"
    "    WHEN (NEW.quality_status IS NOT NULL\n"
    "          AND NEW.quality_status IS DISTINCT FROM OLD.quality_status)\n"
    "    EXECUTE FUNCTION count_score_write()",
]
SQLITE_WRITES = [
    "CREATE TABLE score_writes (id INTEGER NOT NULL, at TEXT NOT NULL)",
    "CREATE TRIGGER count_score_write AFTER UPDATE ON images FOR EACH ROW\n"
    "    WHEN NEW.quality_status IS NOT NULL\n"
    "         AND NEW.quality_status IS NOT OLD.quality_status\n"
    "BEGIN\n"
    "    INSERT INTO score_writes VALUES (NEW.id, strftime('%Y-%m-%d %H:%M:%f', 'now'));\n"
    "END",
]


@dataclass
class Result:
    """One way's figures."""

    way: str
    inserted: int = 0
    #: Seconds from insert to result written, one per row that got a result.
    latencies: list[float] = field(default_factory=list)
    unscored: int = 0
    scored_twice: int = 0
    #: Inserts that fell behind their schedule by more than one interval (the writer's own lag).
    writer_late: int = 0
    #: Webhook POSTs not answered 2xx (pg_net would not retry them).
    refused_posts: int = 0
    note: str = ""

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# --- helpers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def images() -> tuple[Path, list[str]]:
    """(folder, file names) of the 2 MP JPEGs the rows point at."""
    sys.path.insert(0, str(HERE))
    from backfill import corpus_dir, make_corpus

    names = [f.name for f in make_corpus() if f.label == "2 MP JPEG"]
    return corpus_dir(), names


@contextlib.contextmanager
def running(command: list[str], ready: Callable[[str], bool], log: Path,
            env: dict[str, str] | None = None, timeout: float = 60.0) -> Iterator[None]:
    """``command`` as a child process, yielded once a line of its output passes ``ready``;
    stopped with SIGTERM (it finishes the images in flight) on exit."""
    with open(log, "w") as out:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=out, text=True,
                                 env={**os.environ, **(env or {})})
        lines: list[str] = []
        seen = threading.Event()

        def read() -> None:
            assert child.stdout is not None
            for line in child.stdout:
                lines.append(line)
                if not seen.is_set() and ready(line):
                    seen.set()
            seen.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            if not seen.wait(timeout) or child.poll() is not None:
                raise SystemExit(f"{command[3]} did not start: see {log}\n{''.join(lines)}")
            yield
        finally:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
            reader.join(5)
            out.write("".join(lines))


def write_rows(insert: Callable[[int], None], rate: float, seconds: float) -> tuple[int, int]:
    """Call ``insert(n)`` on a fixed schedule (n = 0, 1, ...; one every 1/rate s); (rows
    inserted, inserts late by more than one interval)."""
    interval, count = 1.0 / rate, int(rate * seconds)
    started, late = time.monotonic(), 0
    for n in range(count):
        due = started + n * interval
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        elif now - due > interval:
            late += 1
        insert(n)
    return count, late


def wait_until(done: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.2)
    return done()


def pixelgrade(*args: str) -> list[str]:
    return [sys.executable, "-m", "pixelgrade", *args]


# --- PostgreSQL: listen and webhook ----------------------------------------------------------


def pg_table(db_url: str) -> None:
    """``pixelgrade init``'s table (with the notify trigger) plus the bench's write counter."""
    from pixelgrade.stores import open_store

    store = open_store(db_url, must_exist=False, inspect=False)
    store.init()
    store.apply_ddl(PG_WRITES)
    store.close()


def pg_figures(dsn: str, result: Result, drain: float) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        def unscored() -> int:
            row = conn.execute("SELECT count(*) FROM images WHERE quality_status IS NULL"
                               ).fetchone()
            return int(row[0]) if row else 0

        wait_until(lambda: unscored() == 0, drain)
        time.sleep(1.0)  # a second write of a row, if any, lands after its first
        result.unscored = unscored()
        rows = conn.execute(
            "SELECT extract(epoch FROM min(w.at) - i.created_at), count(*) FROM images i "
            "JOIN score_writes w USING (id) GROUP BY i.id, i.created_at").fetchall()
    result.latencies = [float(seconds) for seconds, _ in rows]
    result.scored_twice = sum(1 for _, writes in rows if writes > 1)


def run_listen(admin_url: str, folder: Path, names: list[str], args: argparse.Namespace,
               work: Path) -> Result:
    import psycopg

    sys.path.insert(0, str(HERE))
    from backfill import scratch_database

    result = Result("listen")
    with scratch_database(admin_url) as (db_url, _):
        pg_table(db_url)
        dsn = db_url.replace("postgresql+psycopg://", "postgresql://")
        command = pixelgrade("watch", "--db", db_url, "--root", str(folder), "--json",
                             "--error-log", str(work / "listen-errors.log"))
        with running(command, lambda line: '"watching"' in line, work / "listen.log"), \
                psycopg.connect(dsn, autocommit=True) as writer:
            result.note = "LISTEN/NOTIFY (the trigger `pixelgrade init` installs)"
            result.inserted, result.writer_late = write_rows(
                lambda n: writer.execute("INSERT INTO images (url) VALUES (%s)",
                                         (names[n % len(names)],)),
                args.rate, args.seconds)
            pg_figures(dsn, result, args.drain)
    return result


def run_webhook(admin_url: str, folder: Path, names: list[str], args: argparse.Namespace,
                work: Path) -> Result:
    import httpx
    import psycopg

    sys.path.insert(0, str(HERE))
    from backfill import scratch_database

    result = Result("webhook")
    port = free_port()
    with scratch_database(admin_url) as (db_url, _):
        pg_table(db_url)
        dsn = db_url.replace("postgresql+psycopg://", "postgresql://")
        command = pixelgrade("hook", "--db", db_url, "--root", str(folder), "--host",
                             "127.0.0.1", "--port", str(port),
                             "--error-log", str(work / "webhook-errors.log"))
        url = f"http://127.0.0.1:{port}/api/hooks/supabase"
        headers = {"Authorization": f"Bearer {SECRET}"}
        refused = 0
        lock = threading.Lock()

        with running(command, lambda line: True, work / "webhook.log",
                     env={"PIXELGRADE_WEBHOOK_SECRET": SECRET}, timeout=60), \
                httpx.Client(timeout=5.0) as client, \
                ThreadPoolExecutor(4, thread_name_prefix="pg_net") as sender, \
                psycopg.connect(dsn, autocommit=True) as writer:
            if not wait_until(lambda: _answers(client, port), 30):
                raise SystemExit(f"pixelgrade hook did not answer: see {work / 'webhook.log'}")

            def post(record: dict[str, object]) -> None:
                nonlocal refused
                payload = {"type": "INSERT", "table": "images", "schema": "public",
                           "record": record, "old_record": None}
                try:
                    answer = client.post(url, json=payload, headers=headers)
                    ok = answer.is_success
                except httpx.HTTPError:
                    ok = False
                if not ok:
                    with lock:
                        refused += 1

            def insert(n: int) -> None:
                row = writer.execute(
                    "INSERT INTO images (url) VALUES (%s) RETURNING id, url, created_at",
                    (names[n % len(names)],)).fetchone()
                assert row is not None
                record = {"id": row[0], "url": row[1], "created_at": row[2].isoformat(),
                          "quality_score": None, "quality_status": None}
                sender.submit(post, record)  # after the commit, as pg_net sends

            result.note = "Database Webhook payloads POSTed after each commit (like pg_net)"
            result.inserted, result.writer_late = write_rows(insert, args.rate, args.seconds)
            sender.shutdown(wait=True)
            pg_figures(dsn, result, args.drain)
        result.refused_posts = refused
    return result


def _answers(client: object, port: int) -> bool:
    import httpx

    assert isinstance(client, httpx.Client)
    try:
        client.get(f"http://127.0.0.1:{port}/healthz")
    except httpx.HTTPError:
        return False
    return True


# --- SQLite: poll ------------------------------------------------------------------------------


def run_poll(folder: Path, names: list[str], args: argparse.Namespace, work: Path) -> Result:
    from pixelgrade.stores import open_store

    result = Result("poll")
    path = work / "autoscore.db"
    path.unlink(missing_ok=True)
    db_url = f"sqlite:///{path}"
    store = open_store(db_url, must_exist=False, inspect=False)
    store.init()
    store.apply_ddl(SQLITE_WRITES)
    store.close()
    command = pixelgrade("watch", "--db", db_url, "--root", str(folder), "--json",
                         "--error-log", str(work / "poll-errors.log"))
    with running(command, lambda line: '"watching"' in line, work / "poll.log"):
        writer = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            result.note = "a poll every 0.5 s (watch's default on SQLite)"
            result.inserted, result.writer_late = write_rows(
                lambda n: writer.execute(
                    "INSERT INTO images (url, created_at) VALUES "
                    "(?, strftime('%Y-%m-%d %H:%M:%f', 'now'))", (names[n % len(names)],)),
                args.rate, args.seconds)
        finally:
            writer.close()
        reader = sqlite3.connect(path, timeout=30)
        try:
            def unscored() -> int:
                return int(reader.execute(
                    "SELECT count(*) FROM images WHERE quality_status IS NULL").fetchone()[0])

            wait_until(lambda: unscored() == 0, args.drain)
            time.sleep(1.0)
            result.unscored = unscored()
            rows = reader.execute(
                "SELECT i.created_at, min(w.at), count(*) FROM images i "
                "JOIN score_writes w ON w.id = i.id GROUP BY i.id").fetchall()
        finally:
            reader.close()
    result.latencies = [(_utc(at) - _utc(created)) for created, at, _ in rows]
    result.scored_twice = sum(1 for *_, writes in rows if writes > 1)
    return result


def _utc(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# --- the report --------------------------------------------------------------------------------


def table(results: list[Result]) -> list[str]:
    lines = ["| way | how rows are found | rows | p50 s | p95 s | p99 s | max s | unscored | "
             "scored twice | writer late | POSTs refused |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if not r.latencies:
            lines.append(f"| {r.way} | {r.note} | {r.inserted:,} | - | - | - | - | "
                         f"{r.unscored} | {r.scored_twice} | {r.writer_late} | - |")
            continue
        posts = str(r.refused_posts) if r.way == "webhook" else "-"
        lines.append(f"| {r.way} | {r.note} | {r.inserted:,} | {r.percentile(0.50):.3f} | "
                     f"{r.percentile(0.95):.3f} | {r.percentile(0.99):.3f} | "
                     f"{max(r.latencies):.3f} | {r.unscored} | {r.scored_twice} | "
                     f"{r.writer_late} | {posts} |")
    return lines


def verdicts(results: list[Result]) -> list[str]:
    lines = []
    for r in results:
        problems = []
        if r.unscored:
            problems.append(f"{r.unscored} rows left without a result")
        if r.scored_twice:
            problems.append(f"{r.scored_twice} rows scored twice")
        if r.way in ("listen", "webhook") and r.latencies:
            p50, p99 = r.percentile(0.50), r.percentile(0.99)
            if p50 >= TARGET_P50:
                problems.append(f"p50 {p50:.3f} s is not under {TARGET_P50} s")
            if p99 >= TARGET_P99:
                problems.append(f"p99 {p99:.3f} s is not under {TARGET_P99} s")
        lines.append(f"* **{r.way}**: " + ("; ".join(problems) if problems else
                                           "met (every row scored once" + (
                                               f", p50 under {TARGET_P50} s, p99 under "
                                               f"{TARGET_P99} s)" if r.way != "poll" else ")")))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=20.0, help="rows inserted per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the writer runs")
    parser.add_argument("--drain", type=float, default=60.0,
                        help="longest wait for the last rows' results after the writer stops")
    parser.add_argument("--ways", default=",".join(WAYS), help=f"comma-separated: {WAYS}")
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL,
                        help="PostgreSQL URL allowed to create and drop a scratch database")
    parser.add_argument("--write", type=Path, help="also write the report into this Markdown file")
    args = parser.parse_args()
    ways = [w.strip() for w in args.ways.split(",") if w.strip()]
    unknown = sorted(set(ways) - set(WAYS))
    if unknown:
        parser.error(f"unknown way(s) {unknown}: choose among {', '.join(WAYS)}")

    from pixelgrade import __version__

    folder, names = images()
    results = []
    with tempfile.TemporaryDirectory(prefix="pixelgrade-autoscore-") as scratch:
        work = Path(scratch)
        for way in ways:
            print(f"{way}: {args.rate:g} rows/s for {args.seconds:g} s ...", file=sys.stderr,
                  flush=True)
            if way == "listen":
                results.append(run_listen(args.admin_url, folder, names, args, work))
            elif way == "webhook":
                results.append(run_webhook(args.admin_url, folder, names, args, work))
            else:
                results.append(run_poll(folder, names, args, work))
    command = "python bench/autoscore.py" + (
        "" if (args.rate, args.seconds, ways) == (20.0, 60.0, list(WAYS)) else
        f" --rate {args.rate:g} --seconds {args.seconds:g} --ways {','.join(ways)}")
    header = (f"pixelgrade {__version__}, Python {platform.python_version()}, "
              f"{os.cpu_count()} cores; {args.rate:g} rows/s of 2 MP JPEGs (local files) for "
              f"{args.seconds:g} s per way, one way after the other; latency = database clock "
              f"from the insert to the result's UPDATE; command: `{command}`")
    report = "\n".join([header, "", *table(results), "", *verdicts(results)])
    print(report)
    if args.write:
        from docblock import write_block

        write_block(args.write, "autoscore", report)
    return 0 if all(not (r.unscored or r.scored_twice) for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
