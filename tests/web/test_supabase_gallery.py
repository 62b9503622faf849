"""The gallery over a Supabase project's REST API (the real PostgREST stack of
tests/supabase): the same pages of every band and sort as on SQL, counts, one image, an upload
(row added through the API) and a re-score."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pixelgrade.scoring import ScoringConfig
from pixelgrade.stores import SupabaseStore
from pixelgrade.stores.base import BANDS, SORTS
from pixelgrade.web import WebSettings, create_app
from tests.backfill.conftest import jpeg, png
from tests.supabase.conftest import CLIENT_NOISE, fresh_supabase, supabase_stack  # noqa: F401
from tests.supabase.helpers import execute, make_table, query, rows
from tests.supabase.stack import SupabaseStack
from tests.web.conftest import AUTH, LIBRARY, TOKEN, reference_order, walk

pytestmark = CLIENT_NOISE


@pytest.fixture
def supabase_client(fresh_supabase: SupabaseStack, tmp_path: Path,  # noqa: F811
                    pool: ProcessPoolExecutor) -> Iterator[tuple[TestClient, SupabaseStack]]:
    stack = fresh_supabase
    (tmp_path / "a.jpg").write_bytes(jpeg())
    make_table(stack, ["a.jpg"] * len(LIBRARY), functions=True)
    for key, (score, status, reason) in enumerate(LIBRARY, start=1):
        if status is not None:
            details = {"reason": reason} if reason else {"format": "JPEG"}
            execute(stack, "UPDATE images SET quality_score = %s, quality_status = %s, "
                    "quality_details = %s::jsonb WHERE id = %s",
                    (score, status, json.dumps(details), key))
    store = SupabaseStore(stack.url, stack.service_key)
    settings = WebSettings(token=TOKEN, uploads=tmp_path / "uploads", root=tmp_path,
                           cache=tmp_path / "thumbnails", page_size=4,
                           scoring=ScoringConfig(max_bytes=400_000))
    with TestClient(create_app(store, settings, pool=pool)) as client:
        yield client, stack


def test_pages_counts_and_writes_over_rest(
        supabase_client: tuple[TestClient, SupabaseStack]) -> None:
    client, stack = supabase_client
    table = [{"id": row["id"], "score": row["quality_score"]} for row in rows(stack).values()]
    for band in BANDS:
        for sort in SORTS:
            expected = reference_order(table, band, sort)
            for limit in (1, 3, 200):
                assert walk(client, band, sort, limit) == expected, (band, sort, limit)
    counts = client.get("/api/counts").json()
    assert counts == {band: len(reference_order(table, band, "newest")) for band in BANDS}
    assert client.get("/api/images/11").json()["reason"] == "file not found: gone.jpg"
    assert client.get("/api/images/999").status_code == 404
    assert client.get("/api/images/abc").status_code == 404
    assert "<svg" in client.get("/stats").text

    uploaded = client.post("/api/images", headers=AUTH,
                           files={"file": ("x.png", png(), "image/png")})
    assert uploaded.status_code == 201, uploaded.text
    image = uploaded.json()
    stored = rows(stack)[image["id"]]
    assert stored["quality_score"] == image["score"] and stored["quality_status"] == "scored"
    assert stored["url"] == image["location"] and stored["quality_scored_at"] is not None

    rescored = client.post("/api/images/10/rescore", headers=AUTH).json()
    assert rescored["state"] == "scored" and rows(stack)[10]["quality_score"] == rescored["score"]
    picture = client.get("/thumbs/10/thumb.jpg")
    assert picture.headers["content-type"] == "image/jpeg"


def test_previous_and_next_over_rest(supabase_client: tuple[TestClient, SupabaseStack]) -> None:
    """The image page's previous/next links (backward and forward keyset pages of one) walk
    the same order over Supabase as over SQL."""
    from tests.web.test_explains import walk_links

    client, stack = supabase_client
    table = [{"id": row["id"], "score": row["quality_score"]} for row in rows(stack).values()]
    for band, sort in (("all", "score_desc"), ("medium", "score_asc"), ("unscored", "newest"),
                       ("all", "score_asc")):
        expected = [str(i) for i in reference_order(table, band, sort)]
        assert walk_links(client, expected[0], band, sort, "next") == expected, (band, sort)
        assert walk_links(client, expected[-1], band, sort, "prev") == expected[::-1], (
            band, sort)


def test_newest_is_by_created_at_over_rest(fresh_supabase: SupabaseStack,  # noqa: F811
                                           tmp_path: Path) -> None:
    """A UUID-keyed table with created_at (ties, and rows without a time): "Newest" pages
    over PostgREST in the same order as on SQL, timestamps with microseconds and time zones
    passing through the cursors' filters exactly."""
    from pixelgrade.gallery import Gallery
    from pixelgrade.stores import TableSpec
    from pixelgrade.stores.schema import supabase_migration_statements
    from tests.stores.test_newest import ROWS, _expected, _walk

    stack = fresh_supabase
    execute(stack, "CREATE TABLE images (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "
                   "url text, created_at timestamptz, added_on date)")
    execute(stack, ";\n".join(supabase_migration_statements(TableSpec())))
    made = []
    for time, score in ROWS:
        found = query(stack, "INSERT INTO images (url, created_at, quality_score) VALUES "
                      "('a.jpg', %s, %s) RETURNING id", (time, score))
        made.append({"id": found[0]["id"], "created": time, "score": score})
    stack.reload_schema()
    store = SupabaseStore(stack.url, stack.service_key)
    assert store.sort_keys.created_column == "created_at"
    assert not store.sort_keys.integer_key
    gallery = Gallery(store)
    assert gallery.sort_labels["newest"] == "Newest"
    for band in BANDS:
        for limit in (1, 3, 50):
            assert _walk(gallery, band, limit) == _expected(made, band), (band, limit)
    named = SupabaseStore(stack.url, stack.service_key, TableSpec(created_column="added_on"))
    assert named.sort_keys.created_column == "added_on"
    with pytest.raises(Exception, match="created column 'made_at' not found"):
        SupabaseStore(stack.url, stack.service_key, TableSpec(created_column="made_at"))
