"""The gallery and its API on real databases: SQLite and PostgreSQL (``db_url``), served
in-process by FastAPI's TestClient, scoring in one real scoring process shared by the session.

``library`` is pixelgrade's own table holding :data:`LIBRARY`: scores with ties, the band
edges (0, 39, 40, 69, 70, 100) and unscored rows of each kind (pending, failed, skipped), a
few pointing at real files under the test's folder (the root).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pixelgrade import samples
from pixelgrade.pool import scoring_pool
from pixelgrade.scoring import ScoringConfig, score_bytes
from pixelgrade.stores import SqlStore, TableSpec
from pixelgrade.stores.base import Outcome
from pixelgrade.web import WebSettings, create_app
from tests.backfill.conftest import SVG, jpeg, photo

TOKEN = "test-token-3f9a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: Upload cap in these tests (small, so "oversize" is cheap to make).
MAX_BYTES = 400_000

#: (score, status, reason) per row, ids 1..n in this order. None scores: unscored.
LIBRARY: list[tuple[int | None, str | None, str | None]] = [
    (90, "scored", None), (70, "scored", None), (70, "scored", None), (69, "scored", None),
    (40, "scored", None), (40, "scored", None), (39, "scored", None), (0, "scored", None),
    (100, "scored", None), (None, None, None), (None, "failed", "file not found: gone.jpg"),
    (None, "skipped", "vector image (SVG): nothing to score"), (70, "scored", None),
    (55, "scored", None), (55, "scored", None), (55, "scored", None), (10, "scored", None),
    (None, None, None), (70, "scored", None), (None, "failed", "HTTP 404 Not Found"),
]


@dataclass
class Library:
    url: str
    root: Path
    store: SqlStore
    #: Row ids of files that exist: a photo, a blurred photo (details from a real score).
    photo_id: int
    blurry_id: int
    #: A pending row whose file exists, one whose file is missing, one that is a bomb.
    pending_photo_id: int
    missing_id: int
    bomb_id: int
    svg_id: int


@pytest.fixture(scope="session")
def pool() -> Iterator[ProcessPoolExecutor]:
    executor = scoring_pool(1)
    try:
        yield executor
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def reference_order(rows: list[dict[str, Any]], band: str, sort: str,
                    high: int = 70, medium: int = 40) -> list[Any]:
    """The documented orders, computed the obvious way in Python."""
    def in_band(score: int | None) -> bool:
        return {"all": True, "unscored": score is None,
                "high": score is not None and score >= high,
                "medium": score is not None and medium <= score < high,
                "low": score is not None and score < medium}[band]

    chosen = [r for r in rows if in_band(r["score"])]
    if sort == "newest":
        return [r["id"] for r in sorted(chosen, key=lambda r: r["id"], reverse=True)]
    scored = [r for r in chosen if r["score"] is not None]
    unscored = [r for r in chosen if r["score"] is None]
    descending = sort == "score_desc"
    scored.sort(key=lambda r: (r["score"], r["id"]), reverse=descending)
    unscored.sort(key=lambda r: r["id"], reverse=descending)
    return [r["id"] for r in scored + unscored]


def fill(store: Any, rows: list[tuple[int | None, str | None, str | None]],
         location: str = "photos/none.jpg") -> list[Any]:
    """Insert ``rows`` through the store (insert_image + set_result); returns the ids."""
    ids = []
    for score, status, reason in rows:
        key = store.insert_image(location)
        if status is not None:
            details = {"reason": reason} if reason else {"format": "JPEG", "width": 300,
                                                         "height": 200}
            store.set_result(Outcome(key, status, score, details))  # type: ignore[arg-type]
        ids.append(key)
    return ids


@pytest.fixture
def library(db_url: str, tmp_path: Path) -> Iterator[Library]:
    root = tmp_path / "library"
    (root / "photos").mkdir(parents=True)
    (root / "photos" / "coffee.jpg").write_bytes(jpeg())
    (root / "photos" / "blurry.png").write_bytes(blurry_png())
    (root / "photos" / "logo.svg").write_bytes(SVG)
    from tests.images import png_header_bomb

    (root / "photos" / "bomb.png").write_bytes(png_header_bomb())
    store = SqlStore(db_url, TableSpec(), must_exist=False, inspect=False)
    store.init()
    fill(store, LIBRARY)
    photo_id = store.insert_image("photos/coffee.jpg")
    report = _report("coffee")
    store.set_result(Outcome(photo_id, "scored", report["score"], _details(report)))
    blurry_id = store.insert_image("photos/blurry.png")
    report = _report("blurry")
    store.set_result(Outcome(blurry_id, "scored", report["score"], _details(report)))
    pending_photo_id = store.insert_image("photos/coffee.jpg")
    missing_id = store.insert_image("photos/deleted.jpg")
    bomb_id = store.insert_image("photos/bomb.png")
    svg_id = store.insert_image("photos/logo.svg")
    try:
        yield Library(db_url, root, store, photo_id, blurry_id, pending_photo_id, missing_id,
                      bomb_id, svg_id)
    finally:
        store.close()


@functools.cache
def blurry_png() -> bytes:
    return samples.DISTORTIONS["gaussian_blur"](photo(), 4)


@functools.cache
def _report(which: str) -> dict[str, Any]:
    return score_bytes(jpeg() if which == "coffee" else blurry_png()).to_dict()


def _details(report: dict[str, Any]) -> dict[str, Any]:
    from pixelgrade.backfill.images import DETAIL_KEYS

    return {key: report[key] for key in DETAIL_KEYS if key in report}


def settings_for(library: Library, **changes: Any) -> WebSettings:
    values: dict[str, Any] = dict(
        token=TOKEN, uploads=library.root / "uploads", root=library.root,
        cache=library.root.parent / "thumbnails",
        scoring=ScoringConfig(max_bytes=MAX_BYTES), page_size=5)
    values.update(changes)
    return WebSettings(**values)


@pytest.fixture
def client(library: Library, pool: ProcessPoolExecutor) -> Iterator[TestClient]:
    app = create_app(library.store, settings_for(library), pool=pool)
    with TestClient(app) as test_client:
        yield test_client


def all_rows(store: Any) -> list[dict[str, Any]]:
    """(id, score) of every row, read through the store's own list."""
    from pixelgrade.stores.base import ImageQuery

    page = store.list_images(ImageQuery(sort="newest", limit=10_000))
    return [{"id": r.id, "score": r.score} for r in page.items]


def walk(client: TestClient, band: str, sort: str, limit: int,
         headers: dict[str, str] | None = None) -> list[Any]:
    """Every id of ``band`` in ``sort`` order, page by page through the API."""
    ids: list[Any] = []
    cursor = None
    for _ in range(1000):
        params: dict[str, Any] = {"band": band, "sort": sort, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        response = client.get("/api/images", params=params, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        ids.extend(item["id"] for item in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return ids
        assert len(body["items"]) == limit  # only a last page may be short
    raise AssertionError("pagination did not end")
