"""End-to-end fixtures: a real ``pixelgrade serve`` over a small SQLite library, and a real
headless Chromium (Debian's, installed with apt when missing) driven by Playwright.

The browser, the server and the library live as long as this package's tests and no longer:
while Playwright's sync API is started, its event loop counts as running in the main thread, so
``asyncio.run`` in the tests after these would refuse to start.

As with PostgreSQL in ``tests/conftest.py``: when the browser or Playwright cannot be had, the
tests are skipped on a laptop and FAIL in CI (``CI=true``).

The library (:func:`library`) is the demo's hand-picked files (:func:`pixelgrade.demo.
build_library`: photos, damaged copies, SVGs, a truncated JPEG, an HTML page), each in the
table twice (so scores tie), scored by a real ``pixelgrade backfill``; then rows added after
the backfill, so still pending: one whose file exists and a dozen whose files are gone. That
makes more rows than one gallery page holds (48), so infinite scroll runs too.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.e2e import harness

TOKEN = "e2e-token-7c41d9"
HIGH_FROM, MEDIUM_FROM = 70, 40
#: Rows added after the backfill (still pending): one real file, the rest missing files.
PENDING_PHOTO = "featured/coffee.jpg"
MISSING = [f"uploads/2019/deleted-{i:02d}.jpg" for i in range(12)]


def unavailable(message: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"end-to-end tests need this in CI: {message}", pytrace=False)
    pytest.skip(message)


@dataclass
class Library:
    url: str
    folder: Path
    database: Path
    pending_photo_id: int

    def rows(self) -> list[dict[str, Any]]:
        """Every row as it is now: id, location, score, status, band (None: unscored) and the
        stored details (None: none)."""
        with closing(sqlite3.connect(self.database)) as conn:
            found = conn.execute(
                "SELECT id, url, quality_score, quality_status, quality_details FROM images "
                "ORDER BY id").fetchall()
        return [{"id": key, "location": location, "score": score,
                 "state": status or "pending", "band": band_of(score),
                 "details": json.loads(details) if details else None}
                for key, location, score, status, details in found]

    def row(self, key: int) -> dict[str, Any]:
        return next(r for r in self.rows() if r["id"] == key)


def band_of(score: int | None) -> str | None:
    if score is None:
        return None
    return "high" if score >= HIGH_FROM else "medium" if score >= MEDIUM_FROM else "low"


@pytest.fixture(scope="package")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    import sqlalchemy as sa

    from pixelgrade.demo import build_library
    from pixelgrade.stores import TableSpec, open_store

    folder = tmp_path_factory.mktemp("e2e-library")
    files = [str(path.relative_to(folder)) for path in build_library(folder / "featured")]
    database = folder / "library.db"
    url = f"sqlite:///{database}"
    store = open_store(url, TableSpec(), must_exist=False, inspect=False)
    try:
        store.init()
        with store.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO images (url) VALUES (:url)"),
                         [{"url": location} for location in files + files])
    finally:
        store.close()
    harness.backfill(url, folder)
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.executemany("INSERT INTO images (url) VALUES (?)",
                         [(PENDING_PHOTO,)] + [(m,) for m in MISSING])
        (pending_photo_id,) = conn.execute(
            "SELECT id FROM images WHERE url = ? AND quality_status IS NULL",
            (PENDING_PHOTO,)).fetchone()
    return Library(url, folder, database, pending_photo_id)


@pytest.fixture(scope="package")
def server(library: Library) -> Iterator[harness.Server]:
    with harness.serve(library.url, library.folder, TOKEN) as running:
        yield running


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        unavailable(f"Playwright is not installed ({exc}): pip install -e '.[test]'")
    try:
        harness.ensure_chromium()
    except harness.Unavailable as exc:
        unavailable(str(exc))
    with sync_playwright() as playwright:
        try:
            chromium = harness.launch(playwright)
        except Error as exc:
            unavailable(f"{harness.CHROMIUM} does not start under Playwright: {exc}")
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, server: harness.Server) -> Iterator[Any]:
    """A new page in a fresh context (no stored token), at the server's address. Uncaught
    JavaScript errors and errors in the console (a script or style refused by the content
    security policy, say) fail the test; a refused request (a 415 answer) is not one."""
    yield from _page(browser, server, harness.VIEWPORT)


#: The screen widths the layout is checked at: a laptop, and a phone held upright.
WIDTHS = {"1366px": {"width": 1366, "height": 900}, "390px": {"width": 390, "height": 844}}


@pytest.fixture(params=list(WIDTHS))
def sized_page(request: pytest.FixtureRequest, browser: Any,
               server: harness.Server) -> Iterator[Any]:
    """:func:`page` at each of :data:`WIDTHS` (the test runs once per width)."""
    yield from _page(browser, server, WIDTHS[request.param])


def _page(browser: Any, server: harness.Server, viewport: dict[str, int]) -> Iterator[Any]:
    context = browser.new_context(viewport=viewport, base_url=server.url)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on("console", lambda message: errors.append(message.text) if message.type == "error"
           and not message.text.startswith("Failed to load resource") else None)
    try:
        yield tab
    finally:
        context.close()
    assert not errors, f"errors on the page: {errors}"
