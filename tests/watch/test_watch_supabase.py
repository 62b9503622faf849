"""``watch`` on a Supabase project through its REST API (the real PostgREST stack of
tests/supabase): it cannot LISTEN there, so it polls; rows inserted by the app are scored with
the bulk-write function, once each."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixelgrade.stores import SupabaseStore
from tests.backfill.conftest import ImageServer
from tests.supabase.conftest import CLIENT_NOISE, fresh_supabase, supabase_stack  # noqa: F401
from tests.supabase.helpers import (
    count_updates,
    execute,
    make_table,
    patches,
    rows,
    rpc_calls,
    updates,
)
from tests.supabase.stack import SupabaseStack
from tests.watch.conftest import running, wait_for

pytestmark = CLIENT_NOISE


def test_supabase_rows_inserted_by_the_app_are_scored_by_polling(
        fresh_supabase: SupabaseStack, image_server: ImageServer, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    stack = fresh_supabase
    monkeypatch.chdir(tmp_path)  # the store's lock file goes under ./.pixelgrade
    make_table(stack, [image_server.url("/good.jpg")], functions=True)
    count_updates(stack)
    store = SupabaseStore(stack.url, stack.service_key)
    assert store.write_mode == "rpc"
    with running(store, tmp_path) as run:
        assert run.watcher.report.mode == "poll"
        execute(stack, "INSERT INTO images (url) VALUES (%s), (%s)",
                [image_server.url("/other.jpg"), image_server.url("/missing.jpg")])
        wait_for(lambda: all(r["quality_status"] for r in rows(stack).values()),
                 "the inserted rows")
    found = rows(stack)
    assert [found[i]["quality_status"] for i in (1, 2, 3)] == ["scored", "scored", "failed"]
    assert updates(stack) == {1: 1, 2: 1, 3: 1}
    assert {k: e["via"] for k, e in run.events.rows().items()} == {
        1: "startup", 2: "poll", 3: "poll"}
    assert rpc_calls(stack) >= 2 and patches(stack) == 0  # one write per batch, no PATCH


def test_supabase_a_changed_url_is_scored_again_by_polling(
        fresh_supabase: SupabaseStack, image_server: ImageServer, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The migration SQL's trigger re-opens the row; the poll finds it below the highest id
    seen through ``pixelgrade_reopened_rows``, long before the next sweep (an hour here)."""
    stack = fresh_supabase
    monkeypatch.chdir(tmp_path)
    make_table(stack, [image_server.url("/good.jpg"), image_server.url("/good.png")],
               functions=True)
    store = SupabaseStore(stack.url, stack.service_key)
    assert store.reopened_function
    changed = image_server.url("/other.jpg")
    with running(store, tmp_path) as run:
        wait_for(lambda: all(r["quality_status"] for r in rows(stack).values()), "the rows")
        before = rows(stack)
        execute(stack, "UPDATE images SET url = %s WHERE id = 1", [changed])
        wait_for(lambda: rows(stack)[1]["quality_source"] == changed
                 and rows(stack)[1]["quality_status"], "row 1 scored for its new URL")
        report = run.watcher.report
    after = rows(stack)
    assert after[1]["quality_score"] is not None
    assert after[1]["quality_details"] != before[1]["quality_details"]
    assert after[2] == before[2]
    assert [e["via"] for e in run.events.all() if e.get("id") == 1] == ["startup", "poll"]
    assert report.sweeps == 1
