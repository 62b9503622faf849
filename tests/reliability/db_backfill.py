"""``python -m pixelgrade backfill`` as a subprocess over a ``db_library`` table: the real
command, started, killed and resumed by the crash and fault tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.reliability.db_library import Library
from tests.reliability.report import sized

BATCH_SIZE = 50
#: Longest a run may take (start-up included) on a loaded 2-core machine before a test fails.
RUN_TIMEOUT = float(sized(120, 900))


class Backfills:
    """Starts backfill runs over one table, each with its own output files in ``work``."""

    def __init__(self, url: str, library: Library, work: Path, *,
                 batch_size: int = BATCH_SIZE, workers: int = 2) -> None:
        self.url = url
        self.library = library
        self.work = work
        self.batch_size = batch_size
        self.workers = workers
        work.mkdir(parents=True, exist_ok=True)
        self.checkpoint = work / "checkpoint.json"
        self.error_log = work / "errors.log"
        self.started = 0

    def start(self, resume: bool) -> subprocess.Popen[bytes]:
        self.started += 1
        command = [sys.executable, "-m", "pixelgrade", "backfill", "--db", self.url,
                   "--root", str(self.library.root), "--workers", str(self.workers),
                   "--batch-size", str(self.batch_size), "--checkpoint", str(self.checkpoint),
                   "--error-log", str(self.error_log), "--json"]
        if resume:
            command.append("--resume")
        with (open(self.work / f"run{self.started}.out", "wb") as out,
              open(self.work / f"run{self.started}.err", "wb") as err):
            # A session of its own, so the scoring processes it leaves behind can be cleaned up.
            return subprocess.Popen(command, stdout=out, stderr=err, start_new_session=True,
                                    env={**os.environ, "COLUMNS": "200"})

    def finish(self, resume: bool) -> tuple[int, dict[str, Any] | None]:
        """Run to the end; the exit code and the JSON report (None if the run printed none)."""
        process = self.start(resume)
        try:
            code = process.wait(timeout=RUN_TIMEOUT)
        finally:
            kill(process)
        return code, self.report()

    def report(self) -> dict[str, Any] | None:
        lines = (self.work / f"run{self.started}.out").read_text().splitlines()
        return json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None

    def output(self) -> str:
        name = f"run{self.started}"
        return ((self.work / f"{name}.out").read_text(errors="replace")
                + (self.work / f"{name}.err").read_text(errors="replace"))


#: How long the scoring processes of a killed backfill may take to notice and exit.
ORPHAN_GRACE = 5.0


def kill(process: subprocess.Popen[bytes]) -> bool:
    """SIGKILL the backfill (its process only, as the OOM killer would); True if it was still
    running. Raises if its scoring processes outlive it by more than :data:`ORPHAN_GRACE`
    seconds (they are killed then, so later runs do not share the CPU with them)."""
    alive = process.poll() is None
    if alive:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    deadline = time.monotonic() + ORPHAN_GRACE
    while _group_alive(process.pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            raise AssertionError(f"processes of the killed backfill {process.pid} were still "
                                 f"running {ORPHAN_GRACE} s later")
        time.sleep(0.02)
    return alive


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
