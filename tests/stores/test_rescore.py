"""A changed picture is scored again: the URL-change trigger, URL-checked writes, and the
re-opened rows that ``watch``'s polls read (issue 15, item 2).

Every test runs on a real SQLite file and a real PostgreSQL database (``db_url``); the rows
are changed by a connection of the test's own, as the application would change them.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from pixelgrade.backfill.images import count_batch, failed_result, row_result
from pixelgrade.cli import app
from pixelgrade.stores import SqlStore, SupabaseStore
from pixelgrade.stores.base import Outcome, Row, Selection
from pixelgrade.watch import WatchReport
from tests.stores import tables
from tests.supabase.conftest import CLIENT_NOISE, fresh_supabase, supabase_stack  # noqa: F401
from tests.supabase.helpers import execute as supabase_execute
from tests.supabase.helpers import make_table, migration_sql
from tests.supabase.helpers import rows as supabase_rows
from tests.supabase.stack import SupabaseStack

pytestmark = CLIENT_NOISE
runner = CliRunner()
RESULT_COLUMNS = ("quality_score", "quality_status", "quality_details", "quality_scored_at")


def _scored_table(url: str, locations: list[str]) -> SqlStore:
    """``pixelgrade init``'s table with every row scored (score 80 + id) for its URL."""
    ids = tables.pixelgrade_table(url, locations)
    store = SqlStore(url)
    written = store.write(Selection(), [
        Outcome(key, "scored", 80 + key, {"scorer_version": "2"}, source=location)
        for key, location in zip(ids, locations, strict=True)])
    assert written == len(ids)
    return store


def _execute(url: str, sql: str, **params: Any) -> None:
    with tables.connect(url) as conn:
        conn.execute(sa.text(sql), params)


def test_a_url_change_clears_the_result_and_keeps_the_old_url_as_source(db_url: str) -> None:
    store = _scored_table(db_url, ["a.jpg", "b.jpg", "c.jpg"])
    try:
        assert tables.rows(db_url)[1]["quality_source"] == "a.jpg"  # written with the score
        assert store.fetch_reopened(Selection(), None, 10) == []
        _execute(db_url, "UPDATE images SET url = 'new-a.jpg' WHERE id = 1")
        rows = tables.rows(db_url)
        assert [rows[1][column] for column in RESULT_COLUMNS] == [None] * 4
        assert rows[1]["quality_source"] == "a.jpg" and rows[1]["url"] == "new-a.jpg"
        assert rows[2]["quality_score"] == 82 and rows[3]["quality_score"] == 83
        assert store.count_todo(Selection()) == 1
        assert store.fetch_reopened(Selection(), None, 10) == [Row(1, "new-a.jpg")]
        assert store.fetch_reopened(Selection(), 1, 10) == []  # keyset: after id 1
        # Scored again for the new URL: the source follows, and the row is no longer re-opened.
        assert store.write(Selection(), [Outcome(1, "scored", 55, None,
                                                 source="new-a.jpg")]) == 1
        assert tables.rows(db_url)[1]["quality_source"] == "new-a.jpg"
        assert store.fetch_reopened(Selection(), None, 10) == []
    finally:
        store.close()


def test_insert_to_score_times_are_for_first_results_only(db_url: str) -> None:
    """A re-opened row was added long before its new picture: its creation time is not
    handed out for the insert-to-score histogram; a row never scored is."""
    ids = tables.pixelgrade_table(db_url, ["a.jpg", "b.jpg"])
    store = SqlStore(db_url)
    try:
        assert set(store.created_times(ids)) == {1, 2}
        assert store.write(Selection(), [Outcome(1, "scored", 80, None, source="a.jpg")]) == 1
        _execute(db_url, "UPDATE images SET url = 'new-a.jpg' WHERE id = 1")
        assert store.count_todo(Selection()) == 2  # re-opened, and still to do
        assert set(store.created_times(ids)) == {2}
    finally:
        store.close()


def test_a_failed_row_whose_url_is_fixed_is_to_do_again(db_url: str) -> None:
    tables.pixelgrade_table(db_url, ["gone.jpg"])
    store = SqlStore(db_url)
    try:
        failed = failed_result(Row(1, "gone.jpg"), "gone.jpg", "http_404", "not found",
                               transient=False)
        assert failed.outcome is not None and failed.outcome.source == "gone.jpg"
        assert store.write(Selection(), [failed.outcome]) == 1
        assert store.count_todo(Selection()) == 0
        _execute(db_url, "UPDATE images SET url = 'fixed.jpg' WHERE id = 1")
        assert tables.rows(db_url)[1]["quality_status"] is None
        assert store.fetch_reopened(Selection(), None, 10) == [Row(1, "fixed.jpg")]
    finally:
        store.close()


def test_an_update_that_writes_url_and_score_together_keeps_the_apps_score(
        db_url: str) -> None:
    store = _scored_table(db_url, ["a.jpg"])
    try:
        _execute(db_url, "UPDATE images SET url = 'b.jpg', quality_score = 12 WHERE id = 1")
        row = tables.rows(db_url)[1]
        assert row["url"] == "b.jpg" and row["quality_score"] == 12
        assert row["quality_status"] == "scored" and row["quality_details"] is not None
        assert store.fetch_reopened(Selection(), None, 10) == []  # scored: not waiting
        # A status or details written with the URL is the app's result too.
        _execute(db_url, "UPDATE images SET url = 'c.jpg', quality_status = 'skipped' "
                         "WHERE id = 1")
        assert tables.rows(db_url)[1]["quality_score"] == 12
    finally:
        store.close()


def test_other_updates_and_an_unchanged_url_leave_the_score(db_url: str) -> None:
    store = _scored_table(db_url, ["a.jpg", "b.jpg"])
    try:
        before = tables.rows(db_url)
        _execute(db_url, "UPDATE images SET created_at = created_at WHERE id = 1")
        _execute(db_url, "UPDATE images SET url = 'a.jpg' WHERE id = 1")  # same value
        _execute(db_url, "UPDATE images SET url = url")  # every row, nothing changes
        _execute(db_url, "UPDATE images SET quality_score = 3 WHERE id = 2")
        after = tables.rows(db_url)
        assert after[1] == before[1]
        assert after[2]["quality_score"] == 3
    finally:
        store.close()


def test_a_url_set_to_null_counts_as_a_change(db_url: str) -> None:
    """``IS DISTINCT FROM``: a URL emptied (on a table whose URL column allows NULL) re-opens
    the row, whose result was for a picture it no longer has; a URL filled in re-opens it too
    (its source is then ``''``)."""
    tables.bare_table(db_url, ["a.jpg", None])
    store = SqlStore(db_url, inspect=False)
    try:
        store.migrate()
        assert store.write(Selection(), [Outcome(1, "scored", 90, None, source="a.jpg")]) == 1
        _execute(db_url, "UPDATE images SET url = NULL WHERE id = 1")
        _execute(db_url, "UPDATE images SET url = 'b.jpg' WHERE id = 2")
        rows = tables.rows(db_url)
        assert (rows[1]["quality_score"], rows[1]["quality_source"]) == (None, "a.jpg")
        assert rows[2]["quality_source"] == ""
        assert store.fetch_reopened(Selection(), None, 10) == [Row(1, None), Row(2, "b.jpg")]
    finally:
        store.close()


def test_a_write_whose_source_moved_is_refused_and_counted(db_url: str) -> None:
    """The scored URL is checked by every write path: the batched write (one statement per
    batch on PostgreSQL, a statement per row on SQLite), and the re-score's overwrite."""
    tables.pixelgrade_table(db_url, ["a.jpg", "b.jpg", "c.jpg"])
    store = SqlStore(db_url)
    try:
        rows = store.fetch_todo(Selection(), None, 10)  # read, then the app changes row 2
        _execute(db_url, "UPDATE images SET url = 'b2.jpg' WHERE id = 2")
        results = [row_result(row, row.location, {"status": "scored", "score": 70,
                                                  "scorer_version": "2"}) for row in rows]
        assert [r.outcome.source for r in results if r.outcome] == ["a.jpg", "b.jpg", "c.jpg"]
        written = store.write(Selection(), [r.outcome for r in results if r.outcome])
        assert written == 2
        counts = WatchReport(store=store.describe())
        count_batch(counts, results, written)
        assert counts.not_written_already_done == 1 and counts.scored == 3
        after = tables.rows(db_url)
        assert [after[i]["quality_score"] for i in (1, 2, 3)] == [70, None, 70]
        assert store.fetch_reopened(Selection(), None, 10) == [Row(2, "b2.jpg")]

        # The re-score overwrites whatever the row holds, but not for a URL it no longer has.
        assert not store.set_result(Outcome(1, "scored", 5, None, source="old.jpg"))
        assert store.set_result(Outcome(1, "scored", 6, None, source="a.jpg"))
        assert store.set_result(Outcome(3, "scored", 7, None))  # no source: not checked
        after = tables.rows(db_url)
        assert (after[1]["quality_score"], after[3]["quality_score"]) == (6, 7)
    finally:
        store.close()


def test_sqlite_trigger_does_not_recurse_with_recursive_triggers_on(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    store = _scored_table(url, ["a.jpg"])
    try:
        with tables.connect(url) as conn:
            conn.exec_driver_sql("PRAGMA recursive_triggers = ON")
            conn.exec_driver_sql("UPDATE images SET url = 'b.jpg' WHERE id = 1")
        row = tables.rows(url)[1]
        assert row["quality_score"] is None and row["quality_source"] == "a.jpg"
    finally:
        store.close()


def _triggers(url: str) -> list[str]:
    with tables.connect(url) as conn:
        if tables.is_postgres(url):
            query = ("SELECT tgname FROM pg_trigger WHERE tgrelid = 'images'::regclass "
                     "AND NOT tgisinternal ORDER BY tgname")
        else:
            query = "SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
        return list(conn.execute(sa.text(query)).scalars())


def test_migrate_installs_the_trigger_and_running_it_twice_is_harmless(db_url: str) -> None:
    tables.bare_table(db_url, ["a.jpg", "b.jpg"])
    for _ in range(2):
        result = runner.invoke(app, ["migrate", "--db", db_url])
        assert result.exit_code == 0, result.output
    expected = (["pixelgrade_notify", "pixelgrade_reopen"] if tables.is_postgres(db_url)
                else ["pixelgrade_reopen_images"])
    assert _triggers(db_url) == expected
    store = SqlStore(db_url)
    try:
        assert store.source_tracked
        assert store.write(Selection(), [Outcome(1, "scored", 90, None, source="a.jpg")]) == 1
        _execute(db_url, "UPDATE images SET url = 'a2.jpg' WHERE id = 1")
        assert tables.rows(db_url)[1]["quality_score"] is None
        assert store.fetch_reopened(Selection(), None, 10) == [Row(1, "a2.jpg")]
    finally:
        store.close()


def test_postgres_a_json_details_column_gets_the_trigger_too(pg_url: str) -> None:
    """An app's own ``json`` (not ``jsonb``) details column has no equality operator: the
    trigger compares the details as text, so ``migrate`` works on it."""
    tables.bare_table(pg_url, ["a.jpg"])
    _execute(pg_url, "ALTER TABLE images ADD COLUMN quality_details json")
    store = SqlStore(pg_url, inspect=False)
    try:
        store.migrate()
        assert store.write(Selection(), [Outcome(1, "scored", 90, {"a": 1},
                                                 source="a.jpg")]) == 1
        _execute(pg_url, "UPDATE images SET url = 'b.jpg' WHERE id = 1")
        assert tables.rows(pg_url)[1]["quality_details"] is None
    finally:
        store.close()


def test_migrate_sql_prints_the_trigger(db_url: str) -> None:
    tables.bare_table(db_url, ["a.jpg"])
    script = runner.invoke(app, ["migrate", "--db", db_url, "--sql"]).stdout
    assert "quality_source" in script and "ix_images_quality_source" in script
    if tables.is_postgres(db_url):
        assert "BEFORE UPDATE OF url ON images" in script
        assert "NEW.quality_score := NULL" in script
        # The re-open trigger comes before the notify trigger (which then sees the NULL).
        assert script.index("pixelgrade_reopen") < script.index("pixelgrade_notify")
    else:
        assert "AFTER UPDATE OF url ON images" in script
        assert "quality_source = coalesce(OLD.url, '')" in script
    assert _triggers(db_url) == []  # printed, not run


def test_migrate_supabase_sql_prints_the_trigger_and_the_reopened_function() -> None:
    result = runner.invoke(app, ["migrate", "--supabase", "--sql"], env={
        "SUPABASE_URL": "https://example.supabase.co", "SUPABASE_SERVICE_ROLE_KEY": "k"})
    assert result.exit_code == 0, result.output
    script = result.stdout
    assert "BEFORE UPDATE OF url ON images" in script
    assert "pixelgrade_reopened_rows" in script and "url_checked" in script
    assert "CONCURRENTLY" not in script
    assert "DROP FUNCTION IF EXISTS \"public\".\"pixelgrade_write_scores\"(jsonb, boolean, text)" \
        in script


@pytest.mark.parametrize("rows", [200_000])
def test_a_poll_for_reopened_rows_reads_the_partial_index(db_url: str, rows: int) -> None:
    """On a big table with many rows not scored yet, the re-opened rows are read off their
    partial index, not off the (score, id) index's NULL range nor the table."""
    tables.pixelgrade_table(db_url, [])
    with tables.connect(db_url) as conn:
        # Half the rows scored (and their source recorded), half waiting: the NULL range of
        # the (score, id) index is as big as the table's half.
        values = ("SELECT i, 'p' || i, CASE WHEN i % 2 = 0 THEN 50 END, "
                  "CASE WHEN i % 2 = 0 THEN 'p' || i END")
        insert = "INSERT INTO images (id, url, quality_score, quality_source) "
        if tables.is_postgres(db_url):
            conn.execute(sa.text(f"{insert}{values} FROM generate_series(1, {rows}) i"))
            conn.exec_driver_sql("ANALYZE images")
        else:
            conn.execute(sa.text(
                f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})"
                f" {insert}{values} FROM n"))
    _execute(db_url, "UPDATE images SET url = 'moved.jpg' WHERE id IN (10, 20)")
    store = SqlStore(db_url)
    try:
        assert store.fetch_reopened(Selection(), None, 100) == [Row(10, "moved.jpg"),
                                                                 Row(20, "moved.jpg")]
        query = store.reopened_query(Selection(), 5, 100)
        sql = str(query.compile(store.engine, compile_kwargs={"literal_binds": True}))
        with store.engine.connect() as conn:
            plan = " ".join(str(line[-1]) for line in conn.exec_driver_sql(
                f"EXPLAIN {'QUERY PLAN ' if not tables.is_postgres(db_url) else ''}{sql}"))
        assert "ix_images_quality_source" in plan, plan
        assert "ix_images_quality_score" not in plan and "Seq Scan" not in plan, plan
    finally:
        store.close()


# -- Supabase (the real PostgREST stack of tests/supabase) ----------------------------------


@pytest.mark.parametrize("functions", [True, False], ids=["rpc", "patch"])
def test_supabase_url_change_and_url_checked_writes(
        fresh_supabase: SupabaseStack, functions: bool) -> None:  # noqa: F811
    """The migration SQL's trigger re-opens the row; both write modes refuse a score for the
    old URL; re-opened rows are read through ``pixelgrade_reopened_rows`` (without the
    functions, none are found: the sweeps still find the row)."""
    stack = fresh_supabase
    make_table(stack, ["a.jpg", "b.jpg"], functions=functions, migrate=not functions)
    store = SupabaseStore(stack.url, stack.service_key)
    assert store.source_tracked
    assert store.write_mode == ("rpc" if functions else "patch")
    assert store.reopened_function is functions
    assert store.write(Selection(), [Outcome(1, "scored", 90, None, source="a.jpg"),
                                     Outcome(2, "scored", 91, None, source="b.jpg")]) == 2
    assert supabase_rows(stack)[1]["quality_source"] == "a.jpg"
    supabase_execute(stack, "UPDATE images SET url = 'a2.jpg' WHERE id = 1")
    row = supabase_rows(stack)[1]
    assert (row["quality_score"], row["quality_status"], row["quality_source"]) == (
        None, None, "a.jpg")
    assert store.fetch_reopened(Selection(), None, 10) == ([Row(1, "a2.jpg")] if functions
                                                           else [])
    assert store.fetch_reopened(Selection(), 1, 10) == []
    assert store.write(Selection(), [Outcome(1, "scored", 10, None, source="a.jpg")]) == 0
    assert supabase_rows(stack)[1]["quality_score"] is None
    assert not store.set_result(Outcome(2, "scored", 11, None, source="old.jpg"))
    assert store.set_result(Outcome(2, "scored", 12, None, source="b.jpg"))
    assert store.write(Selection(), [Outcome(1, "scored", 13, None, source="a2.jpg")]) == 1
    found = supabase_rows(stack)
    assert (found[1]["quality_score"], found[1]["quality_source"]) == (13, "a2.jpg")
    assert found[2]["quality_score"] == 12
    assert store.fetch_reopened(Selection(), None, 10) == []


def test_supabase_an_older_write_function_is_not_used(fresh_supabase: SupabaseStack  # noqa: F811
                                                      ) -> None:
    """A project whose ``pixelgrade_write_scores`` predates the URL check (three arguments)
    writes row by row (PATCH, URL-checked) until the SQL is pasted again."""
    stack = fresh_supabase
    make_table(stack, ["a.jpg"], functions=True)
    supabase_execute(stack, 'DROP FUNCTION public."pixelgrade_write_scores"'
                            "(jsonb, boolean, text, boolean)")
    supabase_execute(stack, "CREATE FUNCTION public.pixelgrade_write_scores(results jsonb, "
                            "retry_failed boolean DEFAULT false, rescore_version text "
                            "DEFAULT NULL) RETURNS integer LANGUAGE sql AS $$ SELECT 0 $$")
    stack.reload_schema()
    assert SupabaseStore(stack.url, stack.service_key).write_mode == "patch"
    supabase_execute(stack, migration_sql())
    stack.reload_schema()
    assert SupabaseStore(stack.url, stack.service_key).write_mode == "rpc"
