"""End-to-end backfill throughput and memory: rows -> workers (download + score) -> PostgreSQL.

A library of ``--rows`` images (default 2,000) whose URLs point, round robin, at a set of 48
distinct test files (20 x 12 MP JPEG, 20 x 2 MP JPEG, 4 x 2 MP PNG, 4 x 2 MP WebP, made with
``bench/speed.py``'s ``photo_mosaic`` and cached in ``bench/.cache/``) served by a small
asyncio HTTP/1.1 server (``bench/loopserver.py``) in its own process on 127.0.0.1. The rows live
in a fresh PostgreSQL database (created here, dropped at the end) in a table made by
``pixelgrade init``'s code. Measured in the same run, over the same files, row order and count:

* **server alone**: a minimal raw-socket client downloads every row's file (no scoring), to
  show the loopback server is not what limits the backfill;
* **download only**: pixelgrade's own ``HttpFetcher`` at the backfill's concurrency;
* **decode-only ceiling**: ``pixelgrade.scoring.decode`` in a pool of the same number of
  worker processes, each holding every file's bytes in memory already (no HTTP, no database);
* **score-only**: ``score_bytes`` in the same pool, the same way;
* **end-to-end**: ``pixelgrade.backfill.run_backfill`` exactly as ``pixelgrade backfill`` runs
  it (default batch size, concurrency and chunk size, one worker process per core): the main
  process reads rows and hands out chunks of their URLs, each worker downloads and scores its
  chunk (``pixelgrade.backfill.work.score_chunk``), and the main process writes the results;
  every row scored and written.

Then the **peers**, on the same test files read from disk, one process per core (see
``bench/peers/``): the original stack's analysis (Node.js + sharp ``metadata()`` and
``stats()``), cleanvision's ``find_issues()`` (default checks, and per-image checks alone), and
pixelgrade's full scoring the same way; images/s and images/s per core side by side
(``--no-peers`` skips them, ``--peer-passes`` sets how often each file is analysed).

Each run is a separate process, so its peak memory (``VmHWM`` of that process, and the largest
``VmHWM`` among its worker processes, sampled from ``/proc``) is its own. The end-to-end run also
reports where the machine's CPU went (the workers, which download and score; the backfill's main
process, which reads rows, dispatches chunks and writes results; the HTTP server; PostgreSQL).

Targets (issue 6): end-to-end >= 90% of the decode-only ceiling (the backfill issue asked
for 80%); pixelgrade faster per core than every peer; peak memory under 300 MB per worker and
flat (within 20%) between 2,000 and 100,000 rows. The memory
check runs with ``--full``: the same backfill over 2,000 and ``--full-rows`` (100,000) rows of
a mostly-2 MP mix (per 16 rows: one 12 MP JPEG, one 2 MP PNG or WebP, fourteen 2 MP JPEGs) so
that it ends in a reasonable time (~20-30 minutes on this 2-core machine).

Usage::

    python bench/backfill.py [--rows 2000] [--full] [--no-peers] [--write docs/performance.md]

PostgreSQL's write rate alone is ``bench/writes.py``; a py-spy profile of the end-to-end run is
``bench/profile_backfill.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import multiprocessing
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache" / "backfill"
#: Bump when the corpus recipe changes, so stale cached files are not reused.
CORPUS_VERSION = 1
#: (label, format, width, height, count, file extension, encoder parameters)
CORPUS = (
    ("12 MP JPEG", "JPEG", 4000, 3000, 20, "jpg", {"quality": 85}),
    ("2 MP JPEG", "JPEG", 1732, 1155, 20, "jpg", {"quality": 85}),
    ("2 MP PNG", "PNG", 1732, 1155, 4, "png", {"compress_level": 6}),
    ("2 MP WebP", "WEBP", 1732, 1155, 4, "webp", {"quality": 80, "method": 4}),
)
#: pixelgrade sees each test file this many times more often than sharp in the peers' runs.
PIXELGRADE_PASS_FACTOR = 4
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
MB = 1024 * 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- the corpus --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestFile:
    name: str
    label: str
    size: int


def corpus_dir() -> Path:
    return CACHE / f"files-v{CORPUS_VERSION}"


def make_corpus() -> list[TestFile]:
    """The test files, generated once and cached (about a minute the first time)."""
    folder = corpus_dir()
    manifest = folder / "manifest.json"
    if manifest.exists():
        entries = json.loads(manifest.read_text())
        if all((folder / e["name"]).is_file() for e in entries):
            return [TestFile(e["name"], e["label"], (folder / e["name"]).stat().st_size)
                    for e in entries]
    sys.path.insert(0, str(HERE))
    import numpy as np
    from speed import photo_mosaic

    from pixelgrade import samples

    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    seed = 0
    for label, fmt, width, height, count, ext, params in CORPUS:
        print(f"making {count} x {label} test files ...", file=sys.stderr, flush=True)
        for k in range(count):
            seed += 1
            rgb = photo_mosaic(width, height, seed)
            # Flips and a shift so the files differ in content, not only in grain.
            if k % 2:
                rgb = rgb[:, ::-1]
            if k // 2 % 2:
                rgb = rgb[::-1]
            rgb = np.roll(rgb, k * 97, axis=1)
            name = f"{label.lower().replace(' ', '-')}-{k:02d}.{ext}"
            (folder / name).write_bytes(samples.encode(rgb, fmt, **params))
            entries.append({"name": name, "label": label})
    manifest.write_text(json.dumps(entries, indent=1))
    return [TestFile(e["name"], e["label"], (folder / e["name"]).stat().st_size)
            for e in entries]


def mixed_order(files: list[TestFile]) -> list[str]:
    """Every file once, the kinds spread evenly (so each batch holds the whole mix)."""
    position: dict[str, int] = {}
    counts: dict[str, int] = {}
    for f in files:
        counts[f.label] = counts.get(f.label, 0) + 1
    keyed = []
    for order, f in enumerate(files):
        index = position.get(f.label, 0)
        position[f.label] = index + 1
        keyed.append(((index + 0.5) / counts[f.label], order, f.name))
    return [name for _, _, name in sorted(keyed)]


def row_files(files: list[TestFile], rows: int, mix: str) -> list[str]:
    """File name for each row: ``mixed`` cycles through every file; ``memory`` is mostly 2 MP
    (per 16 rows: one 12 MP JPEG, one 2 MP PNG or WebP, fourteen 2 MP JPEGs)."""
    if mix == "mixed":
        order = mixed_order(files)
        return [order[i % len(order)] for i in range(rows)]
    by_label: dict[str, list[str]] = {}
    for f in files:
        by_label.setdefault(f.label, []).append(f.name)
    others = [n for pair in zip(by_label["2 MP PNG"], by_label["2 MP WebP"], strict=False)
              for n in pair]
    turn = {"big": 0, "other": 0, "jpeg": 0}
    names = []
    for i in range(rows):
        if i % 16 == 0:
            group, pool = "big", by_label["12 MP JPEG"]
        elif i % 16 == 8:
            group, pool = "other", others
        else:
            group, pool = "jpeg", by_label["2 MP JPEG"]
        names.append(pool[turn[group] % len(pool)])
        turn[group] += 1
    return names


# --- /proc -------------------------------------------------------------------------------------


def proc_status_kb(pid: int | str, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def proc_cpu_seconds(pid: int | str, *, reaped_children: bool = False) -> float:
    """utime + stime of a process, seconds (0 if it is gone); with ``reaped_children``, plus
    the CPU of the children it has waited for (cutime + cstime)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = [int(x) for x in text.rsplit(")", 1)[1].split()[11:15]]
    return sum(fields if reaped_children else fields[:2]) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all cores of the machine have spent busy since boot (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def descendants_cpu_seconds() -> float:
    """CPU seconds of every process this one started, directly or not, dead or alive.

    A live process counts its own CPU and that of the children it reaped; a reaped direct child
    is in RUSAGE_CHILDREN. Exact whether the pool forks workers itself or through a
    forkserver (whose reaped workers are in its cutime)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime + sum(
        proc_cpu_seconds(pid, reaped_children=True) for pid in descendants())


def tree_cpu_seconds() -> float:
    """CPU seconds of this process and all its descendants."""
    return proc_cpu_seconds("self") + descendants_cpu_seconds()


def child_pids(pid: int | str = "self") -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError, ValueError):
            found.extend(int(p) for p in task.read_text().split())
    return found


def descendants(pid: int | str = "self") -> list[int]:
    """Children, grandchildren...: a forkserver's workers are this process's grandchildren."""
    found, todo = [], child_pids(pid)
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(child_pids(child))
    return found


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of every PostgreSQL server process on this machine, by pid."""
    seen = {}
    for stat in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if stat.read_text().strip() == "postgres":
                pid = int(stat.parent.name)
                seen[pid] = proc_cpu_seconds(pid)
    return seen


class PeakSampler:
    """Samples the peak RSS (VmHWM) of this process's descendants (the scoring pool: its
    workers and, if it has one, its forkserver) every ``interval`` seconds."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.worker_peak_kb = 0
        self.workers_total_peak_kb = 0
        self.workers_seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        total = 0
        for pid in descendants():
            peak = proc_status_kb(pid, "VmHWM")
            self.workers_seen.add(pid)
            self.worker_peak_kb = max(self.worker_peak_kb, peak)
            total += proc_status_kb(pid, "VmRSS")
        self.workers_total_peak_kb = max(self.workers_total_peak_kb, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)


def self_peak_mb() -> float:
    return proc_status_kb("self", "VmHWM") / 1024


# --- child processes: each measured run is one -------------------------------------------------

_WORKER_FILES: dict[str, bytes] = {}


def _pool_init(folder: str) -> None:
    import cv2

    cv2.setNumThreads(1)  # as pixelgrade's own pool does
    for path in Path(folder).iterdir():
        if path.suffix != ".json":
            _WORKER_FILES[path.name] = path.read_bytes()


def _decode_one(name: str) -> int:
    from pixelgrade.scoring import decode

    return decode(_WORKER_FILES[name]).width


def _score_one(name: str) -> dict[str, Any]:
    from pixelgrade.scoring import score_bytes

    return score_bytes(_WORKER_FILES[name]).to_dict()


def child_pool(config: dict[str, Any]) -> dict[str, Any]:
    """Decode-only and score-only over the row files, bytes already in the workers."""
    names: list[str] = config["names"]
    workers: int = config["workers"]
    result: dict[str, Any] = {}
    # The same kind of pool as pixelgrade's (pixelgrade/pool.py): a forkserver with the
    # scoring code preloaded, one OpenCV thread per worker; plus every test file in each worker.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pixelgrade.scoring"])
    with PeakSampler() as sampler, ProcessPoolExecutor(
            workers, mp_context=context, initializer=_pool_init,
            initargs=(config["folder"],)) as pool:
        # Start every worker and warm its caches before the clock starts.
        warm = sorted(set(names))
        list(pool.map(_score_one, warm * 2, chunksize=1))
        for what, function in (("decode", _decode_one), ("score", _score_one)):
            busy, tree = machine_busy_seconds(), tree_cpu_seconds()
            started = time.perf_counter()
            count = sum(1 for _ in pool.map(function, names, chunksize=4))
            seconds = time.perf_counter() - started
            assert count == len(names)
            result[f"{what}_seconds"] = seconds
            result[f"{what}_others"] = (machine_busy_seconds() - busy
                                        - (tree_cpu_seconds() - tree))
        sampler.sample()
    result["worker_peak_mb"] = sampler.worker_peak_kb / 1024
    result["main_peak_mb"] = self_peak_mb()
    return result


async def _raw_download(host: str, port: int, names: list[str], connections: int) -> int:
    todo = iter(names)
    received = 0

    async def one_connection() -> None:
        nonlocal received
        reader, writer = await asyncio.open_connection(host, port, limit=8 * MB)
        try:
            for name in todo:
                writer.write(f"GET /{name} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                match = re.search(rb"content-length:\s*(\d+)", head.lower())
                if not head.startswith(b"HTTP/1.1 200") or match is None:
                    raise RuntimeError(f"bad response for {name}: {head[:80]!r}")
                body = await reader.readexactly(int(match.group(1)))
                received += len(body)  # not `+= len(await ...)`: that loses updates
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(one_connection() for _ in range(connections)))
    return received


async def _fetcher_download(base: str, names: list[str], concurrency: int) -> int:
    from pixelgrade.sources.http import HttpFetcher, HttpPolicy

    # The bench's own server is on loopback: opt in past the SSRF guard (which still runs).
    async with HttpFetcher(HttpPolicy(allowed_hosts=frozenset({"127.0.0.1"})),
                           concurrency=concurrency) as fetcher:
        async def one(name: str) -> int:
            return len(await fetcher.fetch(f"{base}/{name}"))
        sizes = await asyncio.gather(*(one(n) for n in names))
    return sum(sizes)


def child_download(config: dict[str, Any]) -> dict[str, Any]:
    import pixelgrade.sources.http  # noqa: F401  (imported before the clock starts)

    names, concurrency, port = config["names"], config["concurrency"], config["port"]
    server_cpu = proc_cpu_seconds(config["server_pid"])
    busy = machine_busy_seconds()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    if config["client"] == "raw":
        received = asyncio.run(_raw_download("127.0.0.1", port, names, concurrency))
    else:
        received = asyncio.run(_fetcher_download(f"http://127.0.0.1:{port}", names,
                                                 concurrency))
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    busy = machine_busy_seconds() - busy
    client_cpu = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    server_cpu = proc_cpu_seconds(config["server_pid"]) - server_cpu
    return {"seconds": seconds, "bytes": received, "main_peak_mb": self_peak_mb(),
            "client_cpu": client_cpu, "server_cpu": server_cpu,
            "others": busy - client_cpu - server_cpu}


def child_e2e(config: dict[str, Any]) -> dict[str, Any]:
    """``pixelgrade backfill`` over the prepared table, measured."""
    from rich.console import Console

    from pixelgrade.backfill import BackfillOptions, EngineOptions, run_backfill
    from pixelgrade.backfill.progress import PlainProgress
    from pixelgrade.sources.http import HttpPolicy
    from pixelgrade.stores import open_store

    store = open_store(config["db"])
    timings = {"write": 0.0, "fetch_todo": 0.0}

    def timed(name: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                timings[name] += time.perf_counter() - started
        return wrapper

    store.write = timed("write", store.write)  # type: ignore[method-assign]
    store.fetch_todo = timed("fetch_todo", store.fetch_todo)  # type: ignore[method-assign]
    work = Path(config["work"])
    options = BackfillOptions(
        engine=EngineOptions(batch_size=config["batch_size"]),
        workers=config["workers"], concurrency=config["concurrency"],
        checkpoint=work / "checkpoint.json", error_log=work / "errors.log",
        # loopserver.py is on loopback: allowed by address, so the guard's check is measured
        http=HttpPolicy(allowed_hosts=frozenset({"127.0.0.1"})))
    console = Console(file=io.StringIO(), width=120)
    server_pid = config["server_pid"]
    pg_before = postgres_cpu()
    server_before = proc_cpu_seconds(server_pid)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    pool_cpu = descendants_cpu_seconds()
    busy = machine_busy_seconds()
    with PeakSampler() as sampler:
        started = time.perf_counter()
        report = run_backfill(store, options, console, PlainProgress(console),
                              install_signal_handlers=False)
        seconds = time.perf_counter() - started
    busy = machine_busy_seconds() - busy
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    workers_cpu = descendants_cpu_seconds() - pool_cpu
    server_cpu = proc_cpu_seconds(server_pid) - server_before
    pg_after = postgres_cpu()  # before the store closes: its backends are still there
    pg_cpu = sum(max(0.0, cpu - pg_before.get(pid, 0.0)) for pid, cpu in pg_after.items())
    stats = store.stats()
    store.close()
    errors = []
    if options.error_log.exists():
        errors = options.error_log.read_text().splitlines()[:3]
    main_cpu = usage_after.ru_utime + usage_after.ru_stime - usage.ru_utime - usage.ru_stime
    return {
        "seconds": seconds, "report": report.to_dict(), "statuses": stats.statuses,
        "with_score": stats.with_score, "errors": errors,
        "main_peak_mb": self_peak_mb(), "worker_peak_mb": sampler.worker_peak_kb / 1024,
        "workers_total_peak_mb": sampler.workers_total_peak_kb / 1024,
        "workers_seen": len(sampler.workers_seen),
        "main_cpu": main_cpu, "workers_cpu": workers_cpu,
        "server_cpu": server_cpu, "postgres_cpu": pg_cpu,
        "others": busy - main_cpu - workers_cpu - server_cpu - pg_cpu,
        "db_write_seconds": timings["write"], "db_fetch_seconds": timings["fetch_todo"],
    }


def child_peer_pixelgrade(config: dict[str, Any]) -> dict[str, Any]:
    from peers import pixelgrade_scoring

    return pixelgrade_scoring.child(config)


def child_peer_cleanvision(config: dict[str, Any]) -> dict[str, Any]:
    from peers import cleanvision_checks

    return cleanvision_checks.child(config)


CHILDREN = {"pool": child_pool, "download": child_download, "e2e": child_e2e,
            "peer-pixelgrade": child_peer_pixelgrade,
            "peer-cleanvision": child_peer_cleanvision}


def measure_peers(folder: Path, files: list[TestFile], processes: int,
                  passes: int) -> list[dict[str, Any]]:
    """pixelgrade, sharp and cleanvision over the same files from disk, one process per core."""
    import importlib.util

    from peers import PeerRun, peer_names, sharp_stats

    names = peer_names(mixed_order(files), passes)
    config = {"folder": str(folder), "names": names, "processes": processes}
    # pixelgrade is ~10x faster than sharp: more passes make its run last about as long as the
    # others' (a run of a few seconds is at the mercy of whatever else runs on the machine).
    mine_config = {**config, "names": peer_names(mixed_order(files),
                                                  passes * PIXELGRADE_PASS_FACTOR)}
    runs = []
    cores = os.cpu_count() or 1

    @contextlib.contextmanager
    def outside(run: PeerRun) -> Iterator[None]:
        """Sets ``run.others``: the machine's CPU not used by this process or its children
        (the peer's processes are waited for, so their CPU is in RUSAGE_CHILDREN)."""
        busy, tree, started = machine_busy_seconds(), tree_cpu_seconds(), time.perf_counter()
        yield
        spent = (machine_busy_seconds() - busy) - (tree_cpu_seconds() - tree)
        run.others = max(0.0, spent) / ((time.perf_counter() - started) * cores)

    print(f"peers: pixelgrade on {len(mine_config['names'])} files from disk ...",
          file=sys.stderr, flush=True)
    run = PeerRun("pixelgrade (`score_bytes`)", "the full quality score: decode "
                  "(shrink-on-load) + sharpness, noise, exposure, contrast, resolution, "
                  "compression, information", processes=processes)
    with outside(run):
        mine = run_child("peer-pixelgrade", mine_config)
    run.images, run.seconds, run.others = mine["images"], mine["seconds"], mine["others"]
    run.cpu_seconds = mine["cpu_seconds"]
    runs.append(run)
    print("peers: sharp metadata() + stats() ...", file=sys.stderr, flush=True)
    sharp_stats.ensure_installed()  # npm ci (first run only) outside the measured window
    run = PeerRun("sharp", "")
    with outside(run):
        measured = sharp_stats.run(folder, names, processes)
    measured.others = run.others
    runs.append(measured)
    for checks, computes in (
            ("per-image", "its 7 per-image checks: dark, light, odd_aspect_ratio, "
                          "low_information, blurry, grayscale, odd_size"),
            ("default", "its 9 default checks: the 7 per-image ones + exact and near "
                        "duplicates (image hashes compared across the set)")):
        run = PeerRun(f"cleanvision `find_issues()` ({checks})", computes, processes=processes)
        if importlib.util.find_spec("cleanvision") is None:
            run.missing = "cleanvision not installed: pip install -e '.[bench]'"
        else:
            print(f"peers: cleanvision ({checks} checks) ...", file=sys.stderr, flush=True)
            with outside(run):
                got = run_child("peer-cleanvision", {**config, "checks": checks})
            run.tool = f"cleanvision {got['version']} `find_issues()` ({checks} checks)"
            run.images, run.seconds = got["images"], got["seconds"]
            run.cpu_seconds = got["cpu_seconds"]
            found = ", ".join(f"{k} {v}" for k, v in got["found"].items() if v) or "none"
            run.notes.append(f"issues found: {found}")
        runs.append(run)
    return [r.to_dict() for r in runs]


def run_child(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in a fresh Python process; its result is its last stdout line."""
    done = subprocess.run([sys.executable, __file__, "--child", kind],
                          input=json.dumps(config), capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise RuntimeError(f"the {kind} run failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the server and the database ---------------------------------------------------------------


@contextlib.contextmanager
def loopback_server(folder: Path) -> Iterator[tuple[int, int]]:
    """(port, pid) of bench/loopserver.py serving ``folder``; stopped on exit."""
    server = subprocess.Popen([sys.executable, str(HERE / "loopserver.py"), str(folder),
                               "--max-seconds", "14400"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        yield port, server.pid
    finally:
        assert server.stdin is not None
        server.stdin.close()  # the server's signal to stop
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.terminate()
            server.wait()


@contextlib.contextmanager
def scratch_database(admin_url: str) -> Iterator[tuple[str, str]]:
    """(SQLAlchemy URL, PostgreSQL version) of a new database, dropped on exit."""
    import psycopg
    from sqlalchemy import make_url

    name = f"pixelgrade_bench_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        version = admin.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url, str(version).split()[0]
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fill_table(db_url: str, urls: list[str]) -> None:
    """A fresh ``images`` table (``pixelgrade init``'s DDL) holding one row per URL."""
    import psycopg

    from pixelgrade.stores import open_store

    store = open_store(db_url, must_exist=False, inspect=False)
    store.apply_ddl(["DROP TABLE IF EXISTS images"])
    store.init()
    store.close()
    with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        with conn.cursor() as cursor, cursor.copy("COPY images (url) FROM STDIN") as copy:
            for url in urls:
                copy.write_row((url,))
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE images")


# --- the report --------------------------------------------------------------------------------


def fmt_mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def check_scored(result: dict[str, Any], rows: int, label: str) -> None:
    if result["with_score"] != rows:
        sys.stderr.write(f"warning: {label}: only {result['with_score']} of {rows} rows scored "
                         f"({result['statuses']}); first errors: {result['errors']}\n")


def e2e_config(args: argparse.Namespace, db_url: str, server_pid: int, work: Path,
               ) -> dict[str, Any]:
    return {"db": db_url, "workers": args.workers, "batch_size": args.batch_size,
            "concurrency": args.concurrency, "server_pid": server_pid, "work": str(work)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2000, help="rows in the library")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: one per core, as the CLI)")
    parser.add_argument("--batch-size", type=int, default=100,
                        help="backfill batch size (the CLI default)")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="downloads in flight (the CLI default)")
    parser.add_argument("--full", action="store_true",
                        help="also check memory at 2,000 and --full-rows rows (~20-30 min)")
    parser.add_argument("--full-rows", type=int, default=100_000)
    parser.add_argument("--no-peers", action="store_true",
                        help="skip the sharp / cleanvision / pixelgrade-from-disk comparison")
    parser.add_argument("--peer-passes", type=int, default=2,
                        help="times sharp analyses each test file (pixelgrade: "
                             f"{PIXELGRADE_PASS_FACTOR}x as many; cleanvision refuses repeated "
                             "paths: once)")
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL,
                        help="PostgreSQL URL allowed to create and drop a scratch database")
    parser.add_argument("--write", type=Path, help="also write the report into this Markdown file")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](json.loads(sys.stdin.read()))))
        return 0

    from pixelgrade import __version__
    from pixelgrade.scoring import SCORER_VERSION

    files = make_corpus()
    folder = corpus_dir()
    names = row_files(files, args.rows, "mixed")
    workers = args.workers
    results: dict[str, dict[str, Any]] = {}
    with loopback_server(folder) as (port, server_pid), \
            scratch_database(args.admin_url) as (db_url, pg_version), \
            tempfile.TemporaryDirectory(prefix="pixelgrade-bench-") as tmp:
        base = f"http://127.0.0.1:{port}"
        print(f"server alone ({args.rows} downloads) ...", file=sys.stderr, flush=True)
        results["raw"] = run_child("download", {
            "names": names, "concurrency": args.concurrency, "port": port,
            "server_pid": server_pid, "client": "raw"})
        print("download only (HttpFetcher) ...", file=sys.stderr, flush=True)
        results["fetch"] = run_child("download", {
            "names": names, "concurrency": args.concurrency, "port": port,
            "server_pid": server_pid, "client": "pixelgrade"})
        print("decode-only and score-only in the pool ...", file=sys.stderr, flush=True)
        results["pool"] = run_child("pool", {"names": names, "workers": workers,
                                             "folder": str(folder)})
        if not args.no_peers:
            results["peers"] = {"runs": measure_peers(folder, files, workers,
                                                      args.peer_passes)}
        print(f"end-to-end backfill of {args.rows:,} rows ...", file=sys.stderr, flush=True)
        fill_table(db_url, [f"{base}/{n}" for n in names])
        work = Path(tmp) / "e2e"
        work.mkdir()
        results["e2e"] = run_child("e2e", e2e_config(args, db_url, server_pid, work))
        check_scored(results["e2e"], args.rows, "end-to-end")
        if args.full:
            for rows in (2000, args.full_rows):
                print(f"memory check: backfill of {rows:,} mostly-2 MP rows ...",
                      file=sys.stderr, flush=True)
                fill_table(db_url, [f"{base}/{n}" for n in row_files(files, rows, "memory")])
                work = Path(tmp) / f"memory-{rows}"
                work.mkdir()
                results[f"memory-{rows}"] = run_child(
                    "e2e", e2e_config(args, db_url, server_pid, work))
                check_scored(results[f"memory-{rows}"], rows, f"memory {rows}")
        server_peak_mb = proc_status_kb(server_pid, "VmHWM") / 1024

    rows = args.rows
    cores = os.cpu_count() or 1
    pool, e2e = results["pool"], results["e2e"]
    ceiling = rows / pool["decode_seconds"]
    e2e_rate = rows / e2e["seconds"]
    share = e2e_rate / ceiling
    disturbed: list[float] = []

    def pct(rate: float) -> str:
        return f"{100 * rate / ceiling:.0f}%"

    def others(cpu: float, seconds: float) -> str:
        """Share of the machine that processes outside this benchmark used meanwhile."""
        value = max(0.0, cpu) / (seconds * cores)
        disturbed.append(value)
        return f"{100 * value:.0f}%"

    table = [
        f"| run ({rows:,} rows, {workers} workers) | seconds | images/s | % of decode-only "
        "ceiling | peak RSS main process MB | peak RSS per worker MB | CPU used by other "
        "processes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, label in (("raw", f"loopback server alone (raw client, {args.concurrency} "
                               "connections, no scoring)"),
                       ("fetch", f"download only (pixelgrade `HttpFetcher`, "
                                 f"{args.concurrency} in flight, no scoring)")):
        r = results[key]
        rate = rows / r["seconds"]
        label += f"; {r['bytes'] / r['seconds'] / MB:,.0f} MB/s"
        table.append(f"| {label} | {r['seconds']:.1f} | {rate:,.0f} | {pct(rate)} | "
                     f"{fmt_mb(r['main_peak_mb'])} | - | {others(r['others'], r['seconds'])} |")
    table.append(f"| **decode-only ceiling** (`decode`, bytes already in the workers) | "
                 f"{pool['decode_seconds']:.1f} | {ceiling:,.1f} | 100% | "
                 f"{fmt_mb(pool['main_peak_mb'])} | {fmt_mb(pool['worker_peak_mb'])} | "
                 f"{others(pool['decode_others'], pool['decode_seconds'])} |")
    score_rate = rows / pool["score_seconds"]
    table.append(f"| score-only (`score_bytes`, bytes already in the workers) | "
                 f"{pool['score_seconds']:.1f} | {score_rate:,.1f} | {pct(score_rate)} | "
                 f"{fmt_mb(pool['main_peak_mb'])} | {fmt_mb(pool['worker_peak_mb'])} | "
                 f"{others(pool['score_others'], pool['score_seconds'])} |")
    table.append(f"| **end-to-end** `run_backfill` (HTTP -> workers -> PostgreSQL) | "
                 f"{e2e['seconds']:.1f} | {e2e_rate:,.1f} | {pct(e2e_rate)} | "
                 f"{fmt_mb(e2e['main_peak_mb'])} | {fmt_mb(e2e['worker_peak_mb'])} | "
                 f"{others(e2e['others'], e2e['seconds'])} |")

    from pixelgrade.backfill.executors import PROCESSES_PER_CORE

    wall_cpu = e2e["seconds"] * cores
    used = {
        f"workers ({workers * PROCESSES_PER_CORE} processes on {workers} cores: download and "
        "score)": e2e["workers_cpu"],
        "backfill main process (reads rows, dispatches chunks, writes results)": e2e["main_cpu"],
        "loopback HTTP server": e2e["server_cpu"],
        "PostgreSQL (all its processes)": e2e["postgres_cpu"],
    }
    outside = max(0.0, e2e["others"])
    idle = max(0.0, wall_cpu - sum(used.values()) - outside)
    cpu_table = [
        f"| where the end-to-end run's CPU went ({cores} cores x {e2e['seconds']:.1f} s = "
        f"{wall_cpu:.1f} CPU s) | CPU s | ms per image | share |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, seconds in [*used.items(), ("other processes on the machine", outside),
                           ("idle", idle)]:
        cpu_table.append(f"| {label} | {seconds:.1f} | {1000 * seconds / rows:.1f} | "
                         f"{100 * seconds / wall_cpu:.0f}% |")
    score_cpu_ms = 1000 * pool["score_seconds"] * workers / rows
    worker_ms = 1000 * e2e["workers_cpu"] / rows
    rest_ms = 1000 * sum(list(used.values())[1:]) / rows
    busy = 100 * (sum(used.values()) + outside) / wall_cpu
    raw, fetch = results["raw"], results["fetch"]
    notes = [
        f"- The machine was {busy:.0f}% busy: per image the workers used {worker_ms:.1f} CPU ms "
        f"and the rest of the pipeline {rest_ms:.1f} ms, so on {cores} cores it tops out near "
        f"{1000 * cores / (worker_ms + rest_ms):.0f} images/s.",
        f"- Workers were busy {100 * e2e['workers_cpu'] / (e2e['seconds'] * workers):.0f}% of "
        f"the run: {worker_ms:.1f} CPU ms per image (downloading included), against "
        f"{score_cpu_ms:.1f} wall ms per image per worker in the score-only run.",
        f"- Downloading alone costs the client {1000 * fetch['client_cpu'] / rows:.1f} CPU ms "
        f"per image with pixelgrade's `HttpFetcher` ({1000 * raw['client_cpu'] / rows:.1f} ms "
        f"with a raw socket client); the server {1000 * fetch['server_cpu'] / rows:.1f} ms.",
        f"- Score-only reaches {100 * score_rate / ceiling:.0f}% of the decode-only ceiling "
        "(the analysis after decoding); end-to-end reaches "
        f"{100 * e2e_rate / score_rate:.0f}% of score-only (mostly the download's CPU, which "
        "the workers pay beside the scoring; then the main process, the server and "
        "PostgreSQL).",
        f"- Database calls (in threads, overlapping the scoring): writes "
        f"{e2e['db_write_seconds']:.1f} s, next-batch reads {e2e['db_fetch_seconds']:.1f} s in "
        f"total. Peak RSS of all workers together: {fmt_mb(e2e['workers_total_peak_mb'])} MB; "
        f"HTTP server: {server_peak_mb:,.0f} MB (whole corpus in memory).",
        f"- Backfill report: {e2e['report']['scored']} scored, {e2e['report']['failed']} failed, "
        f"{e2e['report']['retry_later']} to retry; {e2e['with_score']:,} of {rows:,} rows have "
        "a score in the database.",
    ]

    verdict = [
        f"- {'met' if share >= 0.9 else 'MISSED'}: end-to-end >= 90% of the decode-only "
        f"ceiling ({e2e_rate:.1f} of {ceiling:.1f} images/s = {100 * share:.0f}%)",
    ]
    memory_table: list[str] = []
    if args.full:
        small, large = results["memory-2000"], results[f"memory-{args.full_rows}"]
        memory_table = [
            "| memory check (mostly 2 MP: per 16 rows one 12 MP JPEG, one 2 MP PNG or WebP, "
            "fourteen 2 MP JPEGs) | seconds | images/s | peak RSS main process MB | "
            "peak RSS per worker MB | CPU used by other processes |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for count, r in ((2000, small), (args.full_rows, large)):
            memory_table.append(f"| {count:,} rows | {r['seconds']:.1f} | "
                                f"{count / r['seconds']:,.1f} | {fmt_mb(r['main_peak_mb'])} | "
                                f"{fmt_mb(r['worker_peak_mb'])} | "
                                f"{others(r['others'], r['seconds'])} |")
        growth = {what: large[key] / small[key] - 1
                  for what, key in (("main process", "main_peak_mb"),
                                    ("worker", "worker_peak_mb"))}
        flat = all(abs(g) <= 0.2 for g in growth.values())
        verdict.append(
            f"- {'met' if flat else 'MISSED'}: peak memory flat within 20% from 2,000 to "
            f"{args.full_rows:,} rows (" + ", ".join(f"{what} {100 * g:+.0f}%"
                                                     for what, g in growth.items()) + ")")
    else:
        verdict.append(f"- not checked in this run: memory flat within 20% from 2,000 to "
                       f"{args.full_rows:,} rows (run with `--full`, ~20-30 minutes)")
    peer_parts: list[str] = []
    if "peers" in results:
        from peers import PeerRun
        from peers import report as peers_report

        runs = [PeerRun(**r) for r in results["peers"]["runs"]]
        disturbed.extend(r.others for r in runs)
        peer_table, peer_verdict = peers_report(runs, cores)
        peer_parts = [
            "", f"Peers, on the same {len(files)} test files read from disk, one process per "
            f"core ({workers} processes; sharp sees each file {args.peer_passes} "
            f"time{'s' if args.peer_passes != 1 else ''}, pixelgrade "
            f"{args.peer_passes * PIXELGRADE_PASS_FACTOR} times, cleanvision once, as it "
            "refuses repeated paths). Per core = images/s / processes (every process was "
            "CPU-bound); per CPU second = images / CPU seconds of the tool's own processes, "
            "which other processes on the machine disturb less:",
            "", *peer_table, "",
            *(f"- {r.tool}: {note}" for r in runs for note in r.notes)]
        verdict += peer_verdict
    if max(disturbed) > 0.1:
        verdict.append(f"- warning: other processes used up to {100 * max(disturbed):.0f}% of "
                       "the machine during these runs, so some images/s figures are low: "
                       "rerun on a quiet machine")

    sizes: dict[str, list[int]] = {}
    for f in files:
        sizes.setdefault(f.label, []).append(f.size)
    corpus = ", ".join(f"{len(v)} x {label} (~{sum(v) / len(v) / MB:.1f} MB)"
                       for label, v in sizes.items())
    header = (
        f"pixelgrade {__version__} (scorer version {SCORER_VERSION}), Python "
        f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"PostgreSQL {pg_version} on 127.0.0.1; {workers} worker processes, batch size "
        f"{args.batch_size}, {args.concurrency} downloads in flight (shared among the workers). "
        f"Library: {rows:,} rows "
        f"pointing round robin at {len(files)} distinct files ({corpus}), served from memory "
        "by a loopback HTTP/1.1 keep-alive server in its own process. Command: "
        f"`python bench/backfill.py{' --full' if args.full else ''}"
        f"{f' --rows {rows}' if rows != 2000 else ''}{' --no-peers' if args.no_peers else ''}"
        f"{f' --peer-passes {args.peer_passes}' if args.peer_passes != 2 else ''}`"
    )
    parts = [header, "", *table, "", *cpu_table, "", *notes]
    if memory_table:
        parts += ["", *memory_table]
    parts += peer_parts
    report = "\n".join([*parts, "", *verdict])
    print(report)
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "last-run.json").write_text(json.dumps(results, indent=1, default=str))
    if args.write:
        from docblock import write_block

        write_block(args.write, "backfill", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
