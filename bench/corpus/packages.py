"""The Debian packages the real-photo corpus comes from: fetched, never installed.

Versions are pinned to Debian 12 (bookworm) so that every run scores the same bytes;
``manifest.csv`` names a file inside one of these packages for every corpus picture. Which
files are good photographs, graphics or flawed photographs was judged by eye (contact sheets
and 100% crops; ``../shared/notes/real-photos.md`` in the workplace has the first survey).

Kept out on purpose, for an independent check by others: ``mate-backgrounds``,
``ukui-wallpapers`` and ``opencv-doc``. Nothing here is ever used by pixelgrade at run time.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

#: package -> pinned version (Debian 12 "bookworm", main).
PACKAGES: dict[str, str] = {
    "desktop-base": "12.0.6+nmu1~deb12u1",
    "digikam-data": "4:7.9.0-1",
    "gcompris-qt-data": "3.1-2",
    "gnome-backgrounds": "43.1-1",
    "lomiri-wallpapers-16.04": "20.04.0-2",
    "lomiri-wallpapers-20.04": "20.04.0-2",
    "lxqt-themes": "1.2.0-1",
    "palapeli-data": "4:22.12.3-1",
    "plasma-workspace-wallpapers": "4:5.27.5-2",
    "sddm-theme-maldives": "0.19.0-5",
    "sway-backgrounds": "1.7-6",
    "tuxpaint-data": "1:0.9.28-sdl2-1",
    "xfdesktop4-data": "4.18.1-1",
}


class FetchError(RuntimeError):
    """A package could not be downloaded or unpacked; the message says what to try."""


def _deb(debs: Path, package: str) -> Path | None:
    found = sorted(debs.glob(f"{package}_*.deb"))
    return found[-1] if found else None


def fetch_packages(root: Path, packages: list[str]) -> dict[str, Path]:
    """Download (``apt-get download``) and unpack (``dpkg-deb -x``) ``packages`` under ``root``.

    Returns package -> the folder it was unpacked into. Already unpacked packages are reused,
    so only the first run needs the network (Debian's mirror, reachable here).
    """
    debs, unpacked = root / "debs", root / "pkgs"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not (unpacked / p / ".complete").exists()]
    to_download = [p for p in missing if _deb(debs, p) is None]
    if to_download:
        if shutil.which("apt-get") is None:
            raise FetchError("apt-get is not available: the corpus comes from Debian packages")
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        wanted = [f"{p}={PACKAGES[p]}" for p in to_download]
        done = subprocess.run(["apt-get", "download", *wanted], cwd=debs, capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise FetchError(
                f"apt-get download {' '.join(wanted)} failed: {done.stderr.strip()[-400:]}\n"
                "Check that Debian 12 (bookworm) is in the apt sources; a pinned version that "
                "left the mirror must be updated in bench/corpus/packages.py."
            )
    for package in missing:
        deb = _deb(debs, package)
        if deb is None:
            raise FetchError(f"{package}: no .deb in {debs} after apt-get download")
        target = unpacked / package
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
        (target / ".complete").touch()
    return {p: unpacked / p for p in packages}
