"""The gallery explains itself (issue 14), in a real Chromium at a laptop's width (1366 px) and
a phone's (390 px): what the cards and the image page say, where their links lead, that the
layout fits the screen, that the API docs work with no network but this server's, the icon,
and the re-score's feedback in place.

Set ``PIXELGRADE_E2E_SHOTS=/tmp/gallery-shots`` to keep a screenshot of each layout checked.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any
from urllib.parse import urlsplit

from pixelgrade import samples
from pixelgrade.web.wording import formula_parts, limiting_parts, sentence
from tests.e2e.conftest import TOKEN, Library
from tests.e2e.harness import Server, screenshot
from tests.e2e.test_gallery import cards, expected_order, in_band

#: What each card's caption says: the name line and the note under it.
CAPTIONS_JS = """cards => cards.map(card => {
  const note = card.querySelector('.caption p:not(.name)');
  return {id: Number(new URL(card.querySelector('a').href).pathname.split('/').pop()),
          name: card.querySelector('.caption .name').textContent.trim(),
          noteClass: note ? note.className : null,
          note: note ? note.textContent.trim() : null,
          noteTitle: note ? note.getAttribute('title') : null};
})"""

#: Per card: its height, the room left under its caption, and any caption line wider than
#: its box (text running out of the card).
CARD_BOXES_JS = """cards => cards.map(card => {
  const box = card.getBoundingClientRect();
  const caption = card.querySelector('.caption');
  const below = caption ? box.bottom - caption.getBoundingClientRect().bottom : box.height;
  const wide = [...card.querySelectorAll('.caption p')].filter(
      p => p.scrollWidth > p.clientWidth + 1).map(p => p.textContent);
  return {top: Math.round(box.top + window.scrollY), height: box.height, below, wide};
})"""

PAGE_WIDER_THAN_SCREEN = ("() => document.documentElement.scrollWidth > "
                          "document.documentElement.clientWidth")


def main_issue(row: dict[str, Any]) -> str | None:
    details = row["details"] or {}
    issues = details.get("issues") or []
    return issues[0]["message"] if issues else details.get("summary")


def test_cards_name_the_file_and_say_the_main_issue(sized_page: Any, library: Library) -> None:
    page = sized_page
    page.goto("/")
    rows = {r["id"]: r for r in library.rows()}
    shown = cards(page)  # scrolls until every card is there
    captions = page.eval_on_selector_all("#grid li.card", CAPTIONS_JS)
    assert [c["id"] for c in captions] == [c["id"] for c in shown]
    bands_seen = set()
    for caption in captions:
        row = rows[caption["id"]]
        assert caption["name"] == row["location"].rsplit("/", 1)[-1], caption
        if row["band"] in ("low", "medium"):
            bands_seen.add(row["band"])
            issue = main_issue(row)
            assert issue, f"a {row['band']} image of the demo library has no issue: {row}"
            assert caption["noteClass"] == "issue" and caption["noteTitle"] == issue, caption
            label = issue.split(": ", 1)[0]
            assert caption["note"].startswith(label), caption
        elif row["band"] is None:
            assert caption["noteClass"].startswith("why state-"), caption
            assert caption["note"].startswith(f"{row['state']}:"), caption
        else:
            assert caption["note"] == "no issues found", caption
    assert bands_seen == {"low", "medium"}

    assert not page.evaluate(PAGE_WIDER_THAN_SCREEN)
    screenshot(page, "gallery")


def test_grid_cards_leave_no_empty_band(sized_page: Any) -> None:
    """Cards with a long note (a failed image's reason) beside cards with a short one or
    none: every card is as tall as the others, none has an empty band under its caption, no
    caption line runs out of its card, and the page fits the screen."""
    page = sized_page
    for path, name in (("/?band=unscored", "gallery-unscored"), ("/", "gallery-top")):
        page.goto(path)
        boxes = page.eval_on_selector_all("#grid li.card", CARD_BOXES_JS)
        heights = {round(b["height"]) for b in boxes}
        assert max(heights) - min(heights) <= 1, (path, heights)
        assert all(b["below"] <= 2 for b in boxes), (path, [b for b in boxes
                                                           if b["below"] > 2])
        assert not [b["wide"] for b in boxes if b["wide"]], path
        assert not page.evaluate(PAGE_WIDER_THAN_SCREEN), path
        screenshot(page, name)


def _explained_row(library: Library) -> dict[str, Any]:
    """chelsea-dark.png: Low, limited by two components, a total with a sum."""
    row = next(r for r in library.rows() if r["location"] == "featured/chelsea-dark.png")
    assert row["band"] == "low" and "=" in row["details"]["formula"], row
    return row


def test_image_page_says_what_limits_the_score_and_how_the_total_is_made(
        sized_page: Any, library: Library) -> None:
    page = sized_page
    row = _explained_row(library)
    page.goto("/?band=low")
    link = page.locator(f"#grid li.card a[href^='/images/{row['id']}?']")
    link.scroll_into_view_if_needed()
    link.click()
    page.wait_for_url(f"**/images/{row['id']}?band=low&sort=score_desc")

    details = row["details"]
    how = page.locator("section.how")
    assert how.locator("h2").inner_text() == "How the score is made"
    assert how.locator(".limits").inner_text() == (
        "What limits it: " + sentence(limiting_parts(details["summary"])))
    words, arithmetic = formula_parts(details["formula"])
    assert how.locator(".formula").inner_text() == (
        f"How the total is made: {words[0].upper()}{words[1:]}:")
    assert how.locator(".arithmetic").inner_text() == arithmetic
    assert how.is_visible() and how.locator(".arithmetic").is_visible()

    # The file is named, and its original is one click away (the bytes themselves).
    assert page.locator("h1 .file-name").inner_text() == "chelsea-dark.png"
    original = page.locator("a.original")
    assert original.inner_text() == "Open the original file"
    response = page.request.get(original.get_attribute("href"))
    assert response.ok and response.headers["content-type"] == "image/png"
    assert response.body() == (library.folder / row["location"]).read_bytes()

    assert not page.evaluate(PAGE_WIDER_THAN_SCREEN)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=page.locator("figure img").element_handle())
    screenshot(page, "image")


def test_components_table_fits_its_box(sized_page: Any, library: Library) -> None:
    """Four columns of the components table inside the facts column, on a phone too (the
    measured values wrap), and the page no wider than the screen."""
    page = sized_page
    page.goto(f"/images/{_explained_row(library)['id']}")
    table = page.locator("table.components")
    table.scroll_into_view_if_needed()
    fits = page.evaluate("""() => {
      const table = document.querySelector('table.components');
      const box = table.parentElement;
      const facts = document.querySelector('.facts').getBoundingClientRect();
      const right = table.getBoundingClientRect().right;
      return {fits: box.scrollWidth <= box.clientWidth, inside: right <= facts.right + 1,
              onScreen: right <= document.documentElement.clientWidth};
    }""")
    assert fits == {"fits": True, "inside": True, "onScreen": True}, fits
    assert page.locator("table.components thead th").all_inner_texts() == [
        "Component", "Sub-score", "Measured", "Weight"]
    for cell in page.locator("table.components td, table.components th").all():
        box = cell.bounding_box()
        assert box and box["x"] + box["width"] <= page.viewport_size["width"], cell
    assert not page.evaluate(PAGE_WIDER_THAN_SCREEN)
    screenshot(page, "image-components")


def test_previous_and_next_walk_the_band_the_visitor_came_from(
        sized_page: Any, library: Library) -> None:
    page = sized_page
    order = expected_order(in_band(library.rows(), "low"), "score_asc")
    page.goto("/?band=low&sort=score_asc")
    page.locator(f"#grid li.card a[href^='/images/{order[0]}?']").click()
    page.wait_for_url(f"**/images/{order[0]}?band=low&sort=score_asc")
    assert page.locator(".neighbours .prev.none").is_visible()  # the first has no previous
    assert page.locator(".neighbours .back").inner_text() == "Low images · score, low first"

    def walk(rel: str) -> list[int]:
        seen = [int(urlsplit(page.url).path.rsplit("/", 1)[-1])]
        while page.locator(f".neighbours a[rel='{rel}']").count():
            page.locator(f".neighbours a[rel='{rel}']").click()
            page.wait_for_url(lambda url: int(urlsplit(url).path.rsplit("/", 1)[-1])
                              != seen[-1])
            assert "band=low&sort=score_asc" in page.url
            seen.append(int(urlsplit(page.url).path.rsplit("/", 1)[-1]))
            assert len(seen) <= len(order) + 1, seen
        return seen

    assert walk("next") == order
    assert page.locator(".neighbours .next.none").is_visible()
    for name in ("prev", "back", "next"):  # all three on the screen, none cut
        box = page.locator(f".neighbours .{name}").bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= page.viewport_size["width"]
    screenshot(page, "image-last-of-band")
    assert walk("prev") == order[::-1]
    page.locator(".neighbours .back").click()
    page.wait_for_url("**/?band=low&sort=score_asc")


def test_failed_images_say_failed(sized_page: Any, library: Library) -> None:
    page = sized_page
    failed = next(r for r in library.rows() if r["location"] == "featured/missing-image.jpg")
    page.goto(f"/images/{failed['id']}?band=unscored")
    label = page.locator("h1 .state-label")
    assert label.inner_text() == "failed" and label.is_visible()
    assert page.locator("h1 .badge").first.evaluate("b => b.firstChild.textContent") == "N/A"
    assert page.locator("dl.meta dt").all_inner_texts()[-1] == "Failed"
    assert not page.evaluate(PAGE_WIDER_THAN_SCREEN)
    screenshot(page, "image-failed")


def test_api_docs_render_with_no_network_but_this_server(sized_page: Any,
                                                         server: Server) -> None:
    page = sized_page
    local = urlsplit(server.url).netloc
    refused: list[str] = []

    def only_this_server(route: Any) -> None:
        if urlsplit(route.request.url).netloc == local:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", only_this_server)
    paths = page.request.get("/api/openapi.json").json()["paths"]
    operations = sum(len(methods) for methods in paths.values())
    page.goto("/api/docs")
    page.wait_for_function("n => document.querySelectorAll('.opblock').length >= n",
                           arg=operations)
    shown = page.locator(".opblock-summary-path").all_inner_texts()
    assert {text.replace("\u200b", "") for text in shown} == set(paths), shown
    assert page.locator(".info .title").inner_text().startswith("pixelgrade")
    assert refused == [], f"the docs asked other hosts for {refused}"
    screenshot(page, "api-docs")


def test_pages_have_an_icon(sized_page: Any) -> None:
    page = sized_page
    for path in ("/", "/stats", "/api/docs"):
        page.goto(path)
        href = page.locator("link[rel~='icon']").first.get_attribute("href")
        assert href == "/favicon.ico", path
    width = page.evaluate("""() => new Promise(done => {
      const icon = new Image();
      icon.onload = () => done(icon.naturalWidth);
      icon.onerror = () => done(0);
      icon.src = '/favicon.ico';
    })""")
    assert width >= 16


#: Records what the re-score controls show at every change (the busy state is brief).
WATCH_RESCORE_JS = """() => {
  window.rescoreStates = [];
  const button = document.querySelector('button.rescore');
  const status = document.querySelector('.rescore-status');
  const note = () => window.rescoreStates.push({disabled: button.disabled,
      busy: button.getAttribute('aria-busy'), label: button.textContent,
      status: status.textContent, kind: status.className});
  new MutationObserver(note).observe(button.parentNode,
      {subtree: true, childList: true, attributes: true, characterData: true});
}"""


def _add_image(library: Library, name: str, data: bytes) -> int:
    (library.folder / "featured" / name).write_bytes(data)
    with closing(sqlite3.connect(library.database)) as conn, conn:
        return int(conn.execute("INSERT INTO images (url) VALUES (?)",
                                (f"featured/{name}",)).lastrowid or 0)


def test_rescore_shows_it_is_busy_then_the_new_score_in_place(
        sized_page: Any, library: Library) -> None:
    page = sized_page
    width = page.viewport_size["width"]
    photo = samples.load_photo("chelsea.png")
    name = f"rescore-{width}.png"
    key = _add_image(library, name, samples.DISTORTIONS["gaussian_blur"](photo, 4))
    page.goto(f"/images/{key}?token={TOKEN}")
    page.evaluate("window.e2eMarker = 'this very page'")
    assert page.locator("p.verdict").inner_text().startswith("No score · pending")

    page.evaluate(WATCH_RESCORE_JS)
    button = page.get_by_role("button", name="Re-score")
    button.click()
    status = page.locator(".rescore-status")
    page.locator(".rescore-status.ok").wait_for(timeout=60_000)
    first = library.row(key)
    assert first["state"] == "scored"
    assert status.inner_text() == f"Re-scored: {first['score']} / 100, {first['band']}."
    assert page.locator("p.verdict").inner_text().startswith(f"Score {first['score']} / 100")
    assert page.locator("h1 .badge").first.evaluate(
        "b => b.firstChild.textContent") == str(first["score"])
    assert page.locator("section.how").is_visible()  # the new details, not only the number
    states = page.evaluate("window.rescoreStates")
    assert any(s["disabled"] and s["busy"] == "true" and s["label"] == "Scoring…"
               and s["status"] == "Scoring the image again…" for s in states), states
    assert not button.is_disabled() and button.inner_text() == "Re-score"
    assert page.evaluate("window.e2eMarker") == "this very page", "the page was reloaded"

    # The file is replaced by a sharp copy: the new score says what it was before.
    (library.folder / "featured" / name).write_bytes(samples.encode(photo, "PNG"))
    button.click()
    page.wait_for_function("() => document.querySelector('.rescore-status').textContent"
                           ".includes('(was ')")
    second = library.row(key)
    assert second["score"] != first["score"]
    assert status.inner_text() == (
        f"Re-scored: {second['score']} / 100, {second['band']} (was {first['score']}).")
    assert page.locator("p.verdict").inner_text().startswith(f"Score {second['score']} / 100")
    assert not page.evaluate(PAGE_WIDER_THAN_SCREEN)
    screenshot(page, "rescore-done")

    # An error is said in words, and the button can be pressed again.
    page.route("**/rescore", lambda route: route.fulfill(
        status=503, content_type="application/json",
        body='{"detail": "the image could not be read this time: timed out"}'))
    button.click()
    page.locator(".rescore-status.error").wait_for()
    assert status.inner_text() == (
        "Re-score failed: the image could not be read this time: timed out")
    assert not button.is_disabled()
    assert page.locator("p.verdict").inner_text().startswith(f"Score {second['score']} / 100")
    screenshot(page, "rescore-error")
