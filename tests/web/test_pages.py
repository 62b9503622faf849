"""The HTML pages and the pictures: grid with badges and chips, infinite-scroll fragments, the
image page, the stats page's SVG charts, thumbnails (cached, small, never the original) and
placeholders instead of errors."""

from __future__ import annotations

import io
import re

from fastapi.testclient import TestClient
from PIL import Image

from tests.web.conftest import Library, all_rows, reference_order

#: A card's link to its image page (carrying the band and sort unless they are the defaults).
CARD_LINK = r'href="/images/(\d+)(?:\?band=\w+&amp;sort=\w+)?"'


def test_gallery_grid_chips_and_badges(client: TestClient, library: Library) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    html = page.text
    counts = client.get("/api/counts").json()
    for band, label in (("all", "All"), ("high", "High"), ("unscored", "Unscored")):
        assert re.search(rf'chip-{band}"[^>]*>{label} <span class="count">{counts[band]}<',
                         html), band
    # page_size=5 in these tests: the five best, badges coloured by band, then a next link.
    expected = reference_order(all_rows(library.store), "all", "score_desc")[:5]
    assert re.findall(r'href="/images/(\d+)"', html) == [str(i) for i in expected]
    assert 'class="badge band-high"' in html
    assert 'rel="next"' in html
    assert "/thumbs/9/thumb.jpg" in html  # the grid shows thumbnails, never the file


def test_unscored_chip_shows_na_and_why(client: TestClient) -> None:
    html = client.get("/?band=unscored&sort=score_asc").text
    assert "N/A" in html and 'class="badge neutral"' in html
    assert "<strong>failed</strong>: file not found: gone.jpg" in html
    assert "<strong>skipped</strong>: vector image (SVG)" in html
    assert "<strong>pending</strong>" in html


def test_next_pages_as_fragments_follow_on(client: TestClient, library: Library) -> None:
    expected = reference_order(all_rows(library.store), "medium", "score_asc")
    html = client.get("/?band=medium&sort=score_asc").text
    ids = re.findall(CARD_LINK, html)
    while (more := re.search(r'class="next" rel="next" href="([^"]+)"', html)):
        html = client.get(more.group(1).replace("&amp;", "&") + "&fragment=1").text
        assert "<html" not in html  # only the cards and the next link
        ids += re.findall(CARD_LINK, html)
    assert ids == [str(i) for i in expected]


def test_everything_is_escaped(client: TestClient, library: Library) -> None:
    key = library.store.insert_image('<script>alert("x")</script>.jpg')
    html = client.get("/?sort=newest").text + client.get(f"/images/{key}").text
    assert "<script>alert" not in html and "&lt;script&gt;" in html


def test_image_page_components_issues_and_rescore_button(
        client: TestClient, library: Library) -> None:
    html = client.get(f"/images/{library.blurry_id}").text
    assert re.search(r"blurry: nothing is in focus; .* edges spread over ~[\d.]+ px", html)
    assert "What limits it:</strong> Sharpness (" in html
    assert "How the total is made:</strong> " in html
    for component in ("sharpness", "noise", "exposure", "resolution"):
        assert f'<th scope="row">{component}<span class="group">' in html
    assert "PNG" in html and "300 × 200 px" in html
    assert 'class="rescore"' in html
    assert f"/thumbs/{library.blurry_id}/large.jpg" in html
    failed = client.get("/images/11").text
    assert "No score" in failed and "file not found: gone.jpg" in failed
    missing = client.get("/images/424242")
    assert missing.status_code == 404 and "no image with id 424242" in missing.text


def test_stats_page_draws_svg_charts(client: TestClient, library: Library) -> None:
    html = client.get("/stats").text
    assert html.count("<svg") == 3  # histogram, per band, per status
    histogram = html[html.index("<svg"):html.index("</svg>")]
    assert histogram.count("<rect") == 10
    assert "90-100: 2" in histogram  # the 90 and the 100
    stats = client.get("/api/stats").json()
    assert stats["total_images"] == len(all_rows(library.store))
    assert f"Images per status: scored: {stats['statuses']['scored']}" in html
    assert stats["thresholds"] == {"high": 70, "medium": 40}


def test_thumbnails_are_small_jpegs_cached_with_headers(
        client: TestClient, library: Library) -> None:
    response = client.get(f"/thumbs/{library.photo_id}/thumb.jpg")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert "max-age" in response.headers["cache-control"]
    picture = Image.open(io.BytesIO(response.content))
    assert picture.format == "JPEG" and max(picture.size) <= 400
    cached = list((library.root.parent / "thumbnails").rglob("*.jpg"))
    assert len(cached) == 1
    again = client.get(f"/thumbs/{library.photo_id}/thumb.jpg",
                       headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
    large = client.get(f"/thumbs/{library.photo_id}/large.jpg")
    assert large.headers["content-type"] == "image/jpeg"
    assert large.content != (library.root / "photos" / "coffee.jpg").read_bytes()


def test_a_changed_file_gets_a_new_thumbnail(client: TestClient, library: Library) -> None:
    first = client.get(f"/thumbs/{library.photo_id}/thumb.jpg")
    path = library.root / "photos" / "coffee.jpg"
    Image.new("RGB", (64, 32), (200, 10, 10)).save(path, "JPEG")
    second = client.get(f"/thumbs/{library.photo_id}/thumb.jpg")
    assert second.headers["etag"] != first.headers["etag"]
    assert Image.open(io.BytesIO(second.content)).size == (64, 32)


def test_unreadable_sources_get_a_placeholder_never_an_error(
        client: TestClient, library: Library) -> None:
    for key in (library.missing_id, library.bomb_id, library.svg_id, 11):
        response = client.get(f"/thumbs/{key}/thumb.jpg")
        assert response.status_code == 200, key
        assert response.headers["content-type"].startswith("image/svg+xml")
        assert response.headers["x-pixelgrade-placeholder"] == "1"
        assert b"<script" not in response.content
    unknown = client.get("/thumbs/424242/thumb.jpg")
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith("image/svg")
    assert client.get(f"/thumbs/{library.photo_id}/original.jpg").status_code == 404


def test_footer_names_the_thresholds_on_every_page(client: TestClient, library: Library) -> None:
    for path in ("/", "/?band=unscored", "/stats", f"/images/{library.photo_id}"):
        assert "High ≥ 70 · Medium ≥ 40" in client.get(path).text, path


def test_pages_send_security_headers(client: TestClient) -> None:
    page = client.get("/")
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'self'
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert client.get("/thumbs/424242/thumb.jpg").headers["x-content-type-options"] == "nosniff"
    # The API docs have their own policy: this server only, their start-up script by hash.
    docs = client.get("/api/docs").headers["content-security-policy"]
    assert "default-src 'self'" in docs and "script-src 'self' 'sha256-" in docs
    assert "unsafe-inline" not in docs.split("script-src")[1].split(";")[0]
