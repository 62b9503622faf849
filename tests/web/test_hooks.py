"""The webhook receiver and ``POST /api/images/{id}/score`` inside ``pixelgrade serve``, on real
databases (SQLite and PostgreSQL, ``db_url``): Supabase Database Webhook payloads as
``supabase_functions.http_request`` sends them, the secret, every refusal, the bounded queue,
a row scored by the app in between, and a decoder that kills its scoring process in the upload
and re-score paths.

"Written once" is counted by the database (tests/stores/tables.py's update-counting trigger).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pixelgrade.backfill.images import ImageScorer
from pixelgrade.stores.base import Outcome, Selection
from pixelgrade.web import create_app
from tests.autoscore.counting import Recorded
from tests.autoscore.crashing import CRASH_MARK, score_data_or_die
from tests.backfill.conftest import jpeg, png
from tests.backfill.crashy import score_path_or_die
from tests.stores import tables
from tests.web.conftest import AUTH, Library, settings_for

SECRET = "whsec-test-0123456789abcdef"
HOOK = "/api/hooks/supabase"
SIGNED = {"Authorization": f"Bearer {SECRET}"}


def payload(kind: str, record: dict[str, Any] | None, old: dict[str, Any] | None = None,
            table: str = "images", schema: str = "public") -> dict[str, Any]:
    """What ``supabase_functions.http_request`` POSTs (see stores/supabase_webhook.py)."""
    return {"type": kind, "table": table, "schema": schema, "record": record,
            "old_record": old}


def record(library: Library, key: Any) -> dict[str, Any]:
    """The row as the trigger sees it (``to_jsonb(NEW)``)."""
    row = tables.rows(library.url)[key]
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


def score_of(library: Library, key: Any) -> Any:
    return tables.rows(library.url)[key]["quality_score"]


@pytest.fixture
def counters() -> Recorded:
    return Recorded()


@pytest.fixture
def hooked(library: Library, pool: ProcessPoolExecutor, counters: Recorded,
           tmp_path: Path) -> Iterator[TestClient]:
    settings = settings_for(library, webhook_secret=SECRET, error_log=tmp_path / "errors.log")
    app = create_app(library.store, settings, pool=pool, counters=counters)
    with TestClient(app) as client:
        yield client


def test_an_inserted_row_is_scored_once_in_the_background(
        hooked: TestClient, library: Library, counters: Recorded) -> None:
    tables.count_updates(library.url)
    key = library.store.insert_image("photos/coffee.jpg")
    answer = hooked.post(HOOK, json=payload("INSERT", record(library, key)), headers=SIGNED)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "accepted" and answer.json()["id"] == key
    wait_for(lambda: score_of(library, key) is not None, "the webhook's row to be scored")
    row = tables.rows(library.url)[key]
    assert row["quality_status"] == "scored"
    assert row["quality_score"] == score_of(library, library.photo_id)  # the same photo
    assert tables.updates(library.url) == {str(key): 1}
    wait_for(lambda: counters.named("image_done"), "the counters")
    assert ("image_done", "webhook", "scored", "") in counters.calls
    assert counters.named("insert_to_score")[0][1] == "webhook"


def test_the_secret_is_required_and_checked(hooked: TestClient, library: Library) -> None:
    body = payload("INSERT", record(library, library.pending_photo_id))
    missing = hooked.post(HOOK, json=body)
    assert missing.status_code == 401 and "PIXELGRADE_WEBHOOK_SECRET" in missing.text
    wrong = hooked.post(HOOK, json=body, headers={"Authorization": f"Bearer {SECRET}x"})
    assert wrong.status_code == 401
    basic = hooked.post(HOOK, json=body, headers={"Authorization": f"Basic {SECRET}"})
    assert basic.status_code == 401
    # The API token is not the webhook's secret.
    assert hooked.post(HOOK, json=body, headers=AUTH).status_code == 401
    time.sleep(0.3)
    assert score_of(library, library.pending_photo_id) is None


def test_without_a_secret_the_webhook_is_off(
        library: Library, pool: ProcessPoolExecutor) -> None:
    app = create_app(library.store, settings_for(library), pool=pool)
    with TestClient(app) as client:
        for headers in ({}, SIGNED, {"Authorization": "Bearer "}):
            refused = client.post(HOOK, json=payload(
                "INSERT", record(library, library.pending_photo_id)), headers=headers)
            assert refused.status_code == 503
            assert "set PIXELGRADE_WEBHOOK_SECRET" in refused.json()["detail"]
    assert score_of(library, library.pending_photo_id) is None


def test_malformed_and_foreign_payloads_are_refused(
        hooked: TestClient, library: Library) -> None:
    for body in (b"{not json", b"", b"\xff\xfe"):
        bad = hooked.post(HOOK, content=body, headers={**SIGNED,
                                                       "Content-Type": "application/json"})
        assert bad.status_code == 400 and "not JSON" in bad.json()["detail"]
    array = hooked.post(HOOK, json=[1, 2], headers=SIGNED)
    assert array.status_code == 400 and "not an object" in array.json()["detail"]
    other = hooked.post(HOOK, json=payload("INSERT", {"id": 1, "url": "x.jpg"},
                                           table="orders"), headers=SIGNED)
    assert other.status_code == 422
    assert "public.images, not public.orders" in other.json()["detail"]
    schema = hooked.post(HOOK, json=payload("INSERT", {"id": 1}, schema="media"),
                         headers=SIGNED)
    assert schema.status_code == 422 and "not media.images" in schema.json()["detail"]
    no_id = hooked.post(HOOK, json=payload("INSERT", {"url": "x.jpg"}), headers=SIGNED)
    assert no_id.status_code == 422 and "'id'" in no_id.json()["detail"]
    not_a_key = hooked.post(HOOK, json=payload("INSERT", {"id": "abc"}), headers=SIGNED)
    assert not_a_key.status_code == 422
    unknown = hooked.post(HOOK, json=payload("TRUNCATE", None), headers=SIGNED)
    assert unknown.status_code == 422


def test_delete_is_ignored(hooked: TestClient, library: Library) -> None:
    old = record(library, library.pending_photo_id)
    answer = hooked.post(HOOK, json=payload("DELETE", None, old), headers=SIGNED)
    assert answer.status_code == 200 and answer.json()["status"] == "ignored"
    time.sleep(0.3)
    assert score_of(library, library.pending_photo_id) is None


def test_an_update_that_changes_the_url_of_an_unscored_row_is_scored_again(
        hooked: TestClient, library: Library, caplog: pytest.LogCaptureFixture) -> None:
    store = library.store
    # The re-score trigger cleared the score when the URL changed: the record has none.
    key = store.insert_image("photos/deleted.jpg")
    old = record(library, key)
    with tables.connect(library.url) as conn:
        conn.exec_driver_sql(f"UPDATE images SET url = 'photos/coffee.jpg' WHERE id = {key}")
    new = record(library, key)
    answer = hooked.post(HOOK, json=payload("UPDATE", new, old), headers=SIGNED)
    assert answer.status_code == 202, answer.text
    wait_for(lambda: score_of(library, key) is not None, "the re-pointed row to be scored")

    # Same URL (another column changed): ignored.
    unscored = store.insert_image("photos/coffee.jpg")
    same = record(library, unscored)
    ignored = hooked.post(HOOK, json=payload("UPDATE", same, same), headers=SIGNED)
    assert ignored.status_code == 200 and ignored.json()["status"] == "ignored"
    assert "did not change url" in ignored.json()["message"]

    # URL changed but the record still carries its score: left alone, and said.
    scored = record(library, library.photo_id)
    moved = {**scored, "url": "photos/blurry.png"}
    with caplog.at_level(logging.WARNING, logger="pixelgrade.hooks"):
        kept = hooked.post(HOOK, json=payload("UPDATE", moved, scored), headers=SIGNED)
    assert kept.status_code == 200 and kept.json()["status"] == "ignored"
    assert "re-score trigger" in kept.json()["message"]
    assert "re-score trigger that `pixelgrade migrate` installs" in caplog.text
    assert SECRET not in caplog.text
    time.sleep(0.3)
    assert score_of(library, unscored) is None
    assert score_of(library, library.photo_id) == scored["quality_score"]


def _gate(library: Library) -> threading.Event:
    """Hold every ``fetch_rows`` of the store until the returned event is set: the service's
    workers are then all busy, and new keys wait in its queue."""
    gate = threading.Event()
    fetch_rows = library.store.fetch_rows

    def held(selection: Selection, ids: Any) -> Any:
        gate.wait(30)
        return fetch_rows(selection, ids)

    library.store.fetch_rows = held  # type: ignore[method-assign]
    return gate


def test_a_burst_over_the_queue_bound_gets_503_with_retry_after(
        library: Library, pool: ProcessPoolExecutor, counters: Recorded) -> None:
    settings = settings_for(library, webhook_secret=SECRET, queue_size=3)
    app = create_app(library.store, settings, pool=pool, counters=counters)
    keys = [library.store.insert_image("photos/coffee.jpg") for _ in range(20)]
    gate = _gate(library)
    with TestClient(app) as client:
        answers = {}
        for key in keys:
            answers[key] = client.post(HOOK, json=payload("INSERT", record(library, key)),
                                       headers=SIGNED)
            time.sleep(0.01)  # let the workers take what is waiting
        accepted = [k for k, a in answers.items() if a.status_code == 202]
        refused = [k for k, a in answers.items() if a.status_code == 503]
        assert accepted and refused and len(accepted) + len(refused) == len(keys)
        # The 4 worker tasks hold what they took (held at the gate), 3 wait: the rest is
        # refused at once, without waiting for a worker.
        busy = answers[refused[0]]
        assert busy.headers["retry-after"] == "30"
        assert "rows are waiting to be scored" in busy.json()["detail"]
        assert ("queue_depth", "webhook", 3) in counters.calls
        gate.set()
        wait_for(lambda: all(score_of(library, k) is not None for k in accepted),
                 "the accepted rows to be scored")
    rows = tables.rows(library.url)
    assert all(rows[k]["quality_score"] is None and rows[k]["quality_status"] is None
               for k in refused)  # left to do, for the next sweep


def test_a_row_the_app_scores_in_between_keeps_its_score(
        hooked: TestClient, library: Library) -> None:
    tables.count_updates(library.url)
    store = library.store
    key = store.insert_image("photos/coffee.jpg")
    fetch_rows = store.fetch_rows

    def then_the_app_scores_it(selection: Selection, ids: Any) -> Any:
        rows = fetch_rows(selection, ids)
        store.write(Selection(), [Outcome(key, "scored", 13, {"format": "JPEG"})])
        return rows

    store.fetch_rows = then_the_app_scores_it  # type: ignore[method-assign]
    answer = hooked.post(f"/api/images/{key}/score?wait=true", headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "not_written"
    assert "scored by someone else" in answer.json()["message"]
    assert score_of(library, key) == 13
    assert tables.updates(library.url) == {str(key): 1}


def test_score_on_request_by_key(hooked: TestClient, library: Library) -> None:
    key = library.pending_photo_id
    path = f"/api/images/{key}/score"
    assert hooked.post(path).status_code == 401
    assert hooked.post(path, headers={"Authorization": "Bearer nope"}).status_code == 403
    assert hooked.post(path, headers=SIGNED).status_code == 403  # the secret is not the token
    assert hooked.post("/api/images/424242/score", headers=AUTH).status_code == 404
    done = hooked.post(f"{path}?wait=true", headers=AUTH)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "scored" and isinstance(done.json()["score"], int)
    assert score_of(library, key) == done.json()["score"]
    again = hooked.post(path, headers=AUTH)
    assert again.status_code == 200 and again.json()["status"] == "not_needed"
    background = hooked.post(f"/api/images/{library.missing_id}/score", headers=AUTH)
    assert background.status_code == 202
    wait_for(lambda: tables.rows(library.url)[library.missing_id]["quality_status"]
             == "failed", "the missing file to be recorded")


def test_protected_reads_leave_the_webhook_to_its_secret(
        library: Library, pool: ProcessPoolExecutor) -> None:
    settings = settings_for(library, webhook_secret=SECRET, protect_reads=True)
    with TestClient(create_app(library.store, settings, pool=pool)) as client:
        assert client.get("/api/images").status_code == 401
        answer = client.post(HOOK, json=payload(
            "INSERT", record(library, library.pending_photo_id)), headers=SIGNED)
        assert answer.status_code == 202
        wait_for(lambda: score_of(library, library.pending_photo_id) is not None, "a score")


def test_a_decoder_that_kills_its_process_in_uploads_and_rescores(
        library: Library, monkeypatch: pytest.MonkeyPatch, counters: Recorded,
        tmp_path: Path) -> None:
    """The pool is the app's own (a crash breaks it): replaced, and the image recorded
    ``worker_crash``; the next upload and re-score work."""
    monkeypatch.setattr(ImageScorer, "score_data_function", staticmethod(score_data_or_die))
    monkeypatch.setattr(ImageScorer, "score_path_function", staticmethod(score_path_or_die))
    (library.root / "photos" / "crash.jpg").write_bytes(jpeg())
    crash_row = library.store.insert_image("photos/crash.jpg")
    errors = tmp_path / "errors.log"
    settings = settings_for(library, error_log=errors, workers=1)
    with TestClient(create_app(library.store, settings, counters=counters)) as client:
        before = len(tables.rows(library.url))
        crashed = client.post("/api/images", headers=AUTH,
                              files={"file": ("a.png", png() + CRASH_MARK, "image/png")})
        assert crashed.status_code == 422, crashed.text
        assert "scoring process died on this image" in crashed.json()["detail"]
        assert len(tables.rows(library.url)) == before  # nothing stored
        assert not (library.root / "uploads").exists()
        fine = client.post("/api/images", headers=AUTH,
                           files={"file": ("b.png", png(), "image/png")})
        assert fine.status_code == 201, fine.text
        assert fine.json()["state"] == "scored"

        rescored = client.post(f"/api/images/{crash_row}/rescore", headers=AUTH)
        assert rescored.status_code == 200, rescored.text
        assert rescored.json()["state"] == "failed"
        assert "scoring process died" in rescored.json()["reason"]
        after = client.post(f"/api/images/{library.pending_photo_id}/rescore", headers=AUTH)
        assert after.json()["state"] == "scored"
    row = tables.rows(library.url)[crash_row]
    assert row["quality_status"] == "failed"
    assert row["quality_details"]["kind"] == "worker_crash"
    lines = [json.loads(line) for line in errors.read_text().splitlines()]
    assert [(line["id"], line["kind"]) for line in lines] == [
        (None, "worker_crash"), (crash_row, "worker_crash")]
    assert set(lines[0]) == {"id", "url", "kind", "message", "transient", "attempt", "time"}
    assert len(counters.named("worker_restarted")) == 2
    assert ("image_done", "upload", "failed", "worker_crash") in counters.calls
    assert ("image_done", "rescore", "failed", "worker_crash") in counters.calls
    assert ("image_done", "upload", "scored", "") in counters.calls
