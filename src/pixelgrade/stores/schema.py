"""The DDL pixelgrade needs: the score columns added to an existing table, or a new table.

Statements are built as text because people apply them with their own migration tools
(``pixelgrade migrate --sql``); every identifier goes through the dialect's quoting. Each
statement is idempotent (``IF NOT EXISTS`` where the database has it, and only the columns the
table lacks otherwise), so running ``migrate`` twice is harmless.

Column choices:

* ``quality_score`` SMALLINT with a 0-100 CHECK: the score is an integer percentage, and the
  database refuses anything else whoever writes it.
* ``quality_status`` text limited to ``scored`` / ``skipped`` / ``failed``: lets a gallery say
  *why* an image has no score, and keeps permanent failures from being retried forever.
* ``quality_details`` JSON (JSONB on PostgreSQL): components, issues, scorer version.
* ``quality_scored_at`` timestamp.
* A new table (``pixelgrade init``) gets ``created_at`` and an index on (created_at, id), for
  the gallery's "Newest".
* An index on (score, id): serves ``WHERE score >= 70 ORDER BY score DESC, id`` for the
  gallery's bands and sorting, and the backfill's ``WHERE score IS NULL AND id > :cursor
  ORDER BY id`` (the NULL rows form one contiguous range of the index, ordered by id).
* ``quality_source`` text: the URL column's value the result was computed for (pixelgrade
  writes it with every result). A row whose URL differs from it has been re-opened by a URL
  change; :func:`source_index_statement` indexes exactly those rows, for ``watch``'s polls.
* On every backend, a trigger that re-opens a row whose picture changed: an UPDATE that
  changes the URL clears the row's result, so it is scored again (:func:`reopen_statements`).
* On PostgreSQL, a trigger that announces each new row without a score
  (``pg_notify('pixelgrade_images', id)``) to ``pixelgrade watch``; see
  :func:`notify_statements`. It fires after the re-open trigger, so a re-opened row is
  announced too.
"""

from __future__ import annotations

from sqlalchemy.engine import Dialect

from pixelgrade.stores.base import TableSpec

STATUSES = ("scored", "skipped", "failed")


def _quote(dialect: Dialect, spec: TableSpec) -> tuple[str, dict[str, str]]:
    prep = dialect.identifier_preparer
    table = ".".join(prep.quote(part) for part in spec.table.split("."))
    names = {
        what: prep.quote(getattr(spec, f"{what}_column"))
        for what in ("id", "url", "score", "status", "details", "scored_at")
    }
    names["source"] = prep.quote(spec.source_column)
    return table, names


def _column_types(dialect: str) -> dict[str, str]:
    if dialect == "postgresql":
        return {"details": "JSONB", "scored_at": "TIMESTAMPTZ", "status": "TEXT"}
    return {"details": "JSON", "scored_at": "TIMESTAMP", "status": "TEXT"}


def index_name(spec: TableSpec) -> str:
    return f"ix_{spec.name}_{spec.score_column}"[:63]


def migration_statements(dialect: Dialect, spec: TableSpec, existing: set[str]) -> list[str]:
    """DDL that brings table ``spec`` up to pixelgrade's columns; ``existing`` are its columns
    now (lower-cased). Empty when nothing is missing."""
    table, q = _quote(dialect, spec)
    types = _column_types(dialect.name)
    postgres = dialect.name == "postgresql"
    statuses = ", ".join(f"'{status}'" for status in STATUSES)
    wanted = [
        ("score", spec.score_column,
         f"SMALLINT CHECK ({q['score']} BETWEEN 0 AND 100)"),
        ("status", spec.status_column,
         f"{types['status']} CHECK ({q['status']} IN ({statuses}))"),
        ("details", spec.details_column, types["details"]),
        ("scored_at", spec.scored_at_column, types["scored_at"]),
        ("source", spec.source_column, "TEXT"),
    ]
    statements = []
    for what, name, column_type in wanted:
        if name.lower() in existing:
            continue
        if_not = "IF NOT EXISTS " if postgres else ""
        statements.append(f"ALTER TABLE {table} ADD COLUMN {if_not}{q[what]} {column_type}")
    index = dialect.identifier_preparer.quote(index_name(spec))
    # CONCURRENTLY: building the index on a live PostgreSQL table must not block its writers.
    concurrently = "CONCURRENTLY " if postgres else ""
    statements.append(
        f"CREATE INDEX {concurrently}IF NOT EXISTS {index} ON {table} ({q['score']}, {q['id']})"
    )
    statements.append(source_index_statement(dialect, spec))
    if {spec.id_column.lower(), spec.url_column.lower()} <= existing:
        statements.extend(reopen_statements(dialect, spec))
        if postgres:
            statements.extend(notify_statements(dialect, spec))
    return statements


def source_index_name(spec: TableSpec) -> str:
    return f"ix_{spec.name}_{spec.source_column}"[:63]


def source_index_statement(dialect: Dialect, spec: TableSpec) -> str:
    """A partial index on the key of the rows re-opened by a URL change and not scored yet.

    Its condition, ``source IS NOT NULL AND score IS NULL AND url IS DISTINCT FROM source``
    (``IS NOT`` on SQLite), holds only for rows whose URL changed since their last result (the
    re-open trigger keeps the old URL in the source column) and that are still waiting: a
    result written for the new URL, by pixelgrade (which writes the source) or by the
    application (a score), takes the row out. So the index stays as small as the work waiting,
    whatever the table's size, and ``watch``'s poll (``fetch_reopened``, the same condition
    word for word, which is what SQLite needs to use a partial index) reads only its entries.
    """
    table, q = _quote(dialect, spec)
    index = dialect.identifier_preparer.quote(source_index_name(spec))
    concurrently = "CONCURRENTLY " if dialect.name == "postgresql" else ""
    distinct = "IS DISTINCT FROM" if dialect.name == "postgresql" else "IS NOT"
    return (f"CREATE INDEX {concurrently}IF NOT EXISTS {index} ON {table} ({q['id']}) "
            f"WHERE {q['source']} IS NOT NULL AND {q['score']} IS NULL "
            f"AND {q['url']} {distinct} {q['source']}")


#: The PostgreSQL trigger that re-opens a row whose URL changes (one per table).
REOPEN_TRIGGER = "pixelgrade_reopen"


def reopen_trigger_name(spec: TableSpec, dialect_name: str) -> str:
    """``pixelgrade_reopen`` on PostgreSQL (trigger names are per table there); on SQLite,
    where they are per database, ``pixelgrade_reopen_<table>``."""
    if dialect_name == "postgresql":
        return REOPEN_TRIGGER
    return f"{REOPEN_TRIGGER}_{spec.name}"[:63]


def reopen_statements(dialect: Dialect, spec: TableSpec) -> list[str]:
    """DDL for the trigger that makes a row "to do" again when its picture changes.

    The rule: an UPDATE that changes the URL column (``IS DISTINCT FROM``: NULL to a value
    counts) and does not itself write a result (score, status and details all unchanged by
    it) clears ``quality_score``, ``quality_status``, ``quality_details`` and
    ``quality_scored_at``, and keeps the URL the row had in ``quality_source`` (``''`` when it
    had none, so that a URL filled in later differs from it too). The row is
    then to do for ``backfill`` and ``watch``, and its URL differs from its source, which is
    how ``watch``'s polls find it (:func:`source_index_statement`). An UPDATE that sets the
    URL and a score together is the application scoring the new picture itself: its score is
    kept. Updates of any other column are not seen at all (``UPDATE OF url``).

    * PostgreSQL: a ``BEFORE UPDATE OF url`` row trigger whose ``WHEN`` holds the rule and
      whose function modifies ``NEW``: no second write. BEFORE triggers run before AFTER
      ones, and the notify trigger's ``WHEN (NEW.score IS NULL)`` sees the cleared row, so
      a LISTENing ``watch`` hears of it at commit.
    * SQLite (no BEFORE trigger may change ``NEW`` there): an ``AFTER UPDATE OF url`` trigger
      that clears the row with an UPDATE of its own. That UPDATE does not set the URL, so it
      cannot fire this trigger again, even with ``PRAGMA recursive_triggers`` on.

    Idempotent: the function is replaced, the trigger dropped if it exists and made again.
    """
    table, q = _quote(dialect, spec)
    prep = dialect.identifier_preparer
    cleared = [q[what] for what in ("score", "status", "details", "scored_at")]
    # Details compared as text on PostgreSQL: a user's own ``json`` column (not ``jsonb``) has
    # no equality operator, and the trigger could not be created on it.
    text = "::text" if dialect.name == "postgresql" else ""
    unchanged = "\n          AND ".join(
        f"OLD.{q[what]}{cast} {{same}} NEW.{q[what]}{cast}"
        for what, cast in (("score", ""), ("status", ""), ("details", text)))
    if dialect.name == "postgresql":
        name = f"pixelgrade_reopen_{spec.table.replace('.', '_')}"[:63]
        function = ".".join([*([prep.quote(spec.schema)] if spec.schema else []),
                             prep.quote(name)])
        trigger = prep.quote(REOPEN_TRIGGER)
        assignments = "".join(f"    NEW.{column} := NULL;\n" for column in cleared)
        return [
            f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger\n"
            "LANGUAGE plpgsql\n"
            "AS $$\n"
            "BEGIN\n"
            f"{assignments}"
            f"    NEW.{q['source']} := coalesce(OLD.{q['url']}, '');\n"
            "    RETURN NEW;\n"
            "END\n"
            "$$",
            f"DROP TRIGGER IF EXISTS {trigger} ON {table}",
            f"CREATE TRIGGER {trigger}\n"
            f"    BEFORE UPDATE OF {q['url']} ON {table}\n"
            "    FOR EACH ROW\n"
            f"    WHEN (OLD.{q['url']} IS DISTINCT FROM NEW.{q['url']}\n"
            f"          AND {unchanged.format(same='IS NOT DISTINCT FROM')})\n"
            f"    EXECUTE FUNCTION {function}()",
        ]
    # SQLite: the trigger lives in the table's schema; inside it, table names are unqualified.
    schema = f"{prep.quote(spec.schema)}." if spec.schema else ""
    trigger = prep.quote(reopen_trigger_name(spec, dialect.name))
    bare = prep.quote(spec.name)
    sets = ", ".join([*(f"{column} = NULL" for column in cleared),
                      f"{q['source']} = coalesce(OLD.{q['url']}, '')"])
    return [
        f"DROP TRIGGER IF EXISTS {schema}{trigger}",
        f"CREATE TRIGGER {schema}{trigger}\n"
        f"    AFTER UPDATE OF {q['url']} ON {bare}\n"
        "    FOR EACH ROW\n"
        f"    WHEN  OLD.{q['url']} IS NOT NEW.{q['url']}\n"
        f"          AND {unchanged.format(same='IS')}\n"
        "BEGIN\n"
        f"    UPDATE {bare} SET {sets} WHERE {q['id']} = NEW.{q['id']};\n"
        "END",
    ]


#: The trigger that announces new rows to ``pixelgrade watch`` (one per table).
NOTIFY_TRIGGER = "pixelgrade_notify"


def notify_channel(spec: TableSpec) -> str:
    """The LISTEN/NOTIFY channel of ``spec``'s table: ``pixelgrade_images`` for ``images``,
    ``pixelgrade_media_images`` for ``media.images``."""
    return f"pixelgrade_{spec.table.replace('.', '_')}"[:63]


def notify_statements(dialect: Dialect, spec: TableSpec) -> list[str]:
    """PostgreSQL DDL for the trigger that NOTIFYs :func:`notify_channel` with the id (as
    text) of every row inserted without a score, or whose URL changes while it has none.

    Idempotent (``CREATE OR REPLACE FUNCTION``, then the trigger dropped if it exists and made
    again). A notification with nobody listening is dropped by PostgreSQL, so inserts work the
    same whether ``watch`` runs or not. The ``WHEN`` clause names the id and score columns, so
    a wrong column name fails here, at ``migrate``, never later in the application's inserts.
    Notifications are sent at commit (none for a rolled-back insert), each id once per
    transaction.
    """
    table, q = _quote(dialect, spec)
    prep = dialect.identifier_preparer
    name = f"pixelgrade_notify_{spec.table.replace('.', '_')}"[:63]
    function = ".".join([*([prep.quote(spec.schema)] if spec.schema else []), prep.quote(name)])
    trigger = prep.quote(NOTIFY_TRIGGER)
    channel = notify_channel(spec)  # letters, digits and underscores only: safe as a literal
    return [
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger\n"
        "LANGUAGE plpgsql\n"
        "AS $$\n"
        "BEGIN\n"
        f"    PERFORM pg_notify('{channel}', NEW.{q['id']}::text);\n"
        "    RETURN NULL;\n"
        "END\n"
        "$$",
        f"DROP TRIGGER IF EXISTS {trigger} ON {table}",
        f"CREATE TRIGGER {trigger}\n"
        f"    AFTER INSERT OR UPDATE OF {q['url']} ON {table}\n"
        "    FOR EACH ROW\n"
        f"    WHEN (NEW.{q['score']} IS NULL AND NEW.{q['id']} IS NOT NULL)\n"
        f"    EXECUTE FUNCTION {function}()",
    ]


def create_table_statements(dialect: Dialect, spec: TableSpec) -> list[str]:
    """DDL for pixelgrade's own images table (``pixelgrade init``), with every score column."""
    table, q = _quote(dialect, spec)
    if dialect.name == "postgresql":
        key = f"{q['id']} BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
        created = "TIMESTAMPTZ NOT NULL DEFAULT now()"
    else:
        key = f"{q['id']} INTEGER PRIMARY KEY"
        created = "TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP"
    quoted_created = dialect.identifier_preparer.quote("created_at")
    create = (
        f"CREATE TABLE IF NOT EXISTS {table} (\n"
        f"    {key},\n"
        f"    {q['url']} TEXT NOT NULL,\n"
        f"    {quoted_created} {created}\n"
        ")"
    )
    existing = {spec.id_column.lower(), spec.url_column.lower(), "created_at"}
    # The gallery's "Newest" reads pages of (created_at, id) off this index.
    concurrently = "CONCURRENTLY " if dialect.name == "postgresql" else ""
    index = dialect.identifier_preparer.quote(f"ix_{spec.name}_created_at"[:63])
    by_age = (f"CREATE INDEX {concurrently}IF NOT EXISTS {index} ON {table} "
              f"({quoted_created}, {q['id']})")
    return [create, by_age, *migration_statements(dialect, spec, existing)]


def supabase_migration_statements(spec: TableSpec) -> list[str]:
    """PostgreSQL DDL for a table whose columns are unknown (no direct connection): every
    column with ``IF NOT EXISTS``, and a plain ``CREATE INDEX`` (the SQL editor runs a script
    in one transaction, where ``CONCURRENTLY`` is not allowed)."""
    from sqlalchemy.dialects import postgresql

    # The key and URL columns are the user's own: assumed present (for the notify trigger).
    statements = migration_statements(postgresql.dialect(), spec,
                                      {spec.id_column.lower(), spec.url_column.lower()})
    return [statement.replace("CREATE INDEX CONCURRENTLY", "CREATE INDEX")
            for statement in statements]
