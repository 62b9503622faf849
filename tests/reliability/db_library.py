"""A library of cheap images and an ``images`` table over it, for the crash, fault and
concurrency tests (SQLite or PostgreSQL, the ``db_url`` fixture).

Images are small local files under ``root`` (no HTTP, so no private-network guard to pass):
five different photos at 1/8 size (each scores in about a millisecond, and each has its own
score, so a score written to the wrong row is caught), a file that is not an image (fails for
good: ``decode``), a path to nothing (fails for good: ``not_found``) and *flaky* paths under
``flaky``, which starts as a plain file, so reading ``flaky/x.png`` fails with ENOTDIR, an
``io`` error the backfill treats as transient; :meth:`Library.heal` turns ``flaky`` into a
folder of photos, as a network share coming back would.

Every UPDATE of a row is logged by a trigger (:func:`tests.stores.tables.count_updates`), so
"scored exactly once" and "never overwritten" are measured by the database itself.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from pixelgrade import samples
from pixelgrade.scoring import score_bytes
from pixelgrade.stores import SqlStore, TableSpec
from tests.stores import tables

PHOTOS = ("coffee.png", "chelsea.png", "astronaut.png", "coins.png", "rocket.jpg")


@cache
def small_png(name: str) -> bytes:
    rgb = samples.load_photo(name)
    return samples.encode(np.ascontiguousarray(rgb[::8, ::8]), "PNG")


@cache
def reference_score(name: str) -> int:
    """The score the backfill must write for ``name`` (scoring is deterministic)."""
    report = score_bytes(small_png(name))
    assert report.score is not None, f"{name} does not score: {report}"
    return int(report.score)


@dataclass
class Library:
    root: Path
    #: row id -> what the row must end as: ("scored", photo) or ("failed", kind).
    expected: dict[int, tuple[str, str]] = field(default_factory=dict)
    flaky_ids: list[int] = field(default_factory=list)

    def heal(self) -> None:
        """Make the flaky paths readable (``flaky`` becomes a folder of photos)."""
        flaky = self.root / "flaky"
        flaky.unlink()
        flaky.mkdir()
        for name in PHOTOS:
            (flaky / name).write_bytes(small_png(name))

    def scoreable(self) -> list[int]:
        return [i for i, (status, _) in self.expected.items() if status == "scored"]


def location(number: int) -> tuple[str, tuple[str, str], bool]:
    """Row ``number``'s path (relative to the root), its expected end and whether it is flaky."""
    photo = PHOTOS[number % len(PHOTOS)]
    if number % 23 == 0:
        return "broken.png", ("failed", "decode"), False
    if number % 31 == 0:
        return "gone/nothing.png", ("failed", "not_found"), False
    if number % 41 == 7:
        return f"flaky/{photo}", ("scored", photo), True
    return f"photos/{photo}", ("scored", photo), False


def make_library(url: str, root: Path, rows: int) -> Library:
    """Files under ``root`` and a ``pixelgrade init`` table of ``rows`` rows (ids 1..rows) with
    its UPDATEs counted."""
    (root / "photos").mkdir(parents=True)
    for name in PHOTOS:
        (root / "photos" / name).write_bytes(small_png(name))
    (root / "broken.png").write_bytes(b"this is not an image\n" * 8)
    (root / "flaky").write_bytes(b"a file where a folder should be\n")
    library = Library(root)
    values = []
    for number in range(1, rows + 1):
        path, expected, flaky = location(number)
        library.expected[number] = expected
        if flaky:
            library.flaky_ids.append(number)
        values.append({"id": number, "url": path})
    store = SqlStore(url, TableSpec(), must_exist=False, inspect=False)
    try:
        store.init()
    finally:
        store.close()
    with tables.connect(url) as conn:
        conn.execute(sa.text("INSERT INTO images (id, url) VALUES (:id, :url)"), values)
        if tables.is_postgres(url):  # rows the test adds later get the next ids
            conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('images', 'id'), "
                                 ":last)"), {"last": rows})
    tables.count_updates(url)
    return library


def reset_flaky(library: Library) -> None:
    """Undo :meth:`Library.heal` (for a test that runs the scenario again)."""
    flaky = library.root / "flaky"
    if flaky.is_dir():
        shutil.rmtree(flaky)
    flaky.write_bytes(b"a file where a folder should be\n")


@dataclass
class Audit:
    """What the table says after a run, against what the library expects."""

    lost: list[int]
    overwritten: list[int]
    wrong: list[tuple[int, Any, Any]]
    pending: list[int]
    updates: dict[int, int]


def audit(url: str, library: Library, *, others: dict[int, int] | None = None) -> Audit:
    """Compare the table with the library: ``lost`` are rows that can be scored but have no
    score; ``overwritten`` rows updated more than once; ``wrong`` rows whose status or score is
    not the expected one (``others``: rows someone else scored, id -> score,
    which must have kept that score)."""
    others = others or {}
    updates = {int(k): v for k, v in tables.updates(url).items()}
    found = tables.rows(url)
    lost, wrong, pending = [], [], []
    for number, (status, what) in library.expected.items():
        row = found[number]
        if number in others:
            if row["quality_score"] != others[number]:
                wrong.append((number, ("scored", others[number]),
                              (row["quality_status"], row["quality_score"])))
            continue
        if row["quality_score"] is None and row["quality_status"] is None:
            pending.append(number)
            if status == "scored":
                lost.append(number)
            continue
        if status == "scored":
            want: Any = ("scored", reference_score(what))
            got: Any = (row["quality_status"], row["quality_score"])
        else:  # the cause is checked in the error log (details keep it only for some kinds)
            want, got = ("failed", None), (row["quality_status"], row["quality_score"])
        if want != got:
            wrong.append((number, want, got))
    overwritten = sorted(n for n, count in updates.items() if count > 1)
    return Audit(lost, overwritten, wrong, pending, updates)
