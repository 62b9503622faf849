"""``pixelgrade init`` and ``pixelgrade migrate``: the table and its score columns."""

from __future__ import annotations

from typing import Annotated

from rich.console import Console

from pixelgrade.cli.options import (
    ConfigOpt,
    DbOpt,
    IdOpt,
    QuietOpt,
    ScoreOpt,
    TableOpt,
    UrlOpt,
    VerboseOpt,
    option,
)
from pixelgrade.cli.output import console as make_console
from pixelgrade.cli.output import fail
from pixelgrade.cli.stores import table_spec
from pixelgrade.errors import PixelgradeError
from pixelgrade.stores import SUPABASE, SqlStore, open_store, resolve_database_url
from pixelgrade.stores.base import TableSpec
from pixelgrade.stores.schema import create_table_statements, supabase_migration_statements
from pixelgrade.stores.supabase_sql import function_sql
from pixelgrade.stores.supabase_webhook import webhook_statements

CONCURRENT_INDEX = "CREATE INDEX CONCURRENTLY"

SqlOpt = Annotated[bool, option("--sql", help="Print the SQL, run nothing.")]
TransactionalOpt = Annotated[bool, option(
    "--transactional",
    help="With --sql: SQL that may run inside one transaction (Alembic, Flyway, psql -1): "
    "a plain CREATE INDEX, which blocks writes to the table while it is built.")]


def init(db: DbOpt = None, table: TableOpt = "images", id_column: IdOpt = "id",
         url_column: UrlOpt = "url", score_column: ScoreOpt = "quality_score",
         sql: SqlOpt = False, quiet: QuietOpt = False, verbose: VerboseOpt = False,
         config: ConfigOpt = None) -> None:
    """Create a new images table with every score column (for people starting fresh).

    Example: pixelgrade init --db sqlite:///photos.db
    """
    console = make_console(stderr=True)
    try:
        spec = table_spec(table, id_column, url_column, score_column)
        url = resolve_database_url(db)
        if url == SUPABASE:
            # The REST API cannot create tables: the DDL and the functions, for the SQL editor.
            from sqlalchemy.dialects import postgresql

            statements = _transactional(create_table_statements(postgresql.dialect(), spec))
            _print_supabase_sql(console, [*statements, *function_sql(spec)], sql or quiet)
            return
        store = open_store(url, spec, must_exist=False, inspect=False)
        if sql:
            print(";\n\n".join(store.init_sql()) + ";")
            return
        store.init()
        if verbose:
            for statement in store.init_sql():
                console.print(f"  {statement}")
        if not quiet:
            console.print(f"Created table {table} in {store.describe_database()}.")
    except PixelgradeError as exc:
        raise fail(exc) from exc


def migrate(db: DbOpt = None, table: TableOpt = "images", id_column: IdOpt = "id",
            url_column: UrlOpt = "url", score_column: ScoreOpt = "quality_score",
            sql: SqlOpt = False, transactional: TransactionalOpt = False,
            supabase: Annotated[bool, option(
                "--supabase", help="Also the SQL functions that make a Supabase project fast "
                "(bulk guarded writes, statistics over REST).")] = False,
            webhook_url: Annotated[str | None, option(
                "--webhook-url", metavar="URL",
                help="With --supabase --sql: also a Database Webhook trigger that calls "
                "`pixelgrade hook` at URL for each new row (or new URL), with the secret "
                "PIXELGRADE_WEBHOOK_SECRET.")] = None,
            quiet: QuietOpt = False, verbose: VerboseOpt = False, config: ConfigOpt = None,
            ) -> None:
    """Add pixelgrade's columns and index to an existing images table (idempotent).

    Adds quality_score (0-100), quality_status, quality_details (JSON), quality_scored_at,
    quality_source (the URL each result was computed for), an index on (score, id) and one on
    the rows re-opened by a URL change; columns that exist are left alone. Also a trigger that
    clears the result of a row whose URL an UPDATE changes (unless that UPDATE writes a score
    too), so the new picture is scored again; on PostgreSQL, one more that announces new and
    re-opened rows to `pixelgrade watch` (harmless when nothing listens).

    On PostgreSQL the index is built CONCURRENTLY (writers are not blocked), which cannot run
    inside a transaction: for a migration tool that wraps each file in one (Alembic, Flyway,
    psql -1), use --sql --transactional.

    Examples:

    \b
      pixelgrade migrate --db postgresql://app@db/shop --sql > 016_quality.sql
      pixelgrade migrate --db sqlite:///app.db --table photos --url-column src
      pixelgrade migrate --supabase --sql    # paste into Supabase's SQL editor
      PIXELGRADE_WEBHOOK_SECRET=... pixelgrade migrate --supabase --sql \\
          --webhook-url https://pixelgrade.example.com/api/hooks/supabase
    """
    console = make_console(stderr=True)
    try:
        spec = table_spec(table, id_column, url_column, score_column)
        url = resolve_database_url(db)
        supabase_sql = url == SUPABASE or (supabase and sql)
        webhook = _webhook_statements(spec, webhook_url, supabase_sql)
    except PixelgradeError as exc:
        raise fail(exc) from exc
    if supabase_sql:
        # No direct connection: print everything, idempotent, for the SQL editor (a Supabase
        # project always gets the functions, with or without --supabase).
        _print_supabase_sql(console, [*supabase_migration_statements(spec), *function_sql(spec),
                                      *webhook], sql or quiet)
        if webhook and not quiet:
            console.print("The last statement holds your PIXELGRADE_WEBHOOK_SECRET: paste it "
                          "into the SQL editor; do not save it in a file that is shared or "
                          "committed.")
        return
    try:
        store = SqlStore(url, spec, inspect=False)
        store.columns()  # the table must exist: a clear error otherwise
        statements = store.migration_sql()
        if supabase:
            if store.dialect_name != "postgresql":
                raise PixelgradeError("--supabase needs a PostgreSQL database")
            statements = [*statements, *function_sql(spec)]
        if sql:
            _print_sql(console, statements, transactional, quiet)
            return
        store.apply_ddl(statements)
        if not quiet:
            for statement in statements:
                console.print(f"  {statement}")
            console.print(f"Table {table} in {store.describe_database()} is ready.")
    except PixelgradeError as exc:
        raise fail(exc) from exc


def _webhook_statements(spec: TableSpec, webhook_url: str | None, supabase_sql: bool
                        ) -> list[str]:
    """The webhook trigger for ``--webhook-url`` (none without it)."""
    if webhook_url is None:
        return []
    if not supabase_sql:
        raise PixelgradeError("--webhook-url prints a Database Webhook trigger for Supabase's "
                              "SQL editor: use it with --supabase --sql")
    from pixelgrade.web.hooks import SECRET_VARIABLE, secret_from_environment

    secret = secret_from_environment()
    if not secret:
        raise PixelgradeError(f"--webhook-url needs the webhook's secret: set {SECRET_VARIABLE}"
                              " (environment or ./.env) to the value pixelgrade hook is started"
                              " with, e.g. python3 -c 'import secrets; "
                              "print(secrets.token_urlsafe(32))'")
    return webhook_statements(spec, webhook_url, secret)


def _transactional(statements: list[str]) -> list[str]:
    """The statements with a plain ``CREATE INDEX``, allowed inside a transaction."""
    return [statement.replace(CONCURRENT_INDEX, "CREATE INDEX") for statement in statements]


def _print_sql(console: Console, statements: list[str], transactional: bool,
               quiet: bool) -> None:
    if transactional:
        statements = _transactional(statements)
    print(";\n\n".join(statements) + ";")
    if not quiet and any(CONCURRENT_INDEX in statement for statement in statements):
        console.print(
            "Note: CREATE INDEX CONCURRENTLY cannot run inside a transaction block. Run this "
            "file with plain psql (not psql -1 / --single-transaction), or, for a tool that "
            "wraps migrations in a transaction (Alembic, Flyway, Django), print it with "
            "--sql --transactional (a plain CREATE INDEX: it blocks writes while it builds).")


def _print_supabase_sql(console: Console, statements: list[str], sql_only: bool) -> None:
    print(";\n\n".join(statements) + ";")
    if not sql_only:
        console.print("Paste the SQL above into the SQL editor of your Supabase project "
                      "(the REST API cannot change the schema), or rerun with "
                      "--db postgresql://... (the project's direct connection) to apply it.")
