"""The gallery explains itself (issue 14): cards name the file and the main issue; the image
page says what limits the score and how the total is made, names the file and links its
original, leads to the previous and next image of the gallery's order, and labels failed
rows; the API docs, the icon and the re-score's answer need nothing from elsewhere."""

from __future__ import annotations

import html as html_text
import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from pixelgrade.stores.base import Outcome
from pixelgrade.web import create_app
from tests.web.conftest import TOKEN, Library, all_rows, reference_order, settings_for


def card(html: str, key: Any) -> str:
    """The HTML of the card of image ``key``."""
    found = re.search(rf'<li class="card">\s*<a href="/images/{key}[?"].*?</li>', html,
                      flags=re.DOTALL)
    assert found, f"no card for image {key}"
    return found.group(0)


def text(fragment: str) -> str:
    """What a person reads in ``fragment``: tags dropped, spaces squeezed, entities decoded."""
    return html_text.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment))).strip()


@pytest.fixture
def whole_client(library: Library, pool: Any) -> Iterator[TestClient]:
    """A client whose gallery pages hold every image of the library at once."""
    app = create_app(library.store, settings_for(library, page_size=100), pool=pool)
    with TestClient(app) as test_client:
        yield test_client


def test_cards_name_the_file_and_say_the_main_issue(whole_client: TestClient,
                                                    library: Library) -> None:
    client = whole_client
    html = client.get("/?sort=newest").text
    blurry = card(html, library.blurry_id)  # Low: its worst issue, label first
    assert '<p class="name" title="photos/blurry.png">blurry.png</p>' in blurry
    assert re.search(r'<p class="issue" title="blurry: nothing is in focus[^"]*"><strong>'
                     r"blurry</strong>: nothing is in focus", blurry), blurry
    medium = card(html, library.photo_id)  # Medium: the same, its one issue
    assert "<strong>low resolution</strong>: 300x200" in medium
    missing = card(html, library.missing_id)  # unscored: the reason, as before
    assert "deleted.jpg" in missing and "<strong>pending</strong>: not scored yet" in missing
    # Rows scored without issues or summary recorded (before scorer version 2) say so.
    low = client.get("/?band=low&sort=score_asc").text
    old = card(low, 8)
    assert "none.jpg" in old and "re-score to see why" in old
    high = client.get("/?band=high").text
    assert "no issues found" in card(high, 9) and 'class="issue"' not in card(high, 9)


def test_the_api_lists_the_same_file_name_and_main_issue(client: TestClient,
                                                         library: Library) -> None:
    items = {i["id"]: i for i in client.get("/api/images", params={
        "sort": "newest", "limit": 200}).json()["items"]}
    assert items[library.blurry_id]["file_name"] == "blurry.png"
    assert items[library.blurry_id]["main_issue"].startswith("blurry: nothing is in focus")
    assert items[library.svg_id]["file_name"] == "logo.svg"
    assert items[library.svg_id]["main_issue"] is None
    one = client.get(f"/api/images/{library.photo_id}").json()
    assert one["file_name"] == "coffee.jpg" and one["main_issue"].startswith("low resolution")


def test_image_page_says_what_limits_the_score_and_how_the_total_is_made(
        client: TestClient, library: Library) -> None:
    page = client.get(f"/images/{library.blurry_id}").text
    how = page[page.index('<section class="how"'):page.index("</section>",
                                                             page.index('class="how"'))]
    assert "How the score is made" in how
    assert re.search(r"<strong>What limits it:</strong> Sharpness \(0\) and resolution "
                     r"\(44\)\.</p>", how), how
    # The scorer's sentence, capitalised (a sum gets a line of its own: tests/web/
    # test_wording.py and the e2e test, whose library has such images).
    assert re.search(r"<strong>How the total is made:</strong> Each group counts its worst "
                     r"sub-score; the worst group \(detail: sharpness 0\) counts fully, the "
                     r"others are perfect: 0\.</p>", how), how
    # Each component names its group, which the sentence refers to; the weights are explained.
    assert '<th scope="row">sharpness<span class="group">detail</span></th>' in page
    assert "Weight: how the sub-score counts in the total" in page
    # A row scored before the scorer recorded these says so and what to do.
    old = client.get("/images/1").text
    assert "did not record what limits it or how the total is made: re-score" in old


def test_image_page_names_the_file_and_links_the_original(client: TestClient,
                                                          library: Library) -> None:
    page = client.get(f"/images/{library.photo_id}").text
    assert '<h1><span class="file-name">coffee.jpg</span>' in page
    assert "<title>coffee.jpg (image" in page
    assert f'<a class="original" href="/originals/{library.photo_id}">' in page
    original = client.get(f"/originals/{library.photo_id}")
    assert original.status_code == 200 and original.headers["content-type"] == "image/jpeg"
    assert original.content == (library.root / "photos" / "coffee.jpg").read_bytes()
    assert original.headers["content-disposition"] == "inline; filename*=UTF-8''coffee.jpg"
    assert "sandbox" in original.headers["content-security-policy"]


def test_originals_that_are_not_pictures_are_downloads_and_errors_explain(
        client: TestClient, library: Library) -> None:
    svg = client.get(f"/originals/{library.svg_id}")  # may hold script: never shown here
    assert svg.status_code == 200
    assert svg.headers["content-type"] == "application/octet-stream"
    assert svg.headers["content-disposition"].startswith("attachment;")
    missing = client.get(f"/originals/{library.missing_id}")
    assert missing.status_code == 404
    assert "'photos/deleted.jpg' still leads to the file" in text(missing.text)
    assert str(library.root) not in missing.text  # no folder of this server named
    assert client.get("/originals/424242").status_code == 404


def walk_links(client: TestClient, start: Any, band: str, sort: str, rel: str) -> list[str]:
    """Image ids met following the ``rel`` (next or prev) links from image ``start``."""
    seen = [str(start)]
    url = f"/images/{start}?band={band}&sort={sort}"
    for _ in range(100):
        page = client.get(url).text
        found = re.search(rf'rel="{rel}" href="(/images/(\d+)[^"]*)"', page)
        if not found:
            return seen
        url, key = html_text.unescape(found.group(1)), found.group(2)
        seen.append(key)
    raise AssertionError("the links never ended")


@pytest.mark.parametrize(("band", "sort"), [("all", "score_desc"), ("medium", "score_asc"),
                                            ("all", "newest"), ("unscored", "score_desc"),
                                            ("high", "score_desc")])
def test_previous_and_next_follow_the_gallery_order(client: TestClient, library: Library,
                                                    band: str, sort: str) -> None:
    expected = [str(i) for i in reference_order(all_rows(library.store), band, sort)]
    assert walk_links(client, expected[0], band, sort, "next") == expected
    assert walk_links(client, expected[-1], band, sort, "prev") == expected[::-1]
    first = client.get(f"/images/{expected[0]}?band={band}&sort={sort}").text
    assert '<span class="prev none">' in first  # the first image has no previous one
    back = f'href="/?band={band}&amp;sort={sort}"' if (band, sort) != ("all", "score_desc") \
        else 'href="/"'
    assert f'<a class="back" {back}>' in first
    # Cards lead to image pages that carry their band and sort.
    grid = client.get(f"/?band={band}&sort={sort}").text
    suffix = "" if (band, sort) == ("all", "score_desc") else f"?band={band}&amp;sort={sort}"
    assert f'href="/images/{expected[0]}{suffix}"' in grid


def test_an_image_outside_the_band_gets_the_bands_images_around_it(
        client: TestClient, library: Library) -> None:
    """Re-scored out of the band it was opened from: its neighbours are where it would be."""
    high = [str(i) for i in reference_order(all_rows(library.store), "high", "score_desc")]
    page = client.get(f"/images/{library.blurry_id}?band=high&sort=score_desc").text  # score 0
    assert re.search(rf'rel="prev" href="/images/{high[-1]}\?', page)
    assert '<span class="next none">' in page
    bad = client.get(f"/images/{library.photo_id}?band=best")
    assert bad.status_code == 400 and "unknown band 'best'" in text(bad.text)


def test_failed_rows_are_labelled_failed(client: TestClient, library: Library) -> None:
    page = client.get("/images/11").text  # failed: file not found
    heading = page[page.index("<h1>"):page.index("</h1>")]
    assert "N/A" in heading and '<span class="state-label state-failed">failed</span>' in heading
    assert "<dt>Failed</dt>" in page and "<dt>Scored</dt>" not in page
    skipped = client.get("/images/12").text
    assert '<span class="state-label state-skipped">skipped</span>' in skipped
    scored = client.get(f"/images/{library.photo_id}").text
    assert "state-label" not in scored and "<dt>Scored</dt>" in scored


def test_api_docs_are_served_from_the_installed_package(client: TestClient) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), assets
    assert "cdn" not in page.text.lower()
    script = client.get("/static/swagger-ui/swagger-ui-bundle.js")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text[:200_000]
    assert "javascript" in script.headers["content-type"]
    style = client.get("/static/swagger-ui/swagger-ui.css")
    assert style.status_code == 200 and "text/css" in style.headers["content-type"]
    assert client.get("/api/openapi.json").json()["paths"]


def test_favicon_is_an_icon_drawn_here(client: TestClient) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    picture = Image.open(io.BytesIO(icon.content))
    assert picture.format == "ICO" and (32, 32) in picture.info["sizes"]
    for path in ("/", "/stats", "/images/1"):
        assert '<link rel="icon" href="/favicon.ico"' in client.get(path).text, path
    assert 'href="/favicon.ico"' in client.get("/api/docs").text


def test_favicon_and_docs_assets_are_open_when_reads_are_protected(
        library: Library, pool: Any) -> None:
    app = create_app(library.store, settings_for(library, protect_reads=True), pool=pool)
    with TestClient(app) as private:
        assert private.get("/").status_code == 401
        assert private.get("/favicon.ico").status_code == 200
        assert private.get("/static/swagger-ui/swagger-ui.css").status_code == 200
        assert private.get("/api/docs").status_code == 401
        assert private.get(f"/originals/{library.photo_id}").status_code == 401
        ok = private.get(f"/originals/{library.photo_id}?token={TOKEN}")
        assert ok.status_code == 200 and ok.headers["cache-control"].startswith("private")


def test_image_page_result_section_is_what_rescore_swaps_in(client: TestClient,
                                                            library: Library) -> None:
    """The re-score button replaces ``#result`` with the server's new rendering of it: the
    section holds the badge, the verdict, the issues and the components, and says the score
    it shows (the script compares it with the new one)."""
    library.store.set_result(Outcome(library.photo_id, "scored", 44, {"format": "JPEG"}))
    page = client.get(f"/images/{library.photo_id}").text
    result = page[page.index('<div class="result" id="result"'):page.index("rescore-controls")]
    assert 'data-score="44"' in result and 'class="verdict"' in result and "<h1>" in result
    assert "button" not in result  # the button stays, with its listener
    pending = client.get(f"/images/{library.pending_photo_id}").text
    assert 'id="result" data-score=""' in pending
