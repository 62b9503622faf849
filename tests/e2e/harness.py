"""What the end-to-end tests and ``scripts/screenshots.py`` share: Debian's Chromium (installed
with apt when it is missing), a real ``pixelgrade serve`` in a subprocess on a free port, and a
small library scored by a real ``pixelgrade backfill``.

Playwright's Python package drives the browser, but never downloads one: ``playwright install``
fetches builds from a CDN this project cannot reach, so Chromium is the distribution's
(``/usr/bin/chromium``), launched through ``executable_path``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

CHROMIUM = Path("/usr/bin/chromium")
#: Debian packages: the browser; fonts so that text is drawn the same on every machine.
APT_PACKAGES = ("chromium", "fonts-liberation", "fonts-dejavu-core")
#: Root in a container has no user namespace for Chromium's sandbox.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1280, "height": 900}
#: Variables that would point ``pixelgrade serve`` at another database than the one given.
FOREIGN_VARIABLES = ("DATABASE_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY",
                     "PIXELGRADE_API_TOKEN")


#: When set, the tests that check a layout save a full-page screenshot of it in this folder
#: (``PIXELGRADE_E2E_SHOTS=/tmp/gallery-shots``), for a person to look at.
SHOTS_VARIABLE = "PIXELGRADE_E2E_SHOTS"


def screenshot(page: Any, name: str) -> Path | None:
    """A full-page PNG of ``page`` as ``<name>-<width>.png`` in the folder that
    :data:`SHOTS_VARIABLE` names (nothing when it is not set)."""
    folder = os.environ.get(SHOTS_VARIABLE)
    if not folder:
        return None
    path = Path(folder) / f"{name}-{page.viewport_size['width']}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


class Unavailable(Exception):
    """The browser (or what drives it) is missing and cannot be installed here."""


def ensure_chromium() -> Path:
    """``/usr/bin/chromium``, installed from Debian's packages first when it is missing (as
    root, with apt); :class:`Unavailable` says why when that cannot be done."""
    if CHROMIUM.exists():
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise Unavailable(f"{CHROMIUM} is missing and cannot be installed here (needs root and "
                          f"apt-get): run `apt-get install -y {' '.join(APT_PACKAGES)}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in ([apt, "update"], [apt, "install", "-y", *APT_PACKAGES]):
        print(f"e2e: {' '.join(command)}", file=sys.stderr, flush=True)
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True,
                                  timeout=900, check=False)
        except subprocess.TimeoutExpired as exc:
            raise Unavailable(f"`{' '.join(command)}` did not finish in 15 minutes") from exc
        if done.returncode != 0:
            raise Unavailable(f"`{' '.join(command)}` failed with exit code "
                              f"{done.returncode}:\n{(done.stdout + done.stderr)[-3000:]}")
    if not CHROMIUM.exists():
        raise Unavailable(f"apt-get installed {' '.join(APT_PACKAGES)}, but {CHROMIUM} is "
                          "still missing")
    return CHROMIUM


def launch(playwright: Any) -> Any:
    """A headless Debian Chromium under Playwright."""
    return playwright.chromium.launch(executable_path=str(ensure_chromium()),
                                      args=CHROMIUM_ARGS, headless=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pixelgrade(*args: str, cwd: Path, timeout: float = 300) -> str:
    """Run the ``pixelgrade`` command line (this interpreter's) and return what it printed."""
    done = subprocess.run([sys.executable, "-m", "pixelgrade", *args], cwd=cwd,
                          env=_clean_env({"COLUMNS": "200"}), capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pixelgrade {' '.join(args)} exited with {done.returncode}:\n"
                           f"{done.stdout}\n{done.stderr}")
    return done.stdout


def backfill(db_url: str, folder: Path) -> str:
    return pixelgrade("backfill", "--db", db_url, "--checkpoint",
                      str(folder / "backfill-checkpoint.json"), "--error-log",
                      str(folder / "backfill-errors.log"), cwd=folder)


@dataclass
class Server:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]


@contextmanager
def serve(db_url: str, folder: Path, token: str, *extra: str,
          ready_timeout: float = 45) -> Iterator[Server]:
    """``pixelgrade serve --db db_url`` on a free port with ``token`` as the API token (in
    ``folder``, so no ./.env applies), stopped on exit."""
    port = free_port()
    log = folder / f"serve-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pixelgrade", "serve", "--db", db_url, "--port", str(port),
             "--workers", "1", *extra], cwd=folder, stdout=out, stderr=subprocess.STDOUT,
            env=_clean_env({"PIXELGRADE_API_TOKEN": token, "COLUMNS": "200"}))
    server = Server(f"http://127.0.0.1:{port}", token, process, log)
    try:
        _wait_ready(server, ready_timeout)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    problem = "no answer"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"pixelgrade serve exited with {server.process.returncode}:\n"
                               f"{server.output()}")
        try:
            # With --protect-reads the counts need the token (a made-up one is not known yet:
            # its 401 says the server is up as well).
            headers = {"Authorization": f"Bearer {server.token}"} if server.token else {}
            response = httpx.get(f"{server.url}/api/counts", timeout=2, headers=headers)
            if response.status_code in (200, 401):
                return
            problem = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.TransportError as exc:
            problem = repr(exc)
        time.sleep(0.1)
    raise RuntimeError(f"pixelgrade serve was not ready in {timeout:.0f} s ({problem}):\n"
                       f"{server.output()}")


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_VARIABLES}
    env.update(extra)
    return env
