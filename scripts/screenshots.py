"""Screenshots of the gallery for the docs: ``docs/screenshots/*.png`` (``make screenshots``).

Builds the demo library (``pixelgrade.demo.build_database``, scored by a real ``pixelgrade
backfill``: about half a minute), or uses an existing database (``--db``), starts ``pixelgrade
serve`` on a free port, and photographs the pages in Debian's headless Chromium through
Playwright (installed with apt when missing, as in tests/e2e), at a fixed 1280x900 viewport:

  gallery.png           the grid, best first (upload zone, filter chips, sort)
  gallery-low.png       the Low filter
  gallery-unscored.png  the Unscored filter: N/A, and why (skipped, failed)
  image.png             one image: score, issues, components
  stats.png             statistics with the SVG charts
  upload.png            a photo uploaded through the page, its score shown on arrival

The upload adds a row and a file: it is taken on the demo library only, unless --upload.

    python scripts/screenshots.py [--db URL] [--out docs/screenshots] [--image ID]
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import sqlite3
import sys
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e import harness  # noqa: E402  (after the path is set)

WORKDIR = Path(tempfile.gettempdir()) / "pixelgrade-screenshots"
#: The demo image shown on image.png: three issues at once.
DEMO_IMAGE = "featured/chelsea-dark.png"
#: Visible thumbnails have been drawn (lazy ones below the fold are not waited for).
PICTURES_DRAWN = """() => [...document.images].filter(img => {
  const box = img.getBoundingClientRect();
  return box.bottom > 0 && box.top < window.innerHeight && box.width > 0;
}).every(img => img.complete && img.naturalWidth > 0)"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="database URL to photograph (default: build the demo)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots",
                        help="folder for the PNG files (default: docs/screenshots)")
    parser.add_argument("--image", help="id of the image for image.png (default: the demo's "
                        f"{DEMO_IMAGE}, else the first image of the Medium band)")
    parser.add_argument("--upload", action="store_true",
                        help="take upload.png with --db too (adds a row to that database)")
    parser.add_argument("--workdir", type=Path, default=WORKDIR,
                        help="where the demo library is built (default: %(default)s; a fixed "
                        "folder, since the reasons shown for missing files name it)")
    args = parser.parse_args(argv)

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("Playwright is missing: pip install -e '.[test]'", file=sys.stderr)
        return 1
    try:
        harness.ensure_chromium()
    except harness.Unavailable as exc:
        print(exc, file=sys.stderr)
        return 1

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pixelgrade-screenshots-") as scratch:
        folder = Path(scratch)
        image = args.image
        if args.db:
            url, upload = args.db, args.upload
        else:
            demo = args.workdir / "demo"
            url = build_demo(demo)
            image = image or demo_image_id(demo / "library.db")
            upload = True
        token = secrets.token_urlsafe(12)
        with harness.serve(url, folder, token) as server, sync_playwright() as playwright:
            browser = harness.launch(playwright)
            try:
                context = browser.new_context(viewport=harness.VIEWPORT, base_url=server.url,
                                              device_scale_factor=1, color_scheme="light")
                page = context.new_page()
                page.set_default_timeout(60_000)
                written = take(page, args.out, token, image, upload)
            finally:
                browser.close()
    for path in written:
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


def build_demo(folder: Path) -> str:
    """The demo library in ``folder``, scored; uploads and thumbnails of an earlier run go."""
    from pixelgrade.demo import build_database

    for stale in ("uploads", "thumbnails"):
        shutil.rmtree(folder / stale, ignore_errors=True)
    print(f"Building the demo library in {folder} and scoring it ...", file=sys.stderr)
    url, rows = build_database(folder)
    harness.backfill(url, folder)
    print(f"{rows} images scored.", file=sys.stderr)
    return url


def demo_image_id(database: Path) -> str:
    with closing(sqlite3.connect(database)) as conn:
        (key,) = conn.execute("SELECT id FROM images WHERE url = ?", (DEMO_IMAGE,)).fetchone()
    return str(key)


def take(page: Any, out: Path, token: str, image: str | None, upload: bool) -> list[Path]:
    written: list[Path] = []

    def shoot(name: str, full_page: bool = False) -> None:
        page.wait_for_load_state("networkidle")
        page.wait_for_function(PICTURES_DRAWN)
        path = out / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page, animations="disabled",
                        caret="hide")
        written.append(path)

    page.goto("/")
    shoot("gallery")
    page.locator("a.chip-low").click()
    page.wait_for_url("**band=low*")
    shoot("gallery-low")
    page.locator("a.chip-unscored").click()
    page.wait_for_url("**band=unscored*")
    shoot("gallery-unscored")

    if image is None:
        page.goto("/?band=medium")
        href = page.locator("#grid li.card a").first.get_attribute("href")
        image = (href or "/images/1").rsplit("/", 1)[-1]
    page.goto(f"/images/{image}")
    shoot("image", full_page=True)

    page.goto("/stats")
    shoot("stats", full_page=True)

    if upload:
        from pixelgrade import samples

        page.goto(f"/?token={token}")
        photo = samples.encode(samples.load_photo("astronaut.png"), "JPEG", quality=85)
        page.set_input_files("#files", files=[
            {"name": "astronaut.jpg", "mimeType": "image/jpeg", "buffer": photo}])
        page.locator(".upload-results li", has_text="Show the newest images").wait_for()
        shoot("upload")
    return written


if __name__ == "__main__":
    raise SystemExit(main())
