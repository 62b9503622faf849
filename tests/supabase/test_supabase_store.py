"""The Supabase store against the real PostgREST stack: reads past the max-rows cap, the two
write modes (one RPC per batch, or guarded per-row PATCH) and their guard, ``migrate`` for a
project, and images in Supabase Storage.

Runs go through the ``pixelgrade`` command in-process (``CliRunner``) with the project's
settings in the environment, in a working directory of the test's own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from pixelgrade.scoring import SCORER_VERSION
from pixelgrade.stores import Selection, SupabaseStore
from pixelgrade.stores.base import Outcome
from pixelgrade.stores.supabase_sql import STATS_FUNCTION
from tests import images
from tests.backfill.conftest import SVG, jpeg, png
from tests.supabase import stack as stack_module
from tests.supabase.helpers import (
    ImageHost,
    checksum,
    cli,
    count_updates,
    env,
    execute,
    flat,
    make_table,
    migration_sql,
    patches,
    rows,
    rpc_calls,
    serve,
    updates,
    wait_for,
)
from tests.supabase.stack import MAX_ROWS, SupabaseStack


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (no ``.env``) and no database settings in the environment."""
    for name in ("DATABASE_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def image_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[ImageHost]:
    # The image host is on loopback, which the SSRF guard refuses by default: the commands
    # of the tests that use it opt in (the Supabase project itself is trusted as configured).
    monkeypatch.setenv("PIXELGRADE_ALLOW_PRIVATE_NETWORK", "1")
    yield from serve(ImageHost())


def _files(workdir: Path) -> list[str]:
    return ["--workers", "1", "--checkpoint", str(workdir / "c.json"),
            "--error-log", str(workdir / "e.log")]


def _json(result: Any) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- reads: keyset pages, exact counts, the 1,000-row cap --------------------------------------


def test_a_run_pages_past_the_max_rows_cap(fresh_supabase: SupabaseStack, workdir: Path) -> None:
    """2,500 rows in batches of 1,500: each page asked for 1,500 and got 1,000, and the run
    went on until an empty page, not until the first short one."""
    stack = fresh_supabase
    # Two small files for all the rows: a photo every 250th row, else an SVG drawing (skipped
    # after a glance at its first bytes: the run's cost is the paging, not the scoring).
    (workdir / "a.jpg").write_bytes(images.jpeg(images.thumbnail(96, 64)))
    (workdir / "a.svg").write_bytes(SVG)
    ids = make_table(stack, ["a.jpg" if i % 250 == 0 else "a.svg" for i in range(2500)],
                     functions=True)
    count_updates(stack)
    stack.requests.clear()

    report = _json(cli("backfill", "--batch-size", "1500", "--root", str(workdir), "--json",
                       *_files(workdir), environment=env(stack)))
    assert report["todo_at_start"] == 2500  # an exact count, past the cap
    assert (report["processed"], report["written"]) == (2500, 2500)
    assert (report["scored"], report["skipped"], report["failed"]) == (10, 2490, 0)
    assert report["finished"] and report["not_written_already_done"] == 0
    assert updates(stack) == dict.fromkeys(ids, 1)

    requests = [(method, unquote(path)) for method, path, _ in stack.requests]
    pages = [path for method, path in requests
             if method == "GET" and path.startswith("/rest/v1/images?select=id,url")]
    assert len(pages) == 4, pages  # 1,000 + 1,000 + 500 + the empty page that ends the run
    assert all("limit=1500" in path and "quality_score.is.null" in path for path in pages)
    assert ["id=gt." in path for path in pages] == [False, True, True, True]
    assert "id=gt.1000&" in pages[1] and "id=gt.2000&" in pages[2] and "id=gt.2500&" in pages[3]
    heads = [path for method, path in requests if method == "HEAD"]
    assert heads and all("quality_score.is.null" in path for path in heads)
    # One RPC per batch (the batches are the pages: 1,000, 1,000, 500), after one probe.
    assert rpc_calls(stack) == 1 + 3 and patches(stack) == 0

    store = SupabaseStore(stack.url, stack.service_key)
    assert store.count_todo(Selection()) == 0
    stats = store.stats()
    assert stats.with_score == 10 and stats.statuses == {"scored": 10, "skipped": 2490}
    assert stats.versions == {SCORER_VERSION: 2500}
    # Without the statistics function (an older project), the counts come from HEAD requests.
    execute(stack, f"DROP FUNCTION {STATS_FUNCTION}(integer, integer); "
                   "NOTIFY pgrst, 'reload schema'")
    time.sleep(1.0)
    assert store.stats().versions == {SCORER_VERSION: 2500}
    execute(stack, "UPDATE images SET quality_score = NULL, quality_status = NULL "
                   "WHERE id > 100")
    assert store.count_todo(Selection()) == 2400
    assert store.count_todo(Selection(), after=1500) == 1000
    page = store.fetch_todo(Selection(), None, 2500)
    assert len(page) == MAX_ROWS and page[0].id == 101 and page[-1].id == 1100


# -- writes: one RPC per batch, or guarded PATCH; the guard -------------------------------------


@pytest.mark.parametrize("mode", ["rpc", "patch"])
def test_writes_never_overwrite_a_score_written_meanwhile(
        fresh_supabase: SupabaseStack, workdir: Path, image_host: ImageHost, mode: str) -> None:
    stack = fresh_supabase
    image_host.files["/c.jpg"] = jpeg("coins.png")
    names = ["/a.jpg", "/b.png", "/c.jpg", "/a.jpg", "/missing.jpg", "/b.png", "/a.jpg"]
    ids = make_table(stack, [image_host.url(n) for n in names], migrate=True,
                     functions=mode == "rpc")
    execute(stack, "UPDATE images SET quality_score = 42 WHERE id = 7")  # scored by the app
    count_updates(stack)
    store = SupabaseStore(stack.url, stack.service_key)
    assert store.write_mode == mode

    before = checksum(stack)
    dry = cli("backfill", "--dry-run", *_files(workdir), environment=env(stack))
    assert dry.exit_code == 0, dry.output
    note = "has no pixelgrade_write_scores function, or one from before writes checked the URL"
    assert (note in flat(dry.output)) is (mode == "patch")
    assert "Found 6 images without quality scores" in flat(dry.output)
    assert checksum(stack) == before

    def someone_else(path: str) -> None:  # row 3 is scored by another writer mid-download
        if path == "/c.jpg":
            execute(stack, "UPDATE images SET quality_score = 99 WHERE id = 3")
    image_host.on_request = someone_else
    stack.requests.clear()

    result = cli("backfill", "--batch-size", "3", "--json", *_files(workdir),
                 environment=env(stack))
    report = _json(result)
    assert (report["processed"], report["scored"], report["failed"]) == (6, 5, 1)
    assert report["written"] == 5 and report["not_written_already_done"] == 1
    assert "1 rows were scored by someone else meanwhile" in flat(result.stderr)

    table = rows(stack)
    assert (table[3]["quality_score"], table[3]["quality_status"],
            table[3]["quality_details"], table[3]["quality_scored_at"]) == (99, None, None, None)
    assert table[7]["quality_score"] == 42 and table[7]["quality_status"] is None
    for i in (1, 2, 4, 6):
        assert 0 <= table[i]["quality_score"] <= 100 and table[i]["quality_status"] == "scored"
        assert table[i]["quality_details"]["format"] in ("JPEG", "PNG")
        assert table[i]["quality_scored_at"] is not None
    assert table[5]["quality_status"] == "failed" and table[5]["quality_score"] is None
    assert "HTTP 404" in table[5]["quality_details"]["reason"]
    # Each row once: row 3 by the other writer only, row 7 never.
    assert updates(stack) == dict.fromkeys(ids[:6], 1)

    if mode == "rpc":
        assert rpc_calls(stack) == 1 + 2 and patches(stack) == 0  # probe + one per batch
    else:
        assert rpc_calls(stack) == 1 and patches(stack) == 6  # the probe found no function

    # The guard at the store level: ids fetched, then scored by someone else, then written.
    execute(stack, "UPDATE images SET quality_score = NULL, quality_status = NULL "
                   "WHERE id IN (1, 2)")
    todo = store.fetch_todo(Selection(), None, 10)
    assert [row.id for row in todo] == [1, 2]
    execute(stack, "UPDATE images SET quality_score = 11 WHERE id = 2")
    outcomes = [Outcome(row.id, "scored", 80, {"scorer_version": "t"}) for row in todo]
    outcomes.append(Outcome(5, "scored", 80, {}))  # failed: not to do without --retry-failed
    assert store.write(Selection(), outcomes) == 1
    assert [rows(stack)[i]["quality_score"] for i in (1, 2, 5)] == [80, 11, None]
    assert store.write(Selection(retry_failed=True), [Outcome(5, "scored", 81, {})]) == 1
    assert rows(stack)[5]["quality_status"] == "scored"


# -- migrate for a Supabase project -------------------------------------------------------------


def test_migrate_prints_sql_for_the_sql_editor(fresh_supabase: SupabaseStack,
                                               workdir: Path) -> None:
    stack = fresh_supabase
    printed = cli("migrate", "--supabase", "--sql")  # no settings needed to print
    assert printed.exit_code == 0, printed.output
    sql = printed.stdout
    assert sql == migration_sql()
    for expected in ("ADD COLUMN IF NOT EXISTS quality_status",
                     "CREATE INDEX IF NOT EXISTS ix_images_quality_score",
                     'CREATE OR REPLACE FUNCTION "public"."pixelgrade_write_scores"',
                     'CREATE OR REPLACE FUNCTION "public"."pixelgrade_quality_stats"',
                     "TO service_role"):
        assert expected in sql
    assert "CONCURRENTLY" not in sql  # the SQL editor runs a script in one transaction

    make_table(stack, ["a.jpg"])
    before = checksum(stack)
    for args in (("migrate", "--db", "supabase"), ("migrate", "--supabase", "--db", "supabase"),
                 ("migrate", "--supabase")):  # the last one: Supabase chosen by the settings
        result = cli(*args, environment=env(stack))
        assert result.exit_code == 0, result.output
        assert result.stdout == sql
        explained = flat(result.stderr)
        assert "Paste the SQL above into the SQL editor" in explained
        assert "the REST API cannot change the schema" in explained
    assert checksum(stack) == before  # printed, not applied

    store = SupabaseStore(stack.url, stack.service_key)
    assert store.write_mode == "patch" and not store.capabilities.status
    execute(stack, sql)
    execute(stack, sql)  # pasted twice: harmless
    stack.reload_schema()
    store.refresh()
    assert store.write_mode == "rpc"
    assert (store.capabilities.status, store.capabilities.details,
            store.capabilities.scored_at) == (True, True, True)


def test_migrate_through_the_direct_connection(fresh_supabase: SupabaseStack,
                                               workdir: Path) -> None:
    stack = fresh_supabase
    make_table(stack, ["a.jpg"])
    loads = stack.postgrest.schema_loads()
    result = cli("migrate", "--supabase", "--db", stack.db_url)
    assert result.exit_code == 0, result.output
    assert "is ready" in flat(result.output) and "pixelgrade_write_scores" in result.output
    # The migration ends with NOTIFY pgrst: PostgREST reloads without anyone asking.
    wait_for(lambda: stack.postgrest.schema_loads() > loads, what="PostgREST schema reload")
    store = SupabaseStore(stack.url, stack.service_key)
    assert store.write_mode == "rpc"
    again = cli("migrate", "--supabase", "--db", stack.db_url)
    assert again.exit_code == 0, again.output


# -- Supabase Storage ---------------------------------------------------------------------------


@pytest.fixture
def storage_requests(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, str]]]:
    """(path, headers) of every Storage request the stack's gateway receives."""
    seen: list[tuple[str, dict[str, str]]] = []
    original = stack_module._GatewayHandler._storage

    def recording(handler: Any, rest: str) -> int:
        seen.append((handler.path, {k.lower(): v for k, v in handler.headers.items()}))
        return original(handler, rest)
    monkeypatch.setattr(stack_module._GatewayHandler, "_storage", recording)
    return seen


def test_private_bucket_is_read_with_the_service_key_and_only_there(
        fresh_supabase: SupabaseStack, workdir: Path, image_host: ImageHost,
        storage_requests: list[tuple[str, dict[str, str]]]) -> None:
    stack = fresh_supabase
    stack.storage.put("photos", "2026/a.jpg", jpeg())
    stack.storage.put("photos", "b c.png", png("chelsea.png"))
    paths = ["2026/a.jpg", "b c.png", "photos/2026/a.jpg", "2026/none.jpg",
             image_host.url("/a.jpg")]  # a full URL to another host: fetched as it is
    make_table(stack, paths, column="storage_path", functions=True)

    result = cli("backfill", "--bucket", "photos", "--path-column", "storage_path", "--json",
                 *_files(workdir), environment=env(stack))
    report = _json(result)
    assert (report["scored"], report["failed"], report["retry_later"]) == (4, 1, 0)
    table = rows(stack)
    assert [table[i]["quality_status"] for i in range(1, 6)] == [
        "scored", "scored", "scored", "failed", "scored"]
    assert table[2]["quality_details"]["format"] == "PNG"
    missing = table[4]["quality_details"]
    assert missing["kind"] == "http_404" and "HTTP 404" in missing["reason"]
    assert "/storage/v1/object/photos/2026/none.jpg" in missing["reason"]
    log = [json.loads(line) for line in (workdir / "e.log").read_text().splitlines()]
    assert [(r["id"], r["kind"]) for r in log] == [(4, "http_404")]

    assert sorted(path for path, _ in storage_requests) == sorted([
        "/storage/v1/object/photos/2026/a.jpg", "/storage/v1/object/photos/b%20c.png",
        "/storage/v1/object/photos/2026/a.jpg", "/storage/v1/object/photos/2026/none.jpg"])
    for _, headers in storage_requests:
        assert headers["authorization"] == f"Bearer {stack.service_key}"
    assert [seen.path for seen in image_host.seen] == ["/a.jpg"]
    assert not {"authorization", "apikey"} & set(image_host.seen[0].headers)


def test_public_bucket_is_read_without_credentials(
        fresh_supabase: SupabaseStack, workdir: Path,
        storage_requests: list[tuple[str, dict[str, str]]]) -> None:
    stack = fresh_supabase
    stack.storage.put("pub", "x/1.jpg", jpeg())
    stack.storage.put("pub", "x/2.png", png("chelsea.png"))
    stack.storage.make_public("pub")
    make_table(stack, ["x/1.jpg", "x/2.png", "x/3.jpg"], column="storage_path",
               functions=True)

    report = _json(cli("backfill", "--bucket", "pub", "--public-bucket", "--path-column",
                       "storage_path", "--json", *_files(workdir), environment=env(stack)))
    assert (report["scored"], report["failed"]) == (2, 1)
    assert sorted(path for path, _ in storage_requests) == [
        stack.public_url("pub", p).removeprefix(stack.url) for p in ("x/1.jpg", "x/2.png",
                                                                     "x/3.jpg")]
    for _, headers in storage_requests:
        assert not {"authorization", "apikey"} & set(headers)
    assert ("GET", "/storage/v1/object/public/pub/x/3.jpg", 404) in stack.requests
    assert "HTTP 404" in rows(stack)[3]["quality_details"]["reason"]

    # The same bucket named as private: the key goes to Storage (this stack's private route).
    storage_requests.clear()
    execute(stack, "UPDATE images SET quality_score = NULL, quality_status = NULL")
    private = cli("backfill", "--bucket", "pub", "--path-column", "storage_path",
                  *_files(workdir), environment=env(stack))
    assert private.exit_code == 0, private.output
    assert len(storage_requests) == 3
    assert all(h.get("authorization") == f"Bearer {stack.service_key}"
               for _, h in storage_requests)
