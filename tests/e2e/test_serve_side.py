"""What ``pixelgrade serve`` tells the person in front of the gallery, in a real headless
Chromium at a laptop's width (1366 px) and a phone's (390 px):

* previews refused by the SSRF guard: one notice saying why and which ``--allow-host`` shows
  them, and with that flag the pictures themselves;
* a private gallery (``--protect-reads``) with the user's own token: the 401 page says what is
  needed and signs the browser in, after which pictures load and writes work without asking
  again; the token never reaches serve's output, access log included; a made-up token's
  printed address signs in too;
* "Newest" on a UUID-keyed table: by created_at, latest first, across infinite scroll; a
  UUID table without a creation time does not offer it.

Each library and server here is this module's own (started once, shared by both widths).
"""

from __future__ import annotations

import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.backfill.conftest import ImageServer, jpeg
from tests.e2e import harness

WIDTHS = {"laptop": {"width": 1366, "height": 768}, "phone": {"width": 390, "height": 844}}
TOKEN = "e2e-serve-side-4b2f90"


@pytest.fixture(params=list(WIDTHS), scope="module")
def viewport(request: pytest.FixtureRequest) -> dict[str, int]:
    return WIDTHS[request.param]


@pytest.fixture
def open_page(browser: Any, viewport: dict[str, int]) -> Iterator[Any]:
    """``open_page(base_url)``: a tab in a fresh context (no cookie, no stored token) at the
    viewport's size; uncaught script errors and console errors fail the test (a refused
    request, the 401 of a private page, is not one)."""
    contexts: list[Any] = []
    errors: list[str] = []

    def open_one(base_url: str) -> Any:
        context = browser.new_context(viewport=viewport, base_url=base_url)
        context.set_default_timeout(15_000)
        contexts.append(context)
        tab = context.new_page()
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.on("console", lambda message: errors.append(message.text)
               if message.type == "error"
               and not message.text.startswith("Failed to load resource") else None)
        return tab

    try:
        yield open_one
    finally:
        for context in contexts:
            context.close()
    assert not errors, f"errors on the page: {errors}"


def fits(page: Any, selector: str, width: int) -> None:
    """``selector`` is visible and inside the viewport's width, and nothing scrolls sideways."""
    box = page.locator(selector).bounding_box()
    assert box is not None and page.locator(selector).is_visible(), selector
    assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, (selector, box)
    assert page.evaluate("document.documentElement.scrollWidth") <= width, selector


def _sqlite_table(database: Path, key: str, created: bool) -> None:
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.execute(f"CREATE TABLE images ({key}, url TEXT"
                     + (", created_at TIMESTAMP" if created else "") + ")")


def _migrate(url: str, folder: Path) -> None:
    harness.pixelgrade("migrate", "--db", url, cwd=folder)


# -- previews refused by the network guard --------------------------------------------------


@pytest.fixture(scope="module")
def image_host() -> Iterator[ImageServer]:
    """A web server on loopback holding the images (a MinIO on this machine, say)."""
    server = ImageServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def loopback_library(tmp_path_factory: pytest.TempPathFactory,
                     image_host: ImageServer) -> tuple[str, Path]:
    folder = tmp_path_factory.mktemp("loopback-library")
    url = f"sqlite:///{folder / 'library.db'}"
    (folder / "local.jpg").write_bytes(jpeg())
    _sqlite_table(folder / "library.db", "id INTEGER PRIMARY KEY", created=False)
    with closing(sqlite3.connect(folder / "library.db")) as conn, conn:
        conn.executemany("INSERT INTO images (url) VALUES (?)",
                         [(image_host.url(p),) for p in ("/good.jpg", "/good.png",
                                                         "/other.jpg", "/good.webp")] * 3
                         + [("local.jpg",)])
    _migrate(url, folder)
    return url, folder


@pytest.fixture(scope="module")
def guarded(loopback_library: tuple[str, Path]) -> Iterator[harness.Server]:
    # Each server its own thumbnail cache: a picture cached while its host was allowed is
    # served from the cache after a restart without --allow-host.
    url, folder = loopback_library
    with harness.serve(url, folder, TOKEN, "--cache", str(folder / "cache-guarded")) as server:
        yield server


@pytest.fixture(scope="module")
def allowed(loopback_library: tuple[str, Path]) -> Iterator[harness.Server]:
    url, folder = loopback_library
    with harness.serve(url, folder, TOKEN, "--allow-host", "127.0.0.1",
                       "--cache", str(folder / "cache-allowed")) as server:
        yield server


CARD_IMAGES = "#grid li.card img"


def _loaded_images(page: Any) -> list[dict[str, Any]]:
    # Cards below the fold load lazily (a phone shows two or three): load them all now.
    page.eval_on_selector_all(CARD_IMAGES, "imgs => imgs.forEach(img => img.loading = 'eager')")
    page.wait_for_function(f"""() => [...document.querySelectorAll('{CARD_IMAGES}')]
        .every(img => img.complete)""")
    return page.eval_on_selector_all(CARD_IMAGES, """imgs => imgs.map(img => (
        {src: img.getAttribute('src'), width: img.naturalWidth,
         alt: img.getAttribute('alt')}))""")


def test_refused_previews_are_explained_once(open_page: Any, guarded: harness.Server,
                                             viewport: dict[str, int]) -> None:
    printed = " ".join(guarded.output().split())
    assert ("Previews of images on 127.0.0.1 (a loopback address) are refused by the network "
            "guard") in printed and "restart serve with --allow-host 127.0.0.1" in printed
    page = open_page(guarded.url)
    page.goto("/")
    notice = page.locator(".notice")
    assert notice.count() == 1
    text = notice.inner_text()
    assert "127.0.0.1" in text and "--allow-host 127.0.0.1" in text, text
    fits(page, ".notice", viewport["width"])
    # Every card on the image host has the placeholder; the local file has its picture.
    shown = _loaded_images(page)
    assert len(shown) == 13
    for image in shown:
        answer = page.request.get(image["src"])
        placeholder = answer.headers.get("x-pixelgrade-placeholder") == "1"
        assert placeholder == ("local.jpg" not in image["alt"]), image


def test_allowed_host_shows_the_pictures(open_page: Any, allowed: harness.Server) -> None:
    assert "refused by the network guard" not in allowed.output()
    page = open_page(allowed.url)
    page.goto("/")
    assert page.locator(".notice").count() == 0
    for image in _loaded_images(page):
        assert image["width"] > 0
        answer = page.request.get(image["src"])
        assert answer.headers["content-type"] == "image/jpeg", image
    assert page.locator(".notice").count() == 0  # still none once the thumbnails came


# -- a private gallery ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def private(loopback_library: tuple[str, Path]) -> Iterator[harness.Server]:
    url, folder = loopback_library
    with harness.serve(url, folder, TOKEN, "--protect-reads", "--allow-host", "127.0.0.1",
                       "--log-level", "info", "--cache", str(folder / "cache-private")) as server:
        yield server


def test_a_private_gallery_signs_the_browser_in(open_page: Any, private: harness.Server,
                                                viewport: dict[str, int]) -> None:
    printed = " ".join(private.output().split())
    assert f"Sign in at {private.url}/sign-in with your PIXELGRADE_API_TOKEN" in printed
    page = open_page(private.url)
    asked: list[str] = []
    page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))

    refused = page.goto("/images/1")
    assert refused is not None and refused.status == 401
    assert page.locator("h1").inner_text() == "401"
    message = page.locator("p.error").inner_text()
    assert "this browser needs the API token" in message
    assert "PIXELGRADE_API_TOKEN" in message, message
    fits(page, "form.sign-in", viewport["width"])
    fits(page, "p.error", viewport["width"])

    page.fill("#sign-in-token", "not the token")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert "not this server's API token" in page.locator("p.error").inner_text()

    page.fill("#sign-in-token", TOKEN)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    assert page.url == f"{private.url}/images/1"  # back where the browser was going
    picture = page.locator("figure img")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=picture.element_handle())
    # The token was kept for writes: re-score works without being asked for it.
    page.get_by_role("button", name="Re-score").click()
    page.locator(".rescore-status.ok").wait_for(timeout=60_000)
    assert page.locator(".rescore-status").inner_text().startswith("Re-scored: ")
    assert asked == []
    page.goto("/")
    assert len(_loaded_images(page)) == 13

    output = private.output()
    assert TOKEN not in output, "the token reached serve's output"
    assert '"GET /images/1 HTTP/1.1" 401' in output  # the access log is on


def test_the_printed_address_signs_in_and_is_not_logged(
        open_page: Any, private: harness.Server) -> None:
    page = open_page(private.url)
    page.goto(f"/?token={TOKEN}")
    assert "token" not in page.url
    assert page.locator("#grid li.card").count() == 13
    output = private.output()
    assert "GET /?token=<redacted> HTTP/1.1" in output and TOKEN not in output


@pytest.fixture(scope="module")
def made_up(loopback_library: tuple[str, Path]) -> Iterator[harness.Server]:
    with harness.serve(*loopback_library, "", "--protect-reads") as server:
        yield server


def test_a_made_up_token_is_in_the_printed_address(open_page: Any,
                                                   made_up: harness.Server) -> None:
    found = re.search(r"Open (http://\S+/\?token=\S+)", made_up.output())
    assert found, made_up.output()
    page = open_page(made_up.url)
    assert page.goto("/").status == 401
    assert "made up for this run" in page.locator("p.error").inner_text()
    page.goto(found.group(1))
    assert page.locator("#grid li.card").count() == 13


# -- "Newest" on UUID keys ---------------------------------------------------------------------

#: Creation times, several rows to each (ties), none in key order.
TIMES = [f"2024-0{1 + i % 6}-1{i % 3} 0{i % 4}:00:00" for i in range(60)]


@pytest.fixture(scope="module")
def dated_uuid_library(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, dict]:
    folder = tmp_path_factory.mktemp("dated-uuid-library")
    database = folder / "library.db"
    url = f"sqlite:///{database}"
    _sqlite_table(database, "id TEXT PRIMARY KEY", created=True)
    rows = {str(uuid.uuid4()): time for time in TIMES}
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.executemany("INSERT INTO images (id, url, created_at) VALUES (?, 'none.jpg', ?)",
                         list(rows.items()))
    _migrate(url, folder)
    return url, folder, rows


@pytest.fixture(scope="module")
def dated(dated_uuid_library: tuple[str, Path, dict]) -> Iterator[harness.Server]:
    url, folder, _ = dated_uuid_library
    with harness.serve(url, folder, TOKEN) as server:
        yield server


def _card_ids(page: Any) -> list[str]:
    """Every card's id, after infinite scroll has loaded them all."""
    for _ in range(20):
        more = page.locator("#grid li.more")
        if more.count() == 0:
            break
        shown = page.locator("#grid li.card").count()
        more.scroll_into_view_if_needed()
        page.wait_for_function(
            "n => document.querySelectorAll('#grid li.card').length > n", arg=shown)
    return page.eval_on_selector_all(
        "#grid li.card > a",
        "links => links.map(a => a.getAttribute('href').split('?')[0].split('/').pop())")


def test_newest_is_by_creation_time_on_uuid_keys(open_page: Any, dated: harness.Server,
                                                 dated_uuid_library: tuple[str, Path, dict],
                                                 viewport: dict[str, int]) -> None:
    _, _, rows = dated_uuid_library
    assert 'Sort: "Newest" is by created_at, latest first.' in " ".join(dated.output().split())
    page = open_page(dated.url)
    page.goto("/")
    labels = page.locator("#sort option").all_inner_texts()
    assert labels == ["Score, high first", "Score, low first", "Newest"]
    fits(page, "#sort", viewport["width"])
    page.select_option("#sort", label="Newest")
    page.wait_for_url(re.compile(r"sort=newest\b"))
    expected = [key for key, _ in sorted(rows.items(), key=lambda kv: (kv[1], kv[0]),
                                         reverse=True)]
    assert expected != sorted(rows, reverse=True), "key order should differ from age order"
    assert _card_ids(page) == expected  # 60 rows: two pages, the second by cursor


@pytest.fixture(scope="module")
def undated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Server]:
    folder = tmp_path_factory.mktemp("undated-uuid-library")
    database = folder / "library.db"
    _sqlite_table(database, "id TEXT PRIMARY KEY", created=False)
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.executemany("INSERT INTO images (id, url) VALUES (?, 'none.jpg')",
                         [(str(uuid.uuid4()),) for _ in range(5)])
    url = f"sqlite:///{database}"
    _migrate(url, folder)
    with harness.serve(url, folder, TOKEN) as server:
        yield server


def test_uuid_keys_without_a_time_offer_no_newest(open_page: Any,
                                                  undated: harness.Server) -> None:
    assert "pass --created-column NAME" in " ".join(undated.output().split())
    page = open_page(undated.url)
    page.goto("/")
    assert page.locator("#sort option").all_inner_texts() == ["Score, high first",
                                                             "Score, low first"]
    page.goto("/?sort=newest")  # an old link still works, and says what the order is
    assert page.locator("#sort option:checked").inner_text() == "Key order"
