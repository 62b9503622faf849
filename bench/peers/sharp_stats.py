"""The original stack's analysis: Node.js + sharp ``metadata()`` and ``stats()`` per image.

Runs ``sharp-stats.mjs`` (beside this file) with one Node process per core, libvips limited to
one thread each, over files read from disk. ``npm ci`` installs the pinned sharp into
``bench/peers/node_modules`` (git-ignored) the first time; sharp's npm package carries its own
prebuilt libvips, so nothing else is downloaded. Without ``node``/``npm`` the run is reported
as missing, with the reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from peers import PeerRun

HERE = Path(__file__).resolve().parent
COMPUTES = ("`metadata()` + `stats()` (per-channel min/max/mean/stdev, entropy, sharpness, "
            "dominant colour) at full resolution")


def ensure_installed() -> str | None:
    """None when sharp is ready, else why it is not."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm not found on PATH (install Node.js >= 20 to run this peer)"
    if (HERE / "node_modules" / "sharp" / "package.json").is_file():
        return None
    done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"`npm ci` in bench/peers failed: {tail[0]}"
    return None


def run(folder: Path, names: list[str], processes: int) -> PeerRun:
    result = PeerRun("sharp (Node.js, the original stack)", COMPUTES, processes=processes)
    why = ensure_installed()
    if why:
        result.missing = why
        return result
    job = json.dumps({"folder": str(folder), "names": names, "processes": processes})
    done = subprocess.run(["node", str(HERE / "sharp-stats.mjs")], input=job,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        result.missing = f"sharp-stats.mjs failed: {done.stderr.strip()[-300:]}"
        return result
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    result.images, result.seconds = figures["images"], figures["seconds"]
    result.cpu_seconds = figures["cpu_seconds"]
    result.tool = f"sharp {figures['sharp']} (libvips {figures['vips']}; the original stack)"
    result.notes = [f"error: {e}" for e in figures["errors"]]
    return result
