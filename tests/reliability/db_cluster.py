"""A private PostgreSQL 15 cluster for one test, so the test may restart it.

``initdb`` and ``pg_ctl`` refuse to run as root; when the tests run as root (CI containers), the
commands run as the ``postgres`` user through ``runuser`` in a temporary folder that user owns.
The cluster listens on 127.0.0.1 at a free port with trust authentication and is stopped
(``-m immediate``) and deleted afterwards. Without the PostgreSQL 15 binaries the test is
skipped on a laptop and FAILS in CI (``CI=true``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path(os.environ.get("PIXELGRADE_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Cluster:
    folder: Path
    port: int
    run_as: str | None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str, timeout: float = 60.0) -> str:
        return self._run(str(BIN / "pg_ctl"), "-D", str(self.folder / "data"), *args,
                         timeout=timeout)

    def start(self) -> None:
        self.pg_ctl("start", "-w", "-l", str(self.folder / "server.log"), "-o",
                    self._options())

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every session is cut, the server is down a moment."""
        self.pg_ctl("restart", "-m", "fast", "-w", "-l", str(self.folder / "server.log"),
                    "-o", self._options())

    def _options(self) -> str:
        return (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c shared_buffers=16MB")

    def _run(self, *command: str, timeout: float = 60.0) -> str:
        full = ["runuser", "-u", self.run_as, "--", *command] if self.run_as else list(command)
        done = subprocess.run(full, capture_output=True, text=True, timeout=timeout,
                              cwd=self.folder)
        if done.returncode != 0:
            log = self.folder / "server.log"
            raise AssertionError(
                f"{' '.join(command)} failed ({done.returncode}): {done.stdout}{done.stderr}"
                + (log.read_text()[-2000:] if log.exists() else ""))
        return done.stdout


@contextmanager
def private_cluster() -> Iterator[Cluster]:
    """Start a fresh cluster; yields it, stops and deletes it afterwards."""
    if not (BIN / "initdb").exists():
        message = (f"PostgreSQL 15 binaries not found in {BIN} (set PIXELGRADE_PG_BIN, or "
                   "install postgresql-15)")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    run_as = None
    folder = Path(tempfile.mkdtemp(prefix="pixelgrade-pg-"))
    if os.geteuid() == 0:
        run_as = "postgres"
        owner = pwd.getpwnam(run_as)
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    cluster = Cluster(folder, _free_port(), run_as)
    started = False
    try:
        cluster._run(str(BIN / "initdb"), "-D", str(folder / "data"), "-A", "trust",
                     "-U", "postgres", "--no-sync", timeout=120)
        cluster.start()
        started = True
        yield cluster
    finally:
        if started:
            with suppress(AssertionError):
                cluster.pg_ctl("stop", "-m", "immediate", "-w")
        shutil.rmtree(folder, ignore_errors=True)
