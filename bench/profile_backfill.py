"""Where the end-to-end backfill's time goes: a py-spy profile summarised per process kind.

Sets up exactly what ``bench/backfill.py``'s end-to-end stage uses (the same test files served
by the loopback HTTP server, a fresh PostgreSQL database with ``--rows`` rows) and runs that
stage (``bench/backfill.py --child e2e``, i.e. ``run_backfill`` as ``pixelgrade backfill`` runs
it) under ``py-spy record --subprocesses --format raw``: py-spy samples the backfill's main
process and every process it starts (the forkserver and the worker processes, which download
and score chunks of rows: ``pixelgrade.backfill.work.score_chunk``) from outside, at
``--rate`` samples per second, counting only samples where a thread is running (not idle).

The summary, per process kind (backfill main process; scoring workers, all threads of a worker
process together, its download thread included), lists the top
functions by **own time** (the innermost Python frame of a sample: its own code plus the C code
it calls, e.g. libjpeg inside Pillow's ``decode``) and by **total time** (samples in which the
function is anywhere on the stack), each as a share of that kind's samples. Line numbers are
dropped so that a function is one row.

Usage::

    python bench/profile_backfill.py [--rows 2000] [--rate 200] [--write docs/performance.md]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROCESS = re.compile(r'process (\d+):"[^"]*"')
LINE_NUMBER = re.compile(r":\d+\)$")
#: A frame on the main thread's stack of every worker process (concurrent.futures' worker
#: loop, which runs ``score_chunk``); the process's other threads (the download thread's event
#: loop, the exit-with-parent watcher) do not have it, so a process is a worker if any of its
#: samples does.
WORKER_FRAME = "_process_worker"
#: The process kinds (a worker's samples include its download thread's).
WORKER = "scoring worker"
MAIN = "backfill main process"
OTHER = "other child process"
#: Innermost frames of a thread that is blocked, not working: py-spy counts a thread sitting
#: in a system call (select, a lock, a queue) as active, so these are set apart as "waiting".
WAITING = ("select (selectors.py)", "Condition.wait (threading.py)",
           "Event.wait (threading.py)", "_worker (concurrent/futures/thread.py)",
           "wait (multiprocessing/connection.py)", "Queue.get (queue.py)")


#: Frames left out of the "by total time" column (see :func:`summary`).
HARNESS = ("(backfill.py)", "<module>", "(threading.py)", "(asyncio/", "(contextlib.py)",
           "(concurrent/futures/", "(multiprocessing/process.py)",
           "(multiprocessing/forkserver.py)", "(multiprocessing/spawn.py)", "(runpy.py)")


def parse_raw(text: str, main_pid: int | None = None
              ) -> dict[str, tuple[int, Counter[str], Counter[str]]]:
    """py-spy's raw (collapsed) output -> {process kind: (samples, own, total)}; samples
    whose innermost frame is in :data:`WAITING` are counted as own time of "(waiting)" only.

    Each line is ``process A:"cmd";process B:"cmd";frame;frame;... COUNT``, outermost first,
    the process chain leading to the sampled process. The kind is :data:`WORKER` for every
    sample of a process that ran ``concurrent.futures``' worker loop in any sample (the
    forkserver's children running ``score_chunk``: their download thread counts with them),
    :data:`MAIN` for the first process of the chain when it is the only one (or ``main_pid``),
    else :data:`OTHER` (the forkserver, the resource tracker, a worker that never ran a task).
    """
    worker_pids: set[int] = set()
    for line in text.splitlines():
        if WORKER_FRAME in line:
            found = PROCESS.findall(line.rpartition(" ")[0])
            if found:
                worker_pids.add(int(found[-1]))
    kinds: dict[str, tuple[int, Counter[str], Counter[str]]] = {}
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        pids = [int(p) for p in PROCESS.findall(stack)]
        frames_text = PROCESS.sub("", stack).lstrip(";")
        frames = [LINE_NUMBER.sub(")", f) for f in frames_text.split(";") if f]
        if not frames:
            continue
        pid = pids[-1] if pids else None
        if pid in worker_pids or any(WORKER_FRAME in f for f in frames):
            kind = WORKER
        elif pid is not None and (pid == main_pid or (main_pid is None and len(pids) == 1)):
            kind = MAIN
        else:
            kind = OTHER
        samples, own, total = kinds.get(kind, (0, Counter(), Counter()))
        if frames[-1].endswith(WAITING):
            own["(waiting: select, lock or queue)"] += count
        else:
            own[frames[-1]] += count
            for frame in set(frames):
                total[frame] += count
        kinds[kind] = (samples + count, own, total)
    return kinds


def summary(kinds: dict[str, tuple[int, Counter[str], Counter[str]]], top: int) -> list[str]:
    """Markdown: one table per process kind, top functions by own and by total time (the
    waiting samples count in the kind's samples, so the shares are of all its samples)."""
    lines: list[str] = []
    order = (MAIN, WORKER, OTHER)
    for kind in sorted(kinds, key=lambda k: order.index(k) if k in order else len(order)):
        samples, own, total = kinds[kind]
        lines += ["", f"**{kind}** ({samples:,} samples)", "",
                  "| # | by own time | own | by total time | total |",
                  "| ---: | --- | ---: | --- | ---: |"]
        # The frames every stack passes through (the benchmark's own harness, module
        # bodies, threads, the event loop, the process pool) would fill the total column.
        wide = [(f, n) for f, n in total.most_common() if not any(h in f for h in HARNESS)]
        owned = own.most_common(top)
        for i in range(top):
            left = owned[i] if i < len(owned) else ("", 0)
            right = wide[i] if i < len(wide) else ("", 0)
            lines.append(f"| {i + 1} | `{left[0]}` | {100 * left[1] / samples:.1f}% | "
                         f"`{right[0]}` | {100 * right[1] / samples:.1f}% |"
                         .replace("`` | 0.0%", " | -"))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2000, help="rows in the library")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=10, help="functions per table")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="PostgreSQL URL allowed to create and drop a scratch database")
    parser.add_argument("--raw", type=Path, help="also keep py-spy's raw output here")
    parser.add_argument("--write", type=Path, help="also write the summary into this Markdown file")
    args = parser.parse_args()

    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("py-spy not found: pip install -e '.[bench]' (it pins py-spy)")
    sys.path.insert(0, str(HERE))
    from backfill import (
        corpus_dir,
        fill_table,
        loopback_server,
        make_corpus,
        row_files,
        scratch_database,
    )

    files = make_corpus()
    names = row_files(files, args.rows, "mixed")
    with loopback_server(corpus_dir()) as (port, server_pid), \
            scratch_database(args.admin_url) as (db_url, _version), \
            tempfile.TemporaryDirectory(prefix="pixelgrade-profile-") as tmp:
        fill_table(db_url, [f"http://127.0.0.1:{port}/{n}" for n in names])
        config = {"db": db_url, "workers": args.workers, "batch_size": 100, "concurrency": 16,
                  "server_pid": server_pid, "work": tmp}
        raw = Path(tmp) / "profile.txt"
        print(f"profiling the end-to-end backfill of {args.rows:,} rows with py-spy ...",
              file=sys.stderr, flush=True)
        done = subprocess.run(
            [spy, "record", "--subprocesses", "--rate", str(args.rate), "--format", "raw",
             "--output", str(raw), "--", sys.executable, str(HERE / "backfill.py"),
             "--child", "e2e"],
            input=json.dumps(config), capture_output=True, text=True, check=False)
        if done.returncode != 0 or not raw.exists():
            sys.stderr.write(done.stderr)
            raise SystemExit(f"py-spy failed (exit {done.returncode}); on a container it "
                             "needs the ptrace capability (run as root or with "
                             "--cap-add SYS_PTRACE)")
        # py-spy prints its own lines on stdout too; the child's result is the JSON one.
        result = json.loads(next(line for line in reversed(done.stdout.splitlines())
                                 if line.startswith("{")))
        text = raw.read_text()
        if args.raw:
            args.raw.write_text(text)
    first = PROCESS.search(text)
    kinds = parse_raw(text, int(first.group(1)) if first else None)
    rate = args.rows / result["seconds"]
    version = subprocess.run([spy, "--version"], capture_output=True, text=True).stdout
    header = (f"py-spy {version.split()[-1]} at {args.rate} samples/s on the end-to-end "
              f"backfill of {args.rows:,} rows "
              f"({args.workers} scoring processes; {rate:.1f} images/s while profiled, "
              f"{result['report']['scored']:,} scored). Own time includes the C code a "
              "function calls. Command: `python bench/profile_backfill.py"
              f"{f' --rows {args.rows}' if args.rows != 2000 else ''}`")
    report = "\n".join([header, *summary(kinds, args.top)])
    print(report)
    if args.write:
        from docblock import write_block

        write_block(args.write, "profile", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
