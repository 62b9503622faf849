"""Writes: the token on every write, uploads judged by content (good, non-image, oversize,
bomb) and scored before the answer, re-scores; and private reads."""

from __future__ import annotations

import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from pixelgrade.stores.base import Outcome, Selection
from pixelgrade.web import create_app
from tests.backfill.conftest import SVG, jpeg, png
from tests.images import png_header_bomb
from tests.stores import tables
from tests.web.conftest import AUTH, MAX_BYTES, TOKEN, Library, all_rows, settings_for

WRITES = [("/api/images", {"files": {"file": ("a.jpg", b"x", "image/jpeg")}}),
          ("/api/images/1/rescore", {})]


def test_writes_need_the_token(client: TestClient) -> None:
    for path, extra in WRITES:
        missing = client.post(path, **extra)  # type: ignore[arg-type]
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = client.post(path, headers={"Authorization": "Bearer nope"},
                            **extra)  # type: ignore[arg-type]
        assert wrong.status_code == 403 and wrong.json()["detail"] == "wrong API token"
        basic = client.post(path, headers={"Authorization": f"Basic {TOKEN}"},
                            **extra)  # type: ignore[arg-type]
        assert basic.status_code == 401


def test_without_a_configured_token_writes_are_off(
        library: Library, pool: ProcessPoolExecutor) -> None:
    app = create_app(library.store, settings_for(library, token=None), pool=pool)
    with TestClient(app) as client:
        refused = client.post("/api/images/1/rescore", headers=AUTH)
        assert refused.status_code == 403 and "PIXELGRADE_API_TOKEN" in refused.json()["detail"]
        assert client.get("/api/images").status_code == 200
        assert "Uploads are off" in client.get("/").text


def test_upload_is_scored_stored_under_a_generated_name_and_listed(
        client: TestClient, library: Library) -> None:
    before = len(all_rows(library.store))
    response = client.post("/api/images", headers=AUTH,
                           files={"file": ("../../etc/passwd.gif", png(), "text/plain")})
    assert response.status_code == 201, response.text
    image = response.json()
    assert image["state"] == "scored" and isinstance(image["score"], int)
    assert image["note"] is None  # nobody else scored it first
    assert image["band"] in ("high", "medium", "low") and image["format"] == "PNG"
    assert {c["name"] for c in image["components"]} >= {"sharpness", "noise"}
    assert response.headers["location"] == f"/api/images/{image['id']}"
    assert re.fullmatch(r"uploads/[0-9a-f]{32}\.png", image["location"])
    assert (library.root / image["location"]).read_bytes() == png()
    assert len(all_rows(library.store)) == before + 1
    newest = client.get("/api/images", params={"sort": "newest", "limit": 1}).json()
    assert newest["items"][0]["id"] == image["id"]
    assert newest["items"][0]["score"] == image["score"]
    picture = client.get(image["thumbnail"])
    assert picture.headers["content-type"] == "image/jpeg"


def test_an_upload_scored_by_watch_before_its_own_write_keeps_the_first_score(
        client: TestClient, library: Library) -> None:
    """The race with `pixelgrade watch`: it may score the new row between the upload's insert
    and its write. The upload's write is guarded (only while the row has no score), so the row
    is written once, keeps watch's score, and the answer says so. Counted by the database."""
    tables.count_updates(library.url)
    store = library.store
    inserted: list[Any] = []
    insert_image = store.insert_image

    def insert_then_watch_scores_it(location: str) -> Any:
        key = insert_image(location)
        inserted.append(key)
        # Another process, as `watch` writes: guarded, right after the row appears.
        assert store.write(Selection(), [Outcome(key, "scored", 13, {"format": "PNG"})]) == 1
        return key

    store.insert_image = insert_then_watch_scores_it  # type: ignore[method-assign]
    response = client.post("/api/images", headers=AUTH,
                           files={"file": ("photo.png", png(), "image/png")})
    assert response.status_code == 201, response.text
    image = response.json()
    assert image["id"] == inserted[0] and image["score"] == 13  # watch's, not the upload's
    assert "scored by another process" in image["note"] and "re-score" in image["note"]
    assert tables.updates(library.url) == {str(inserted[0]): 1}
    assert tables.rows(library.url)[inserted[0]]["quality_score"] == 13
    # An explicit re-score still overwrites.
    rescored = client.post(f"/api/images/{inserted[0]}/rescore", headers=AUTH).json()
    assert rescored["score"] != 13 and tables.updates(library.url)[str(inserted[0])] == 2


NON_IMAGES = [
    (b"<!DOCTYPE html><html><body>Not Found</body></html>", "an HTML page, not an image"),
    (b"just some words in a file\n", "plain text, not an image"),
    (SVG, "vector image (SVG)"),
    (b"", "empty file"),
    (b"\x00\x01\x02\x03garbage" * 10, "unrecognised data"),
]


def test_non_images_are_refused_with_415(client: TestClient, library: Library) -> None:
    before = len(all_rows(library.store))
    for data, said in NON_IMAGES:
        response = client.post("/api/images", headers=AUTH,
                               files={"file": ("photo.jpg", data, "image/jpeg")})
        assert response.status_code == 415, response.text
        assert said in response.json()["detail"]
    assert len(all_rows(library.store)) == before
    assert not (library.root / "uploads").exists()


def test_oversize_uploads_are_refused_with_413(client: TestClient, library: Library) -> None:
    big = jpeg() + b"\x00" * MAX_BYTES  # a real JPEG header, over the cap
    response = client.post("/api/images", headers=AUTH,
                           files={"file": ("big.jpg", big, "image/jpeg")})
    assert response.status_code == 413
    assert f"{MAX_BYTES:,}-byte limit" in response.json()["detail"]

    def chunked() -> object:  # no Content-Length: the cap is counted as bytes arrive
        boundary = b"--pgboundary"
        yield boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="b.jpg"'
        yield b"\r\nContent-Type: image/jpeg\r\n\r\n"
        for _ in range(10):
            yield b"\xff" * (MAX_BYTES // 4)
        yield b"\r\n" + boundary + b"--\r\n"

    streamed = client.post("/api/images", content=chunked(),  # type: ignore[arg-type]
                           headers={**AUTH,
                                    "Content-Type": "multipart/form-data; boundary=pgboundary"})
    assert streamed.status_code == 413
    assert not (library.root / "uploads").exists()


def test_a_decompression_bomb_is_refused_with_the_reason(
        client: TestClient, library: Library) -> None:
    for bomb in (png_header_bomb(), png_header_bomb(12_000, 12_000)):  # 900 MP, 144 MP
        response = client.post("/api/images", headers=AUTH,
                               files={"file": ("bomb.png", bomb, "image/png")})
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert detail.startswith("the image cannot be scored: PNG header declares"), detail
        assert "MP limit" in detail
    truncated = client.post("/api/images", headers=AUTH,
                            files={"file": ("cut.jpg", jpeg()[:2000], "image/jpeg")})
    assert truncated.status_code == 422
    assert not (library.root / "uploads").exists()


def test_rescore_scores_a_pending_row_and_overwrites(
        client: TestClient, library: Library) -> None:
    key = library.pending_photo_id
    assert client.get(f"/api/images/{key}").json()["state"] == "pending"
    response = client.post(f"/api/images/{key}/rescore", headers=AUTH)
    assert response.status_code == 200, response.text
    image = response.json()
    assert image["state"] == "scored" and image["score"] == client.get(
        f"/api/images/{library.photo_id}").json()["score"]
    # One timestamp format whatever the backend (SQLite text, PostgreSQL timestamptz).
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", image["scored_at"]), image
    # A re-score writes whatever the row held before (the backfill's guard would not).
    (library.root / "photos" / "coffee.jpg").write_bytes(b"<html>gone</html>")
    again = client.post(f"/api/images/{key}/rescore", headers=AUTH).json()
    assert again["state"] == "failed" and again["score"] is None
    assert "HTML page" in again["reason"]


def test_rescore_whose_url_changes_meanwhile_is_refused_and_says_so(
        client: TestClient, library: Library, monkeypatch: Any) -> None:
    """The row's URL is changed by the app after the re-score read it: the score of the old
    picture is not written (409, saying why), and the row is left to do for the new one."""
    import sqlalchemy as sa

    key = library.photo_id
    store = library.store
    original = store.get_image

    def read_then_move(wanted: Any) -> Any:
        record = original(wanted)
        with store.engine.begin() as conn:
            conn.execute(sa.text("UPDATE images SET url = 'photos/moved.jpg' WHERE id = :id"),
                         {"id": key})
        return record

    monkeypatch.setattr(store, "get_image", read_then_move)
    response = client.post(f"/api/images/{key}/rescore", headers=AUTH)
    monkeypatch.setattr(store, "get_image", original)
    assert response.status_code == 409, response.text
    assert "URL changed while it was being scored" in response.text
    # The re-open trigger cleared the old picture's score: the row is to do again.
    row = client.get(f"/api/images/{key}").json()
    assert row["state"] == "pending" and row["score"] is None


def test_rescore_of_missing_file_and_unknown_row(client: TestClient, library: Library) -> None:
    failed = client.post(f"/api/images/{library.missing_id}/rescore", headers=AUTH).json()
    assert failed["state"] == "failed" and "file not found" in failed["reason"]
    assert client.post("/api/images/424242/rescore", headers=AUTH).status_code == 404
    skipped = client.post(f"/api/images/{library.svg_id}/rescore", headers=AUTH).json()
    assert skipped["state"] == "skipped"


def test_protected_reads(library: Library, pool: ProcessPoolExecutor, tmp_path: Path) -> None:
    app = create_app(library.store, settings_for(library, protect_reads=True), pool=pool)
    with TestClient(app) as client:
        assert client.get("/api/images").status_code == 401
        assert client.get("/").status_code == 401
        assert client.get("/thumbs/1/thumb.jpg").status_code == 401
        assert client.get("/static/style.css").status_code == 200
        assert client.get("/api/images", headers=AUTH).status_code == 200
        opened = client.get(f"/?token={TOKEN}")
        assert opened.status_code == 200 and "HttpOnly" in opened.headers["set-cookie"]
        assert client.get("/stats").status_code == 200  # the cookie now
        client.cookies.clear()
        assert client.get("/?token=wrong").status_code == 401
