"""Listing through the API: every band x sort x page size against a reference order, NULLs
last, ties broken by id, counts, cursors; the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from pixelgrade.gallery import encode_cursor
from pixelgrade.stores import SqlStore, TableSpec
from pixelgrade.stores.base import BANDS, SORTS, ImageQuery, Outcome, page_segments
from tests.web.conftest import LIBRARY, Library, all_rows, fill, reference_order, walk

PAGE_SIZES = (1, 2, 3, 7, 200)


def test_every_band_sort_and_page_size_matches_the_reference(
        client: TestClient, library: Library) -> None:
    rows = all_rows(library.store)
    assert len(rows) == 26
    for band in BANDS:
        for sort in SORTS:
            expected = reference_order(rows, band, sort)
            for limit in PAGE_SIZES:
                got = walk(client, band, sort, limit)
                assert got == expected, (band, sort, limit)
                assert len(set(got)) == len(got)


def test_unscored_rows_come_last_and_ties_are_broken_by_id(
        client: TestClient, library: Library) -> None:
    first = client.get("/api/images", params={"sort": "score_desc", "limit": 200}).json()
    scores = [item["score"] for item in first["items"]]
    nulls = scores.index(None)
    assert all(score is None for score in scores[nulls:])
    assert scores[:nulls] == sorted(scores[:nulls], reverse=True)
    seventies = [item["id"] for item in first["items"] if item["score"] == 70]
    assert len(seventies) == 4 and seventies == sorted(seventies, reverse=True)
    ascending = client.get("/api/images", params={"sort": "score_asc", "limit": 200}).json()
    scores = [item["score"] for item in ascending["items"]]
    nulls = scores.index(None)
    assert all(score is None for score in scores[nulls:])
    assert [item["id"] for item in ascending["items"] if item["score"] == 55] == [14, 15, 16]


def test_band_edges_and_counts(client: TestClient, library: Library) -> None:
    def scores(band: str) -> list[int | None]:
        return [i["score"] for i in client.get(
            "/api/images", params={"band": band, "limit": 200}).json()["items"]]

    assert min(s for s in scores("high") if s is not None) == 70
    assert set(scores("medium")) >= {40, 69} and max(scores("medium")) == 69  # type: ignore
    assert max(scores("low")) == 39 and 0 in scores("low")  # type: ignore[type-var]
    assert set(scores("unscored")) == {None}
    counts = client.get("/api/counts").json()
    rows = all_rows(library.store)
    assert counts == {band: len(reference_order(rows, band, "newest")) for band in BANDS}
    assert counts["all"] == counts["high"] + counts["medium"] + counts["low"] + \
        counts["unscored"]


def test_unscored_items_say_why(client: TestClient, library: Library) -> None:
    items = client.get("/api/images", params={"band": "unscored", "sort": "score_asc",
                                              "limit": 200}).json()["items"]
    by_state = {item["state"] for item in items}
    assert by_state == {"pending", "failed", "skipped"}
    failed = next(i for i in items if i["id"] == 11)
    assert failed["state"] == "failed" and failed["reason"] == "file not found: gone.jpg"
    skipped = next(i for i in items if i["id"] == 12)
    assert skipped["state"] == "skipped" and "vector image" in skipped["reason"]
    pending = next(i for i in items if i["id"] == 10)
    assert pending["state"] == "pending" and "not scored yet" in pending["reason"]
    assert all(item["score"] is None and item["band"] is None for item in items)


def test_pages_neither_repeat_nor_skip_when_rows_arrive_between_them(
        client: TestClient, library: Library) -> None:
    """Keyset pages: rows added or scored meanwhile do not shift the next page."""
    first = client.get("/api/images", params={"sort": "score_desc", "limit": 6}).json()
    seen = [item["id"] for item in first["items"]]
    fill(library.store, [(95, "scored", None), (1, "scored", None), (None, None, None)])
    rest = []
    cursor = first["next_cursor"]
    while cursor:
        page = client.get("/api/images", params={"sort": "score_desc", "limit": 6,
                                                 "cursor": cursor}).json()
        rest.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
    assert not set(seen) & set(rest)
    expected = reference_order(all_rows(library.store), "all", "score_desc")
    # Everything after the first page's last row, in order (the new 95 sorts before it).
    assert rest == expected[expected.index(seen[-1]) + 1:]


def test_bad_requests_are_explained(client: TestClient) -> None:
    assert client.get("/api/images", params={"band": "great"}).status_code == 422
    assert client.get("/api/images", params={"sort": "random"}).status_code == 422
    assert client.get("/api/images", params={"limit": 0}).status_code == 422
    assert client.get("/api/images", params={"limit": 201}).status_code == 422
    garbage = client.get("/api/images", params={"cursor": "not-a-cursor"})
    assert garbage.status_code == 400 and "cursor" in garbage.json()["detail"]
    other = encode_cursor("high", "score_desc", (80, 3))
    mismatch = client.get("/api/images", params={"band": "low", "cursor": other})
    assert mismatch.status_code == 400
    assert "band=high&sort=score_desc" in mismatch.json()["detail"]
    page = client.get("/?cursor=not-a-cursor")
    assert page.status_code == 400 and "text/html" in page.headers["content-type"]


def test_get_one(client: TestClient, library: Library) -> None:
    body = client.get(f"/api/images/{library.blurry_id}").json()
    assert body["state"] == "scored" and body["band"] in ("high", "medium", "low")
    assert {c["name"] for c in body["components"]} >= {"sharpness", "noise", "exposure"}
    assert any(issue["message"].startswith("blurry: nothing is in focus")
               for issue in body["issues"])
    assert body["limited_by"].startswith("limited by sharpness (")
    assert body["formula"].endswith(f" {body['score']}")
    assert body["format"] == "PNG" and body["width"] == 300 and body["height"] == 200
    assert body["thumbnail"] == f"/thumbs/{library.blurry_id}/thumb.jpg"
    assert client.get("/api/images/99999").status_code == 404
    assert client.get("/api/images/not-a-number").status_code == 404


def test_openapi_schema_lists_the_endpoints(client: TestClient) -> None:
    schema = client.get("/api/openapi.json").json()
    assert {"/api/images", "/api/images/{key}", "/api/images/{key}/rescore",
            "/api/stats", "/api/counts"} <= set(schema["paths"])
    assert "post" in schema["paths"]["/api/images"]
    params = {p["name"]: p for p in schema["paths"]["/api/images"]["get"]["parameters"]}
    assert set(params) == {"band", "sort", "cursor", "limit"}


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlStore]:
    """100,000 rows on SQLite, one in ten unscored."""
    path = tmp_path_factory.mktemp("big") / "big.db"
    store = SqlStore(f"sqlite:///{path}", TableSpec(), must_exist=False, inspect=False)
    store.init()
    with store.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO images (url, quality_score) VALUES (:u, :s)"),
                     [{"u": f"p/{i}.jpg", "s": None if i % 10 == 0 else i % 101}
                      for i in range(100_000)])
    yield store
    store.close()


@pytest.mark.parametrize("sort", SORTS)
@pytest.mark.parametrize("band", ["all", "medium", "unscored"])
def test_a_deep_page_is_one_index_range_on_sqlite(big_store: SqlStore, band: str,
                                                  sort: str) -> None:
    """The query plan of a page far down walks the (score, id) index or the primary key and
    sorts nothing, so page 2,000 costs what page 1 costs. (One exception: "newest" within a
    score band may be planned as the band's index range, then a sort of that band: 6 ms for
    30,000 rows in bench/gallery.py.)"""
    after: tuple[Any, Any] = (None, 50_000) if band == "unscored" else (50, 50_000)
    by_created = big_store.sort_keys.created_column is not None  # created_at, from init
    if sort == "newest":  # "newest" pages by (created_at, id)
        record = big_store.get_image(50_000)
        assert record is not None and by_created
        after = (record.created, 50_000)
    query = ImageQuery(band=band, sort=sort, after=after, limit=48)  # type: ignore[arg-type]
    with big_store.engine.connect() as conn:
        for segment in page_segments(query, by_created,
                                     big_store.sort_keys.created_nullable):
            statement = big_store._segment_select(segment, 49)
            compiled = statement.compile(big_store.engine,
                                         compile_kwargs={"literal_binds": True})
            plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {compiled}"))
            if not (sort == "newest" and band != "all"):
                assert "TEMP B-TREE" not in plan, plan
            assert "USING INDEX" in plan or "INTEGER PRIMARY KEY" in plan, plan
    page = big_store.list_images(query)
    assert len(page.items) == 48


def test_uuid_keys_page_the_same_way(db_url: str, pool: object, tmp_path: object) -> None:
    """A table keyed by UUID (made by the app, then migrated): cursors carry the UUID."""
    from pixelgrade.web import WebSettings, create_app
    from tests.stores.tables import bare_table

    bare_table(db_url, ["a.jpg"] * len(LIBRARY), uuid_ids=True)
    store = SqlStore(db_url, TableSpec(), inspect=False)
    store.migrate()
    for key, (score, status, reason) in zip(
            [r["id"] for r in all_rows(store)], LIBRARY, strict=True):
        if status is not None:
            store.set_result(Outcome(key, status, score, {"reason": reason}))  # type: ignore
    table = [{"id": str(r["id"]), "score": r["score"]} for r in all_rows(store)]
    app = create_app(store, WebSettings(cache=Path(str(tmp_path)) / "cache"),
                     pool=pool)  # type: ignore[arg-type]
    with TestClient(app) as client:
        for band in BANDS:
            for sort in SORTS:
                assert walk(client, band, sort, 3) == reference_order(table, band, sort)
        one = table[0]["id"]
        assert client.get(f"/api/images/{one}").json()["id"] == one
        assert client.get("/api/images/not-a-uuid").status_code == 404
    store.close()
