"""Issue 7, part 1: a backfill killed with SIGKILL at random moments loses nothing and scores
no row twice.

The real command runs as a subprocess (``python -m pixelgrade backfill``) over a table of
``sized(2000, 10000)`` rows whose images are small local files (see ``db_library``): most
score, some fail for good (not an image, missing), some fail for now (ENOTDIR under ``flaky``,
healed after the fifth kill). It is killed with SIGKILL ten times, each time resumed with
``--resume``, then let finish. Kill moments are drawn from a seeded generator (the seed is
printed; set ``PIXELGRADE_CRASH_SEED`` to replay one): three during start-up (a random delay
after launch), three as soon as the table shows the run's k-th commit (k = 1..2; polled every
millisecond, so the kill often falls between a commit and its checkpoint), four mid-run (after
the run's k-th checkpoint, k = 1..3, plus a random delay of up to 40 ms, which lands in the next
batches' scoring or writes). Where each kill landed is measured and recorded.

Checked after every kill: the checkpoint file parses, no row has been updated twice, and the
killed run's scoring processes exit by themselves within 5 s (``db_backfill.kill``). At the
end: every row that can be scored is scored once with its photo's score (a database trigger
counts UPDATEs, so an overwrite is seen), failed rows have status ``failed`` and an error-log
line with their cause, and no row appears twice in the error log for the same attempt (which
would mean one run retried it twice).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from pixelgrade.backfill import checkpoint as checkpoints
from pixelgrade.backfill.errorlog import ErrorLog
from pixelgrade.stores import database_url
from tests.reliability.db_backfill import RUN_TIMEOUT, Backfills, kill
from tests.reliability.db_library import audit, make_library
from tests.reliability.report import record, sized
from tests.stores import tables

KILLS = 10
STARTUP_KILLS = 3
#: Kills right after the database shows a new commit, before the checkpoint can follow it.
WRITE_KILLS = 3
HEAL_AFTER_KILL = 5


def _seed() -> int:
    return int(os.environ.get("PIXELGRADE_CRASH_SEED") or time.time_ns() % 1_000_000)


class Runs(Backfills):
    """Backfill runs to kill, and the moments to kill them at."""

    def stamp(self) -> int:
        try:
            return self.checkpoint.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def wait_commits(self, process: subprocess.Popen[bytes], commits: int) -> int:
        """Wait until the checkpoint has changed ``commits`` times (or the run ended)."""
        seen, last = 0, self.stamp()
        deadline = time.monotonic() + RUN_TIMEOUT
        while seen < commits and process.poll() is None:
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.003)
            now = self.stamp()
            if now != last:
                seen, last = seen + 1, now
        return seen

    def wait_write(self, process: subprocess.Popen[bytes], commits: int) -> int:
        """Wait until the table shows ``commits`` new committed batches (polling the UPDATE log
        as fast as it can), to kill between a commit and the checkpoint that follows it."""
        engine = sa.create_engine(database_url(self.url))
        try:
            with engine.connect() as conn:
                def written() -> int:
                    count = conn.execute(sa.text("SELECT count(*) FROM row_updates")).scalar_one()
                    conn.rollback()
                    return int(count)
                seen, last = 0, written()
                deadline = time.monotonic() + RUN_TIMEOUT
                while seen < commits and process.poll() is None:
                    assert time.monotonic() < deadline, "the run made no progress"
                    time.sleep(0.001)
                    now = written()
                    if now != last:
                        seen, last = seen + 1, now
                return seen
        finally:
            engine.dispose()


def _ahead_of_checkpoint(url: str, cursor: Any) -> bool:
    """Rows past the checkpoint's cursor already committed: the kill fell between a batch's
    commit and its checkpoint (the window the resume must handle by the write guard)."""
    updated = [int(k) for k in tables.updates(url)]
    return any(cursor is None or number > int(cursor) for number in updated)


def test_sigkill_at_random_moments_then_resume(db_url: str, tmp_path: Path) -> None:
    rows = sized(2000, 10000)
    seed = _seed()
    print(f"crash seed {seed} (replay with PIXELGRADE_CRASH_SEED={seed})")
    rng = random.Random(seed)
    backend = "postgresql" if tables.is_postgres(db_url) else "sqlite"
    library = make_library(db_url, tmp_path / "library", rows)
    work = tmp_path / "work"
    work.mkdir()
    runs = Runs(db_url, library, work, workers=1)
    plans = (["startup"] * STARTUP_KILLS + ["write"] * WRITE_KILLS
             + ["mid"] * (KILLS - STARTUP_KILLS - WRITE_KILLS))
    rng.shuffle(plans)
    started = time.monotonic()
    kills, landed = 0, Counter[str]()
    for number, plan in enumerate(plans, start=1):
        launched = time.monotonic()
        updated_before = sum(tables.updates(db_url).values())
        stamp_before = runs.stamp()
        process = runs.start(resume=number > 1)
        if plan == "startup":
            delay = rng.uniform(0.0, 0.6)
            time.sleep(delay)
            moment = f"{delay * 1000:.0f} ms after launch"
        elif plan == "write":
            wanted = rng.randint(1, 2)
            runs.wait_write(process, wanted)
            moment = f"as soon as commit {wanted} showed in the table"
        else:
            wanted, delay = rng.randint(1, 3), rng.uniform(0.0, 0.04)
            runs.wait_commits(process, wanted)
            time.sleep(delay)
            moment = f"{delay * 1000:.0f} ms after commit {wanted}"
        killed = kill(process)
        assert killed, (f"kill {number} ({moment}) came after the run ended:\n"
                        f"{runs.output()}")
        kills += 1
        saved = checkpoints.load(runs.checkpoint)  # raises if the kill left it unreadable
        cursor = saved.cursor if saved is not None else None
        if (sum(tables.updates(db_url).values()) == updated_before
                and runs.stamp() == stamp_before):
            landed["before_first_commit"] += 1
        elif _ahead_of_checkpoint(db_url, cursor):
            landed["between_commit_and_checkpoint"] += 1
        else:
            landed["in_batch"] += 1
        twice = [k for k, n in tables.updates(db_url).items() if n > 1]
        assert not twice, f"after kill {number} ({moment}) rows updated twice: {twice[:10]}"
        print(f"kill {number}: {plan}, {moment} ({time.monotonic() - launched:.1f} s after "
              f"launch), checkpoint cursor {cursor}")
        if number == HEAL_AFTER_KILL:
            library.heal()

    resumes, finished, retried = 0, False, 0
    while not finished:
        resumes += 1
        assert resumes <= 3, "three resumes after the last kill and still not finished"
        code, report = runs.finish(resume=True)
        assert code == 0 and report, f"the final --resume failed ({code}):\n{runs.output()}"
        finished = report["finished"] and report["retry_later"] == 0
        retried += report["retried_from_error_log"]
    seconds = time.monotonic() - started

    result = audit(db_url, library)
    log = ErrorLog(runs.error_log).read()
    attempts = Counter((json.dumps(r["id"]), r["attempt"]) for r in log)
    duplicates = sorted(key for key, n in attempts.items() if n > 1)
    permanent = {r["id"]: r["kind"] for r in log if not r["transient"]}
    unrecorded = [n for n, (status, kind) in library.expected.items()
                  if status == "failed" and permanent.get(n) != kind]
    record("crash_kill", backend=backend, rows=rows, kills=kills, resumes=kills + resumes - 1,
           final_runs=resumes, seed=seed, transient_rows=len(library.flaky_ids),
           retried_from_error_log_at_the_end=retried, lost=len(result.lost),
           overwritten=len(result.overwritten), wrong=len(result.wrong),
           duplicates=len(duplicates), failures_not_logged=len(unrecorded),
           kills_before_first_commit=landed["before_first_commit"],
           kills_between_commit_and_checkpoint=landed["between_commit_and_checkpoint"],
           kills_in_batch=landed["in_batch"], seconds=round(seconds, 1))
    print(f"{backend}: {rows} rows, {kills} kills ({dict(landed)}), {resumes} final runs, "
          f"{seconds:.1f} s")
    assert not result.lost, f"rows never scored: {result.lost[:20]}"
    assert not result.overwritten, f"rows written more than once: {result.overwritten[:20]}"
    assert not result.wrong, f"rows with the wrong result: {result.wrong[:20]}"
    assert not duplicates, f"rows logged twice for one attempt: {duplicates[:20]}"
    assert not unrecorded, f"failed rows without their error-log line: {unrecorded[:20]}"
    # Every row was written exactly once: the trigger saw one UPDATE per row.
    assert result.updates == {n: 1 for n in library.expected}


def test_an_append_after_a_torn_line_starts_a_line_of_its_own(tmp_path: Path) -> None:
    """A kill can cut an append short; the next run's lines must not be glued to it."""
    from pixelgrade.backfill.errorlog import ErrorRecord

    log = ErrorLog(tmp_path / "errors.log")
    log.append([ErrorRecord(1, "a.png", "io", "cannot read", True, 1, "t")])
    with open(log.path, "a", encoding="utf-8") as handle:
        handle.write('{"id": 2, "url": "b.p')  # what a kill mid-append leaves
    log.append([ErrorRecord(3, "c.png", "decode", "not an image", False, 1, "t")])
    assert [r["id"] for r in log.read()] == [1, 3]
    assert log.retry_ids() == [1]
