"""The SQL store on real databases: every test that takes ``db_url`` runs on SQLite and on
PostgreSQL (see tests/conftest.py). Schema, names, keyset reads, guarded writes, keys, stats
and the one-backfill-per-table lock.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from pixelgrade.cli import app
from pixelgrade.errors import BackfillLockedError, StoreError
from pixelgrade.stores import Outcome, Selection, SqlStore, TableSpec, key_to_json, open_store
from tests.stores import tables

runner = CliRunner()

POSTGRES_ONLY = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _flat(text: str) -> str:
    """Output with Rich's line wrapping undone."""
    return " ".join(text.split())


def _store(url: str, **spec: Any) -> SqlStore:
    return open_store(url, TableSpec(**spec))


def _scored(i: Any, score: int, version: str = "v-test") -> Outcome:
    return Outcome(i, "scored", score, {"scorer_version": version, "components": {}})


# -- schema ---------------------------------------------------------------------------------


def test_init_creates_table_with_every_column(db_url: str) -> None:
    store = SqlStore(db_url, must_exist=False, inspect=False)
    store.init()
    store.init()  # IF NOT EXISTS throughout: a second init changes nothing
    try:
        assert tables.columns(db_url) == ["created_at", "id", "quality_details",
                                          "quality_score", "quality_scored_at", "quality_source",
                                          "quality_status", "url"]
        assert store.capabilities.status and store.capabilities.details
        assert store.capabilities.scored_at
        assert "ix_images_quality_score" in tables.schema_snapshot(db_url)[1]
        with tables.connect(db_url) as conn:
            conn.execute(sa.text("INSERT INTO images (url) VALUES ('a.jpg')"))
            # The CHECK keeps scores in 0-100.
            with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():
                conn.execute(sa.text("UPDATE images SET quality_score = 101"))
        assert store.count_todo(Selection()) == 1
    finally:
        store.close()


@pytest.mark.parametrize("with_score", [True, False], ids=["has-score", "no-score"])
def test_migrate_adds_missing_columns_and_keeps_rows(db_url: str, with_score: bool) -> None:
    ids = tables.bare_table(db_url, ["a.jpg", "b.jpg"], with_score=with_score)
    if with_score:
        with tables.connect(db_url) as conn:
            conn.execute(sa.text("UPDATE images SET quality_score = 42 WHERE id = 1"))
    store = SqlStore(db_url, inspect=False)
    try:
        statements = store.migrate()
        added = [s for s in statements if s.startswith("ALTER TABLE")]
        assert len(added) == (4 if with_score else 5)  # quality_source too
        assert any(s.startswith("CREATE INDEX") for s in statements)
        assert {"quality_status", "quality_details", "quality_scored_at",
                "quality_score"} <= set(tables.columns(db_url))
        assert store.capabilities.status and store.capabilities.details
        after = tables.rows(db_url)
        assert list(after) == ids
        assert after[1]["url"] == "a.jpg"
        assert after[1]["quality_score"] == (42 if with_score else None)

        snapshot = tables.schema_snapshot(db_url)
        again = store.migrate()
        assert not [s for s in again if s.startswith("ALTER TABLE")], again
        assert tables.schema_snapshot(db_url) == snapshot
        assert tables.rows(db_url) == after
    finally:
        store.close()


def test_init_on_an_existing_table_adds_what_it_lacks(db_url: str) -> None:
    tables.bare_table(db_url, ["a.jpg"])
    result = runner.invoke(app, ["init", "--db", db_url])
    assert result.exit_code == 0, result.output
    assert {"quality_status", "quality_details"} <= set(tables.columns(db_url))
    assert tables.rows(db_url)[1]["url"] == "a.jpg"
    again = runner.invoke(app, ["init", "--db", db_url])
    assert again.exit_code == 0, again.output


def test_migrate_twice_through_the_cli(db_url: str) -> None:
    tables.bare_table(db_url, ["a.jpg"])
    first = runner.invoke(app, ["migrate", "--db", db_url])
    assert first.exit_code == 0, first.output
    assert "ADD COLUMN" in first.output
    snapshot = tables.schema_snapshot(db_url)
    second = runner.invoke(app, ["migrate", "--db", db_url])
    assert second.exit_code == 0, second.output
    assert "ADD COLUMN" not in second.output
    assert "is ready" in _flat(second.output)
    assert tables.schema_snapshot(db_url) == snapshot


def test_migrate_sql_prints_ddl_that_applies_cleanly(db_url: str) -> None:
    tables.bare_table(db_url, ["a.jpg", "b.jpg"], with_score=False)
    before = tables.schema_snapshot(db_url)
    result = runner.invoke(app, ["migrate", "--db", db_url, "--sql"])
    assert result.exit_code == 0, result.output
    assert tables.schema_snapshot(db_url) == before  # printed, not run
    script = result.stdout
    assert script.count("ALTER TABLE") == 5 and "CREATE INDEX" in script

    # Applied by hand, statement by statement, as a migration tool would.
    engine = sa.create_engine(SqlStore(db_url, inspect=False).url,
                              isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for statement in script.strip().rstrip(";").split(";\n\n"):
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()
    store = _store(db_url)
    try:
        assert store.capabilities.status and store.capabilities.details
        assert store.capabilities.scored_at
        assert store.write(Selection(), [_scored(1, 77)]) == 1
        assert not [s for s in store.migration_sql() if s.startswith("ALTER")]
    finally:
        store.close()


def test_init_sql_prints_ddl_and_creates_nothing(db_url: str, tmp_path: Path) -> None:
    url = db_url
    if not tables.is_postgres(db_url):
        url = f"sqlite:///{tmp_path / 'new.db'}"
    result = runner.invoke(app, ["init", "--db", url, "--sql"])
    assert result.exit_code == 0, result.output
    assert "CREATE TABLE IF NOT EXISTS" in result.stdout
    assert "quality_score" in result.stdout
    if tables.is_postgres(db_url):
        engine = sa.create_engine(SqlStore(url, inspect=False).url)
        try:
            assert not sa.inspect(engine).has_table("images")
        finally:
            engine.dispose()
    else:
        assert not (tmp_path / "new.db").exists()


# -- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "name"), [
    ("table", "images; drop table x"),
    ("table", "1abc"),
    ("table", "a.b.c"),
    ("table", "images--"),
    ("id_column", "id); --"),
    ("url_column", "1abc"),
    ("score_column", "score column"),
    ("table", "x" * 64),
])
def test_bad_identifiers_are_refused_with_a_clear_message(field: str, name: str) -> None:
    with pytest.raises(StoreError) as caught:
        TableSpec(**{field: name})
    message = str(caught.value)
    assert repr(name) in message or "schema.table" in message
    assert "identifier" in message or "schema.table" in message


def test_bad_identifier_through_the_cli_changes_nothing(db_url: str) -> None:
    tables.bare_table(db_url, ["a.jpg"])
    before = tables.checksum(db_url), tables.schema_snapshot(db_url)
    for command in (["migrate"], ["backfill", "--dry-run"], ["verify"]):
        result = runner.invoke(app, [*command, "--db", db_url, "--table",
                                     "images; drop table x"])
        assert result.exit_code == 1, result.output
        assert "not a plain SQL identifier" in _flat(result.output)
    assert (tables.checksum(db_url), tables.schema_snapshot(db_url)) == before


def test_missing_table_and_columns_name_what_exists(db_url: str) -> None:
    tables.bare_table(db_url, ["a.jpg"])
    with pytest.raises(StoreError, match=r"table 'photos' not found.*pixelgrade init"):
        _store(db_url, table="photos")
    with pytest.raises(StoreError) as caught:
        _store(db_url, url_column="src")
    message = str(caught.value)
    assert "url column 'src' not found in table 'images'" in message
    assert "(its columns: id, quality_score, url)" in message and "--url-column" in message
    tables.bare_table(db_url, ["a.jpg"], table="photos", with_score=False)
    with pytest.raises(StoreError, match=r"score column 'quality_score' not found.*"
                                         r"its columns: id, url.*pixelgrade migrate"):
        _store(db_url, table="photos")


@POSTGRES_ONLY
def test_schema_qualified_table_on_postgresql(db_url: str) -> None:
    with tables.connect(db_url) as conn:
        conn.exec_driver_sql("CREATE SCHEMA media")
        conn.exec_driver_sql("CREATE TABLE media.images (id BIGINT PRIMARY KEY, url TEXT)")
        conn.exec_driver_sql("INSERT INTO media.images VALUES (1, 'a.jpg'), (2, 'b.jpg')")
        conn.exec_driver_sql("CREATE TABLE public.images (id BIGINT PRIMARY KEY, url TEXT)")
    store = SqlStore(db_url, TableSpec(table="media.images"), inspect=False)
    try:
        store.migrate()
        assert "quality_status" in tables.columns(db_url, "images", schema="media")
        assert tables.columns(db_url, "images") == ["id", "url"]  # public.images untouched
        assert [r.id for r in store.fetch_todo(Selection(), None, 10)] == [1, 2]
        assert store.write(Selection(), [_scored(2, 64)]) == 1
        assert store.count_todo(Selection()) == 1
        assert store.identity().endswith("#media.images.quality_score")
        assert store.stats().with_score == 1
        with store.lock():
            pass
    finally:
        store.close()
    result = runner.invoke(app, ["verify", "--db", db_url, "--table", "media.images",
                                 "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["images_with_scores"] == 1


# -- reading --------------------------------------------------------------------------------


def test_fetch_todo_is_a_keyset_walk(db_url: str) -> None:
    ids = tables.pixelgrade_table(db_url, [f"{i}.jpg" for i in range(1, 11)])
    with tables.connect(db_url) as conn:
        conn.execute(sa.text("UPDATE images SET quality_score = 50 WHERE id IN (2, 5, 6)"))
    store = _store(db_url)
    try:
        todo = [i for i in ids if i not in (2, 5, 6)]
        assert store.count_todo(Selection()) == len(todo) == 7
        assert [r.id for r in store.fetch_todo(Selection(), None, 3)] == [1, 3, 4]
        assert [r.location for r in store.fetch_todo(Selection(), None, 2)] == ["1.jpg", "3.jpg"]
        assert [r.id for r in store.fetch_todo(Selection(), 4, 3)] == [7, 8, 9]
        assert [r.id for r in store.fetch_todo(Selection(), 2, 100)] == [3, 4, 7, 8, 9, 10]
        assert store.fetch_todo(Selection(), 10, 5) == []
        walked, cursor = [], None
        while batch := store.fetch_todo(Selection(), cursor, 2):
            walked += [r.id for r in batch]
            cursor = store.key_from_json(json.loads(json.dumps(key_to_json(batch[-1].id))))
        assert walked == todo
        assert [r.id for r in store.fetch_rows(Selection(), [9, 2, 1, 42])] == [1, 9]
    finally:
        store.close()


def test_selection_semantics(db_url: str) -> None:
    tables.pixelgrade_table(db_url, [f"{i}.jpg" for i in range(1, 9)])
    cases = {  # id: (score, status, scorer version)
        1: (None, None, None),          # never done
        2: (None, "failed", "v-old"),   # failed for good
        3: (None, "skipped", "v-old"),  # vector image
        4: (None, "scored", None),      # score reset by hand
        5: (80, "scored", "v-old"),     # scored by an older scorer
        6: (81, "scored", "v-new"),     # scored by the current scorer
        7: (82, None, None),            # scored by the application itself
        8: (None, "failed", "v-new"),
    }
    with tables.connect(db_url) as conn:
        for i, (score, status, version) in cases.items():
            details = None if version is None else json.dumps({"scorer_version": version})
            conn.execute(sa.text("UPDATE images SET quality_score = :s, quality_status = :st, "
                                 "quality_details = :d WHERE id = :i"),
                         {"s": score, "st": status, "d": details, "i": i})
    store = _store(db_url)

    def todo(selection: Selection) -> list[int]:
        assert store.count_todo(selection) == len(store.fetch_todo(selection, None, 100))
        return [r.id for r in store.fetch_todo(selection, None, 100)]

    try:
        assert todo(Selection()) == [1, 4]
        assert todo(Selection(retry_failed=True)) == [1, 2, 4, 8]
        # Rescoring picks whatever an older scorer version wrote, failures and skips included.
        assert todo(Selection(rescore_version="v-new")) == [1, 2, 3, 4, 5]
        assert todo(Selection(retry_failed=True, rescore_version="v-new")) == [1, 2, 3, 4, 5, 8]
        # Writes are guarded by the selection they were picked by.
        assert store.write(Selection(), [_scored(2, 10), _scored(5, 10), _scored(6, 10)]) == 0
        assert store.write(Selection(retry_failed=True), [_scored(2, 11)]) == 1
        assert store.write(Selection(rescore_version="v-new"),
                           [_scored(5, 12, "v-new"), _scored(6, 12, "v-new")]) == 1
        after = tables.rows(db_url)
        assert [after[i]["quality_score"] for i in (2, 5, 6, 7)] == [11, 12, 81, 82]
        assert after[5]["quality_details"]["scorer_version"] == "v-new"
    finally:
        store.close()


# -- writing --------------------------------------------------------------------------------


def test_write_guard_leaves_rows_scored_meanwhile(db_url: str) -> None:
    tables.pixelgrade_table(db_url, [f"{i}.jpg" for i in range(1, 5)])
    store = _store(db_url)
    try:
        picked = store.fetch_todo(Selection(), None, 10)
        assert [r.id for r in picked] == [1, 2, 3, 4]
        with tables.connect(db_url) as conn:  # another writer, between fetch and write
            conn.execute(sa.text("UPDATE images SET quality_score = 99, "
                                 "quality_status = 'scored' WHERE id IN (2, 3)"))
        outcomes = [_scored(1, 40), _scored(2, 41),
                    Outcome(3, "failed", None, {"reason": "broken"}), _scored(4, 43)]
        assert store.write(Selection(), outcomes) == 2
        after = tables.rows(db_url)
        assert [after[i]["quality_score"] for i in (1, 2, 3, 4)] == [40, 99, 99, 43]
        assert after[3]["quality_status"] == "scored" and after[3]["quality_details"] is None
        assert after[1]["quality_scored_at"] is not None
        assert store.write(Selection(), outcomes) == 0  # repeating a write is harmless
    finally:
        store.close()


def test_write_batch_of_failures_only(db_url: str) -> None:
    """A batch without a single score (every image broken) must still be written."""
    tables.pixelgrade_table(db_url, ["a.jpg", "b.jpg", "c.jpg"])
    store = _store(db_url)
    try:
        written = store.write(Selection(), [
            Outcome(1, "failed", None, {"reason": "HTTP 404"}),
            Outcome(2, "skipped", None, {"reason": "vector image"}),
        ])
        assert written == 2
        after = tables.rows(db_url)
        assert (after[1]["quality_status"], after[1]["quality_details"]) == (
            "failed", {"reason": "HTTP 404"})
        assert after[2]["quality_status"] == "skipped"
        assert store.count_todo(Selection()) == 1
    finally:
        store.close()


def test_write_keeps_details_exactly_and_splits_huge_batches(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch travels as JSON (PostgreSQL): quotes, backslashes, non-ASCII text, nested
    values and floats come back as written; a batch larger than one statement's share is
    split and its count of changed rows is still exact."""
    from pixelgrade.stores import sql

    monkeypatch.setattr(sql, "VALUES_ROWS_PER_STATEMENT", 2)
    tables.pixelgrade_table(db_url, [f"{i}.jpg" for i in range(1, 6)])
    tricky = {"reason": 'a "quoted" \\ back\\slash, ünïcødé, 日本, tab\t, newline\n',
              "components": {"sharpness": {"score": 97, "value": 2.9229}},
              "issues": ["blurry", None], "bytes": 12_345_678_901}
    store = _store(db_url)
    try:
        with tables.connect(db_url) as conn:
            conn.execute(sa.text("UPDATE images SET quality_score = 5 WHERE id = 4"))
        outcomes = [Outcome(i, "scored", 50 + i, tricky) for i in range(1, 6)]
        assert store.write(Selection(), outcomes) == 4  # three statements; row 4 refused
        after = tables.rows(db_url)
        assert [after[i]["quality_score"] for i in range(1, 6)] == [51, 52, 53, 5, 55]
        assert after[2]["quality_details"] == tricky
        assert after[4]["quality_details"] is None
    finally:
        store.close()


def _check_uuid_keys(db_url: str, ids: list[Any]) -> None:
    store = SqlStore(db_url, inspect=False)
    try:
        store.migrate()
        walked, cursor = [], None
        while batch := store.fetch_todo(Selection(), cursor, 4):
            walked += batch
            saved = json.loads(json.dumps(key_to_json(batch[-1].id)))  # via a checkpoint
            assert isinstance(saved, str)
            cursor = store.key_from_json(saved)
        assert [str(r.id) for r in walked] == [str(i) for i in ids]
        uuid.UUID(str(walked[0].id))
        assert store.write(Selection(), [_scored(r.id, 60 + n)
                                         for n, r in enumerate(walked[:3])]) == 3
        assert [str(r.id) for r in store.fetch_todo(Selection(), None, 10)] == [
            str(i) for i in ids[3:]]
        assert [str(r.id) for r in store.fetch_rows(Selection(), [walked[0].id, walked[4].id])
                ] == [str(ids[4])]
        scores = {str(k): v["quality_score"] for k, v in tables.rows(db_url).items()}
        assert [scores[str(i)] for i in ids] == [60, 61, 62, None, None, None]
    finally:
        store.close()


def test_uuid_keys(db_url: str) -> None:
    """PostgreSQL: a uuid column filled by gen_random_uuid(); SQLite: UUIDs as TEXT."""
    ids = tables.bare_table(db_url, [f"{i}.jpg" for i in range(6)], uuid_ids=True)
    _check_uuid_keys(db_url, ids)


@SQLITE_ONLY
def test_uuid_keys_in_a_sqlite_column_declared_uuid(db_url: str) -> None:
    """SQLite gives ``id UUID`` NUMERIC affinity; the keys must still be read as stored."""
    ids = tables.bare_table(db_url, [f"{i}.jpg" for i in range(6)], uuid_ids=True,
                            sqlite_id_type="UUID")
    _check_uuid_keys(db_url, ids)


def test_table_with_only_a_score_column(db_url: str) -> None:
    tables.bare_table(db_url, ["a.jpg", "b.jpg", "c.jpg"])
    store = _store(db_url)
    try:
        assert not (store.capabilities.status or store.capabilities.details
                    or store.capabilities.scored_at)
        assert store.count_todo(Selection()) == 3
        store.write(Selection(), [_scored(1, 70), Outcome(2, "failed", None, {"reason": "x"})])
        after = tables.rows(db_url)
        assert [after[i]["quality_score"] for i in (1, 2, 3)] == [70, None, None]
        assert set(after[1]) == {"id", "url", "quality_score"}
        assert [r.id for r in store.fetch_todo(Selection(), None, 10)] == [2, 3]
        stats = store.stats()
        assert stats.statuses == {"scored": 1, "pending": 2}
        assert (stats.total, stats.with_score, stats.average) == (3, 1, 70.0)
        with pytest.raises(StoreError, match=r"quality_details.*pixelgrade migrate"):
            store.count_todo(Selection(rescore_version="v-new"))
    finally:
        store.close()


# -- stats ----------------------------------------------------------------------------------


def test_stats_figures(db_url: str) -> None:
    scores = [0, 5, 10, 39, 40, 69, 70, 89, 90, 100]
    extra = {  # id: (score, status)
        11: (None, None), 12: (None, "failed"), 13: (None, "skipped"), 14: (None, "scored"),
        15: (55, None),
    }
    tables.pixelgrade_table(db_url, [f"{i}.jpg" for i in range(1, 16)])
    with tables.connect(db_url) as conn:
        for i, score in enumerate(scores, start=1):
            conn.execute(sa.text("UPDATE images SET quality_score = :s, "
                                 "quality_status = 'scored' WHERE id = :i"), {"s": score, "i": i})
        for i, (score, status) in extra.items():
            conn.execute(sa.text("UPDATE images SET quality_score = :s, quality_status = :st "
                                 "WHERE id = :i"), {"s": score, "st": status, "i": i})
    store = _store(db_url)
    try:
        stats = store.stats(high_from=70, medium_from=40)
        assert (stats.total, stats.with_score, stats.without_score) == (15, 11, 4)
        assert stats.average == round((sum(scores) + 55) / 11, 2)
        assert (stats.minimum, stats.maximum) == (0, 100)
        assert stats.bands == {"high": 4, "medium": 3, "low": 4, "unscored": 4}
        # Row 14 (status "scored", score reset to NULL) is still waiting, as todo says.
        assert stats.statuses == {"scored": 11, "pending": 2, "failed": 1, "skipped": 1}
        assert stats.statuses["pending"] == store.count_todo(Selection())
        assert stats.histogram == [2, 1, 0, 1, 1, 1, 1, 1, 1, 2]  # 100 is in the 90-100 decile
        assert store.stats(high_from=90, medium_from=10).bands == {
            "high": 2, "medium": 7, "low": 2, "unscored": 4}
    finally:
        store.close()


def test_stats_of_an_empty_table(db_url: str) -> None:
    tables.pixelgrade_table(db_url, [])
    store = _store(db_url)
    try:
        stats = store.stats()
        assert (stats.total, stats.with_score, stats.average, stats.minimum) == (0, 0, None, None)
        assert stats.histogram == [0] * 10 and stats.statuses == {}
    finally:
        store.close()


# -- lock -----------------------------------------------------------------------------------


def test_second_lock_on_the_same_table_is_refused(db_url: str) -> None:
    tables.pixelgrade_table(db_url, ["a.jpg"])
    tables.bare_table(db_url, ["b.jpg"], table="photos")
    first, second, other = _store(db_url), _store(db_url), _store(db_url, table="photos")
    try:
        with first.lock():
            with pytest.raises(BackfillLockedError) as caught, second.lock():
                pass
            message = str(caught.value)
            assert "another backfill is running on table images" in message
            assert ("advisory lock" if tables.is_postgres(db_url) else "lock file") in message
            with other.lock():  # another table is another lock
                pass
        with second.lock():  # released on exit
            pass
    finally:
        for store in (first, second, other):
            store.close()


def test_a_watch_and_a_backfill_may_share_a_table_but_not_two_watches(db_url: str) -> None:
    tables.pixelgrade_table(db_url, ["a.jpg"])
    first, second = _store(db_url), _store(db_url)
    try:
        # Guarded writes: a backfill and a watch may run side by side; two watches may not.
        with first.lock("backfill"), second.lock("watch"), pytest.raises(
                BackfillLockedError, match="another watch is running"), first.lock("watch"):
            pass
    finally:
        first.close()
        second.close()


def test_lock_is_released_when_the_holder_fails(db_url: str) -> None:
    tables.pixelgrade_table(db_url, ["a.jpg"])
    first, second = _store(db_url), _store(db_url)
    try:
        with pytest.raises(RuntimeError), first.lock():
            raise RuntimeError("backfill crashed")
        with second.lock():
            pass
    finally:
        first.close()
        second.close()


def test_sqlite_url_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(StoreError, match=r"does not exist.*pixelgrade init"):
        open_store(f"sqlite:///{missing}")
    assert not os.path.exists(missing)
