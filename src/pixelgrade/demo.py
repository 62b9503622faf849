"""A small sample library for ``pixelgrade demo``: real photos, damaged copies and bad files.

The photos are scikit-image's bundled samples (no download). Each damaged copy carries one known
defect, so the demo shows that the score and the issues name what a person would see.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from pixelgrade import samples

#: (file name, photo, distortion or None for the untouched photo, severity)
_LIBRARY: tuple[tuple[str, str, str | None, int], ...] = (
    ("astronaut.jpg", "astronaut.png", None, 0),
    ("coffee.jpg", "coffee.png", None, 0),
    ("motorcycle.jpg", "motorcycle_left.png", None, 0),
    ("rocket.jpg", "rocket.jpg", None, 0),
    ("camera.png", "camera.png", None, 0),
    ("astronaut-blurry.png", "astronaut.png", "gaussian_blur", 3),
    ("motorcycle-shaken.png", "motorcycle_left.png", "motion_blur", 3),
    ("coffee-noisy.png", "coffee.png", "gaussian_noise", 3),
    ("camera-jpeg-q10.jpg", "camera.png", "jpeg", 4),
    ("chelsea-dark.png", "chelsea.png", "underexposure", 4),
    ("coffee-blown-out.png", "coffee.png", "overexposure", 5),
    ("astronaut-washed-out.png", "astronaut.png", "contrast_loss", 4),
    ("motorcycle-thumbnail.png", "motorcycle_left.png", "downscale", 4),
    ("rocket-enlarged-thumbnail.png", "rocket.jpg", "upscaled_low_res", 4),
)

_SVG = (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" '
        b'height="64"><circle cx="32" cy="32" r="30" fill="#e63"/></svg>\n')
_HTML = (b"<!DOCTYPE html><html><head><title>404 Not Found</title></head>"
         b"<body><h1>Not Found</h1></body></html>\n")


def build_library(folder: Path) -> list[Path]:
    """Write the sample library into ``folder`` (created if needed) and return the files."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def write(name: str, data: bytes) -> None:
        path = folder / name
        path.write_bytes(data)
        written.append(path)

    for name, photo, distortion, severity in _LIBRARY:
        rgb = samples.load_photo(photo)
        if distortion is None:
            data = samples.encode(rgb, "JPEG", quality=92) if name.endswith(".jpg") \
                else samples.encode(rgb)
        else:
            data = samples.DISTORTIONS[distortion](rgb, severity)
        write(name, data)

    write("placeholder-blank.png", samples.encode(np.full((600, 800, 3), 231, np.uint8)))
    write("logo.svg", _SVG)
    write("logo.svgz", gzip.compress(_SVG, mtime=0))
    whole = samples.encode(samples.load_photo("coffee.png"), "JPEG", quality=90)
    write("upload-interrupted.jpg", whole[: len(whole) // 3])
    write("missing-image.jpg", _HTML)
    return written


#: Severities of each distortion in the demo database's library (1 = light, 5 = heavy).
CORPUS_SEVERITIES = (1, 3, 5)
#: Rows of the demo database that point at files that do not exist (a deleted upload).
MISSING_FILES = ("uploads/2019/deleted-by-user.jpg", "uploads/2020/lost-in-migration.png")


def build_corpus(folder: Path) -> list[Path]:
    """Every sample photo untouched and with each distortion at light, medium and heavy
    severity: 10 + 10 x 10 x 3 = 310 files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for photo in samples.PHOTOS:
        rgb = samples.load_photo(photo)
        stem = photo.rsplit(".", 1)[0]
        path = folder / f"{stem}.jpg"
        path.write_bytes(samples.encode(rgb, "JPEG", quality=92))
        written.append(path)
        for distortion, damage in samples.DISTORTIONS.items():
            for severity in CORPUS_SEVERITIES:
                data = damage(rgb, severity)
                suffix = {b"\xff\xd8": "jpg", b"RI": "webp"}.get(data[:2], "png")
                path = folder / f"{stem}-{distortion}-{severity}.{suffix}"
                path.write_bytes(data)
                written.append(path)
    return written


def build_database(folder: Path) -> tuple[str, int]:
    """The demo's SQLite library: ``folder/library.db`` with an ``images`` table whose rows
    point (by relative path) at the sample files, a few bad files and a few missing ones; no
    row has a score yet. Returns the database URL and the row count. Rebuilt from scratch."""
    from pixelgrade.stores import TableSpec, open_store

    folder.mkdir(parents=True, exist_ok=True)
    database = folder / "library.db"
    for stale in (database, folder / "backfill-checkpoint.json", folder / "backfill-errors.log"):
        stale.unlink(missing_ok=True)
    files = build_library(folder / "featured") + build_corpus(folder / "photos")
    locations = [str(path.relative_to(folder)) for path in files] + list(MISSING_FILES)
    url = f"sqlite:///{database}"
    store = open_store(url, TableSpec(), must_exist=False, inspect=False)
    try:
        store.init()
        import sqlalchemy as sa

        with store.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO images (url) VALUES (:url)"),
                         [{"url": location} for location in locations])
    finally:
        store.close()
    return url, len(locations)
