"""The gallery as a person uses it, in a real headless Chromium against a real ``pixelgrade
serve``: browse, filter, sort, open an image, read the statistics, upload, re-score.

What the page shows is checked against the SQLite file itself (``library.rows()``), read at
the moment of the check, so tests that write (upload, re-score) cannot upset the others.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from pixelgrade import samples
from pixelgrade.scoring import score_bytes
from tests.e2e.conftest import MISSING, TOKEN, Library, band_of
from tests.e2e.harness import Server

BANDS = ("all", "high", "medium", "low", "unscored")
LABELS = {"all": "All", "high": "High", "medium": "Medium", "low": "Low",
          "unscored": "Unscored"}

#: What each card of the grid shows: its id, the badge's visible text and class, the note.
CARDS_JS = """cards => cards.map(card => {
  const badge = card.querySelector('.badge');
  const why = card.querySelector('.why');
  const link = new URL(card.querySelector('a').href);
  return {id: Number(link.pathname.split('/').pop()),
          badge: badge.firstChild.textContent.trim(), cls: badge.className,
          why: why ? why.textContent.trim() : null};
})"""


def cards(page: Any) -> list[dict[str, Any]]:
    """Every card of the grid, after scrolling until infinite scroll has loaded them all."""
    for _ in range(20):
        more = page.locator("#grid li.more")
        if more.count() == 0:
            break
        shown = page.locator("#grid li.card").count()
        more.scroll_into_view_if_needed()
        page.wait_for_function(
            "n => document.querySelectorAll('#grid li.card').length > n", arg=shown)
    else:
        raise AssertionError("infinite scroll never reached the end")
    return page.eval_on_selector_all("#grid li.card", CARDS_JS)


def in_band(rows: list[dict[str, Any]], band: str) -> list[dict[str, Any]]:
    if band == "all":
        return rows
    if band == "unscored":
        return [r for r in rows if r["score"] is None]
    return [r for r in rows if r["band"] == band]


def expected_order(rows: list[dict[str, Any]], sort: str) -> list[int]:
    """The documented orders: by score (ties by id, same direction), unscored last (by id,
    same direction); newest: by id, highest first."""
    if sort == "newest":
        return sorted((r["id"] for r in rows), reverse=True)
    descending = sort == "score_desc"
    scored = sorted((r for r in rows if r["score"] is not None),
                    key=lambda r: (r["score"], r["id"]), reverse=descending)
    unscored = sorted((r["id"] for r in rows if r["score"] is None), reverse=descending)
    return [r["id"] for r in scored] + unscored


def chip_counts(page: Any) -> dict[str, int]:
    return {band: int(page.locator(f"a.chip-{band} .count").inner_text().replace(",", ""))
            for band in BANDS}


def check_cards(shown: list[dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    """Each card's badge and note say what its row holds."""
    by_id = {r["id"]: r for r in rows}
    for card in shown:
        row = by_id[card["id"]]
        if row["score"] is None:
            assert card["badge"] == "N/A", card
            assert "neutral" in card["cls"].split(), card
            assert card["why"] is not None and card["why"].startswith(f"{row['state']}:"), card
        else:
            assert card["badge"] == str(row["score"]), card
            assert f"band-{row['band']}" in card["cls"].split(), card
            assert card["why"] is None, card


def test_gallery_shows_thumbnails_scores_and_na(page: Any, library: Library) -> None:
    page.goto("/")
    assert page.title() == "All images · pixelgrade"
    rows = library.rows()
    shown = cards(page)
    assert len(rows) > 48, "the library should span two pages (infinite scroll)"
    assert [c["id"] for c in shown] == expected_order(rows, "score_desc")
    check_cards(shown, rows)
    # An unscored image says N/A, and why: pending (never scored), failed, skipped.
    states = {r["state"] for r in rows if r["score"] is None}
    assert {"pending", "failed", "skipped"} <= states
    pending = next(c for c in shown if library.row(c["id"])["location"] in MISSING)
    assert pending["badge"] == "N/A" and pending["why"] == "pending: not scored yet"
    failed = [c["why"] for c in shown if c["why"] and c["why"].startswith("failed:")]
    assert any("an HTML page, not an image" in why for why in failed), failed
    assert any("vector image (SVG)" in (c["why"] or "") for c in shown)

    # Thumbnails: a scored photo's is a JPEG drawn in the page; a missing file's is the
    # placeholder (the page does not break).
    best = shown[0]["id"]
    image = page.locator(f"#grid a[href='/images/{best}'] img")
    image.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=image.element_handle())
    assert image.evaluate("img => img.naturalWidth") >= 100
    response = page.request.get(f"/thumbs/{best}/thumb.jpg")
    assert response.ok and response.headers["content-type"] == "image/jpeg"
    placeholder = page.request.get(f"/thumbs/{pending['id']}/thumb.jpg")
    assert placeholder.ok and placeholder.headers["content-type"] == "image/svg+xml"


def test_each_filter_chip_shows_only_its_band(page: Any, library: Library) -> None:
    page.goto("/")
    for band in ("high", "medium", "low", "unscored", "all"):
        page.locator(f"a.chip-{band}").click()
        page.wait_for_url(re.compile(rf"[?&]band={band}\b"))
        rows = library.rows()
        assert page.locator("a.chip[aria-current]").inner_text().startswith(LABELS[band])
        assert chip_counts(page) == {b: len(in_band(rows, b)) for b in BANDS}
        members = in_band(rows, band)
        assert members, f"the library has no {band} image"
        shown = cards(page)
        assert [c["id"] for c in shown] == expected_order(members, "score_desc"), band
        check_cards(shown, rows)
        if band == "unscored":
            assert {c["badge"] for c in shown} == {"N/A"}
            assert page.locator("p.explain").is_visible()
        elif band != "all":
            assert all(f"band-{band}" in c["cls"].split() for c in shown)
            assert page.locator("p.explain").count() == 0


@pytest.mark.parametrize("band", ["all", "low"])
def test_sort_orders_and_keeps_the_band(page: Any, library: Library, band: str) -> None:
    page.goto(f"/?band={band}")
    assert page.locator("#sort").input_value() == "score_desc"
    for sort in ("score_asc", "newest", "score_desc"):
        page.select_option("#sort", sort)  # the page applies it on change, no button
        page.wait_for_url(re.compile(rf"sort={sort}\b"))
        assert f"band={band}" in page.url
        assert page.locator("#sort").input_value() == sort
        members = in_band(library.rows(), band)
        shown = cards(page)
        assert [c["id"] for c in shown] == expected_order(members, sort), sort
        if sort != "newest":
            scores = [int(c["badge"]) for c in shown if c["badge"] != "N/A"]
            assert scores == sorted(scores, reverse=sort == "score_desc")
            badges = [c["badge"] for c in shown]
            if "N/A" in badges:  # unscored last
                assert set(badges[badges.index("N/A"):]) == {"N/A"}
        # The chips keep the chosen order.
        assert f"sort={sort}" in (page.locator("a.chip-high").get_attribute("href") or "")


def _upload_photo() -> bytes:
    return samples.encode(samples.load_photo("chelsea.png"), "JPEG", quality=90)


def test_upload_through_the_file_picker_shows_the_score(page: Any, library: Library,
                                                        server: Server) -> None:
    page.goto(f"/?token={TOKEN}")
    assert "token" not in page.url, "the token should leave the address bar"
    page.evaluate("window.e2eMarker = 'this very page'")
    before = {r["id"] for r in library.rows()}
    counts_before = chip_counts(page)
    data = _upload_photo()
    expected = score_bytes(data).score
    assert expected is not None

    page.set_input_files("#files", files=[
        {"name": "chelsea.jpg", "mimeType": "image/jpeg", "buffer": data},
        {"name": "notes.txt", "mimeType": "image/jpeg", "buffer": b"just some text\n"}])
    done = page.locator(".upload-results li", has=page.locator("a img"))
    done.wait_for(timeout=60_000)  # the first upload starts the scoring process
    refused = page.locator(".upload-results li.failed")
    refused.wait_for()
    page.locator(".upload-results li", has_text="Show the newest images").wait_for()

    assert done.locator(".badge").inner_text() == str(expected)
    assert f"band-{band_of(expected)}" in (done.locator(".badge").get_attribute("class")
                                                or "")
    assert "chelsea.jpg" in done.inner_text()
    assert refused.inner_text().startswith("notes.txt: ")
    assert "upload a raster image" in refused.inner_text()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=done.locator("img").element_handle())
    assert page.evaluate("window.e2eMarker") == "this very page", "the page was reloaded"
    # The chips count the new image without a reload.
    band = band_of(expected)
    assert chip_counts(page) == {**counts_before, "all": counts_before["all"] + 1,
                                 band: counts_before[band] + 1}

    added = [r for r in library.rows() if r["id"] not in before]
    assert len(added) == 1, "one row for the photo, none for the text file"
    assert added[0]["score"] == expected and added[0]["state"] == "scored"
    assert (library.folder / added[0]["location"]).is_file()
    href = done.locator("a").get_attribute("href")
    assert href == f"/images/{added[0]['id']}"

    page.get_by_role("link", name="Show the newest images").click()
    page.wait_for_url(re.compile(r"sort=newest"))
    first = cards(page)[0]
    assert first["id"] == added[0]["id"] and first["badge"] == str(expected)


def test_drop_upload_asks_for_the_token_once(page: Any, library: Library) -> None:
    """A fresh browser has no token: the page asks for it, keeps it, and the dropped file is
    scored."""
    page.goto("/")
    asked: list[str] = []

    def answer(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept(TOKEN)

    page.on("dialog", answer)
    data = samples.encode(samples.load_photo("rocket.jpg"), "PNG")
    expected = score_bytes(data).score
    transfer = page.evaluate_handle("""b64 => {
      const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
      const transfer = new DataTransfer();
      transfer.items.add(new File([bytes], 'rocket.png', {type: 'image/png'}));
      return transfer;
    }""", base64.b64encode(data).decode())
    page.dispatch_event(".dropzone", "dragenter", {"dataTransfer": transfer})
    assert "dragging" in (page.locator(".dropzone").get_attribute("class") or "")
    page.dispatch_event(".dropzone", "drop", {"dataTransfer": transfer})
    done = page.locator(".upload-results li", has=page.locator("a img"))
    done.wait_for(timeout=60_000)
    assert done.locator(".badge").inner_text() == str(expected)
    assert len(asked) == 1 and "API token" in asked[0]
    assert page.evaluate("localStorage.getItem('pixelgrade-token')") == TOKEN
    assert "dragging" not in (page.locator(".dropzone").get_attribute("class") or "")


def test_image_page_shows_components_and_issues(page: Any, library: Library) -> None:
    rows = library.rows()
    dark = next(r for r in rows if r["location"] == "featured/chelsea-dark.png")
    page.goto("/?band=low")
    link = page.locator(f"#grid a[href='/images/{dark['id']}?band=low&sort=score_desc']")
    link.scroll_into_view_if_needed()
    link.click()
    page.wait_for_url(f"**/images/{dark['id']}?band=low&sort=score_desc")
    assert page.locator("h1").inner_text().startswith("chelsea-dark.png")
    assert page.locator("p.subtitle").inner_text().startswith(f"Image {dark['id']}")
    verdict = page.locator("p.verdict").inner_text()
    assert verdict == f"Score {dark['score']} / 100 · Low"
    issues = page.locator("ul.issues li").all_inner_texts()
    assert any(text.startswith(("underexposed:", "badly underexposed:")) for text in issues), issues
    # Each row: the component's name, then (under it) its group.
    names = [text.split("\n")[0] for text in
             page.locator("table.components tbody th").all_inner_texts()]
    assert {"sharpness", "noise", "exposure", "contrast", "resolution"} <= set(names), names
    exposure = page.locator("table.components tbody tr", has_text="exposure").first
    assert re.search(r"\b\d+\b", exposure.locator("td").first.inner_text())
    assert "chelsea-dark.png" in page.locator("figcaption").inner_text()
    picture = page.locator("figure img")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=picture.element_handle())

    failed = next(r for r in rows if r["location"] == "featured/missing-image.jpg")
    page.goto(f"/images/{failed['id']}")
    assert page.locator("h1 .badge").first.evaluate("b => b.firstChild.textContent") == "N/A"
    assert page.locator("p.verdict").inner_text().startswith(
        "No score · failed: an HTML page, not an image")


def test_stats_page_draws_svg_charts(page: Any, library: Library) -> None:
    page.goto("/")
    page.get_by_role("link", name="Statistics").click()
    page.wait_for_url("**/stats")
    rows = library.rows()
    figures = dict(zip(page.locator("dl.figures dt").all_inner_texts(),
                       page.locator("dl.figures dd").all_inner_texts(), strict=True))
    assert figures["Images"] == str(len(rows))
    assert figures["With a score"] == str(sum(r["score"] is not None for r in rows))
    charts = page.locator("svg.chart")
    assert charts.count() == 3
    for i in range(3):
        chart = charts.nth(i)
        assert chart.is_visible()
        box = chart.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 50
        assert chart.locator("rect").count() >= 4
    bands = page.locator("svg.chart title#bands-title").text_content() or ""
    for band in ("high", "medium", "low"):
        assert f"{LABELS[band]}: {len(in_band(rows, band))}" in bands, bands
    # Bars are drawn in their band's colour (not all in one).
    fills = {charts.nth(1).locator(f"rect.band-{band}").evaluate(
        "r => getComputedStyle(r).fill") for band in ("high", "medium", "low")}
    assert len(fills) == 3, fills


def test_rescore_scores_a_pending_image(page: Any, library: Library) -> None:
    key = library.pending_photo_id
    assert library.row(key)["state"] == "pending"
    page.goto(f"/images/{key}?token={TOKEN}")
    assert page.locator("p.verdict").inner_text().startswith("No score · pending")
    page.get_by_role("button", name="Re-score").click()
    page.locator(".rescore-status.ok").wait_for(timeout=60_000)
    row = library.row(key)
    assert row["state"] == "scored" and row["score"] is not None
    assert page.locator("p.verdict").inner_text().startswith(f"Score {row['score']} / 100")
