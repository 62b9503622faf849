"""Database commands of ``pixelgrade``: init, migrate, backfill, watch, verify (parse, call,
print)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from pixelgrade.backfill import BackfillOptions, EngineOptions, dry_run, run_backfill
from pixelgrade.backfill.progress import human_duration, make_progress
from pixelgrade.cli_network import AllowHostOpt, AllowPrivateNetworkOpt, network_policy
from pixelgrade.errors import PixelgradeError
from pixelgrade.scoring import SCORER_VERSION, Bands, ScoringConfig
from pixelgrade.scoring.config import DEFAULT_MAX_BYTES
from pixelgrade.sources.storage import StorageBucket
from pixelgrade.stores import (
    SUPABASE,
    Selection,
    SqlStore,
    Store,
    SupabaseStore,
    TableSpec,
    open_store,
    resolve_database_url,
    supabase_settings,
)
from pixelgrade.stores.schema import create_table_statements, supabase_migration_statements
from pixelgrade.stores.supabase_sql import function_sql
from pixelgrade.verify import DEFAULT_MAX_FAILED_SHARE, verify

DbOpt = Annotated[str | None, typer.Option(
    "--db", help="Database URL: sqlite:///file.db or postgresql://user@host/db, or 'supabase' "
    "(the project's REST API; SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY from the environment "
    "or ./.env). Default: $DATABASE_URL, then DATABASE_URL in ./.env, then supabase when "
    "either of those two is set, then sqlite:///pixelgrade.db.")]
TableOpt = Annotated[str, typer.Option("--table", help="The images table (or schema.table).")]
IdOpt = Annotated[str, typer.Option("--id-column", help="Primary key column (integer or UUID).")]
UrlOpt = Annotated[str, typer.Option("--url-column", "--path-column",
                                     help="Column with the image URL or path.")]
ScoreOpt = Annotated[str, typer.Option("--score-column", help="Column for the 0-100 score.")]

ConcurrencyOpt = Annotated[int, typer.Option(help="Downloads in flight.", min=1)]
WorkersOpt = Annotated[int | None, typer.Option(
    help="Scoring processes (default: one per CPU core).", min=1)]
UrlTemplateOpt = Annotated[str | None, typer.Option(
    help="Turn stored paths into URLs, e.g. 'https://cdn.example.com/{path}'.")]
RootOpt = Annotated[Path | None, typer.Option(
    help="Folder that local paths in the URL column are under; paths leading outside it "
    "are refused (default: the SQLite file's folder, else the working directory).")]
BucketOpt = Annotated[str | None, typer.Option(
    help="Supabase Storage bucket that the paths in --path-column are in.")]
PublicBucketOpt = Annotated[bool, typer.Option(
    help="The bucket is public: download by public URL, without the key.")]
MaxBytesOpt = Annotated[int, typer.Option(help="Refuse images larger than this.")]


def _spec(table: str, id_column: str, url_column: str, score_column: str) -> TableSpec:
    return TableSpec(table=table, id_column=id_column, url_column=url_column,
                     score_column=score_column)


def _fail(console: Console, exc: Exception, code: int = 1) -> typer.Exit:
    # Escaped: messages hold brackets ("pip install 'pixelgrade[dask]'", IPv6 hosts) that
    # Rich would otherwise take for markup and drop.
    console.print(f"[red]Error:[/] {escape(str(exc))}", highlight=False)
    return typer.Exit(code)


def init(db: DbOpt = None, table: TableOpt = "images", id_column: IdOpt = "id",
         url_column: UrlOpt = "url", score_column: ScoreOpt = "quality_score",
         sql: Annotated[bool, typer.Option("--sql", help="Print the DDL, run nothing.")] = False,
         ) -> None:
    """Create a new images table with every score column (for people starting fresh).

    Example: pixelgrade init --db sqlite:///photos.db
    """
    console = Console(stderr=True)
    try:
        spec = _spec(table, id_column, url_column, score_column)
        url = resolve_database_url(db)
        if url == SUPABASE:
            # The REST API cannot create tables: the DDL and the functions, for the SQL editor.
            from sqlalchemy.dialects import postgresql

            statements = [statement.replace("CREATE INDEX CONCURRENTLY", "CREATE INDEX")
                          for statement in create_table_statements(postgresql.dialect(), spec)]
            _print_supabase_sql(console, [*statements, *function_sql(spec)], sql)
            return
        store = open_store(url, spec, must_exist=False, inspect=False)
        if sql:
            print(";\n\n".join(store.init_sql()) + ";")
            return
        store.init()
        console.print(f"Created table {table} in {store.describe_database()}.", highlight=False)
    except PixelgradeError as exc:
        raise _fail(console, exc) from exc


def migrate(db: DbOpt = None, table: TableOpt = "images", id_column: IdOpt = "id",
            url_column: UrlOpt = "url", score_column: ScoreOpt = "quality_score",
            sql: Annotated[bool, typer.Option(
                "--sql", help="Print the DDL for your own migration tool, run nothing.")] = False,
            supabase: Annotated[bool, typer.Option(
                "--supabase", help="Also the SQL functions that make a Supabase project fast "
                "(bulk guarded writes, statistics over REST).")] = False,
            ) -> None:
    """Add pixelgrade's columns and index to an existing images table (idempotent).

    Adds quality_score (0-100), quality_status, quality_details (JSON), quality_scored_at and an
    index on (score, id); columns that exist are left alone. On PostgreSQL, also a trigger
    that announces new rows to `pixelgrade watch` (harmless when nothing listens).

    Examples:

      pixelgrade migrate --db postgresql://app@db/shop --sql > 016_quality_columns.sql

      pixelgrade migrate --db sqlite:///app.db --table photos --url-column src

      pixelgrade migrate --supabase --sql    # paste the output into Supabase's SQL editor
    """
    console = Console(stderr=True)
    try:
        spec = _spec(table, id_column, url_column, score_column)
        url = resolve_database_url(db)
    except PixelgradeError as exc:
        raise _fail(console, exc) from exc
    if url == SUPABASE or (supabase and sql):
        # No direct connection: print everything, idempotent, for the SQL editor (a Supabase
        # project always gets the functions, with or without --supabase).
        _print_supabase_sql(console, [*supabase_migration_statements(spec), *function_sql(spec)],
                            sql)
        return
    try:
        store = SqlStore(url,
                         _spec(table, id_column, url_column, score_column), inspect=False)
        store.columns()  # the table must exist: a clear error otherwise
        statements = store.migration_sql()
        if supabase:
            if store.dialect_name != "postgresql":
                raise PixelgradeError("--supabase needs a PostgreSQL database")
            statements = [*statements, *function_sql(spec)]
        if sql:
            print(";\n\n".join(statements) + ";")
            return
        store.apply_ddl(statements)
        for statement in statements:
            console.print(f"  {statement}", highlight=False)
        console.print(f"Table {table} in {store.describe_database()} is ready.",
                      highlight=False)
    except PixelgradeError as exc:
        raise _fail(console, exc) from exc


def _print_supabase_sql(console: Console, statements: list[str], sql_only: bool) -> None:
    print(";\n\n".join(statements) + ";")
    if not sql_only:
        console.print("Paste the SQL above into the SQL editor of your Supabase project "
                      "(the REST API cannot change the schema), or rerun with "
                      "--db postgresql://... (the project's direct connection) to apply it.",
                      highlight=False)


def backfill(
    db: DbOpt = None,
    table: TableOpt = "images",
    id_column: IdOpt = "id",
    url_column: UrlOpt = "url",
    score_column: ScoreOpt = "quality_score",
    dry: Annotated[bool, typer.Option(
        "--dry-run", help="Check, count and score a sample; write nothing at all.")] = False,
    batch_size: Annotated[int, typer.Option(help="Rows per batch (one transaction each).",
                                            min=1)] = 100,
    delay: Annotated[int, typer.Option(help="Pause between batches, milliseconds.",
                                       min=0)] = 0,
    rate: Annotated[float | None, typer.Option(help="At most this many images per second.",
                                               min=0.001)] = None,
    concurrency: ConcurrencyOpt = 16,
    workers: WorkersOpt = None,
    executor: Annotated[str, typer.Option(
        help="Where images are fetched and scored: local (processes on this machine), dask "
        "(the workers of the Dask cluster at --scheduler) or dask-local (a Dask LocalCluster "
        "of --workers processes).")] = "local",
    scheduler: Annotated[str | None, typer.Option(
        help="Dask scheduler address for --executor dask, e.g. tcp://10.0.0.5:8786.")] = None,
    chunk_size: Annotated[int, typer.Option(
        help="Rows per task: each worker fetches and scores this many at a time.",
        min=1)] = 8,
    limit: Annotated[int | None, typer.Option(help="Stop after this many rows.", min=1)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="A line for every image.")] = False,
    resume: Annotated[bool, typer.Option(
        help="Continue from the checkpoint and retry what the error log holds.")] = False,
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint file.")] = Path(
        "backfill-checkpoint.json"),
    error_log: Annotated[Path, typer.Option(help="Error log (JSON Lines).")] = Path(
        "backfill-errors.log"),
    retry_failed: Annotated[bool, typer.Option(
        help="Also redo rows recorded as failed.")] = False,
    rescore_version: Annotated[bool, typer.Option(
        "--rescore-version",
        help="Also redo rows scored, skipped or failed by another scorer version.")] = False,
    url_template: UrlTemplateOpt = None,
    root: RootOpt = None,
    bucket: BucketOpt = None,
    public_bucket: PublicBucketOpt = False,
    max_bytes: MaxBytesOpt = DEFAULT_MAX_BYTES,
    allow_private_network: AllowPrivateNetworkOpt = False,
    allow_host: AllowHostOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary at the end.")]
        = False,
) -> None:
    """Give every image whose score is NULL a score: safely, resumably, fast.

    Start with --dry-run. Interrupt with Ctrl-C at any time: batches in flight are finished
    and committed, and --resume continues from there.

    Examples:

      pixelgrade backfill --dry-run

      pixelgrade backfill --db postgresql://app@db/shop --batch-size 500

      pixelgrade backfill --resume --verbose

      pixelgrade backfill --batch-size 10 --delay 2000    # the original script's pace

      pixelgrade backfill --db supabase --bucket photos --path-column storage_path

      pixelgrade backfill --executor dask --scheduler tcp://10.0.0.5:8786
    """
    console = Console(stderr=as_json, highlight=False, soft_wrap=True)
    try:
        url = resolve_database_url(db)
        store = open_store(url, _spec(table, id_column, url_column, score_column))
        root = _default_root(store, root)
        options = BackfillOptions(
            engine=EngineOptions(batch_size=batch_size, delay=delay / 1000, rate=rate,
                                 limit=limit),
            selection=Selection(retry_failed=retry_failed,
                                rescore_version=SCORER_VERSION if rescore_version else None),
            workers=workers or os.cpu_count() or 1,
            concurrency=concurrency, executor=executor, scheduler=scheduler,
            chunk_size=chunk_size, checkpoint=checkpoint, error_log=error_log,
            resume=resume, url_template=url_template, root=root,
            scoring=ScoringConfig(max_bytes=max_bytes),
            http=network_policy(max_bytes, allow_private_network, allow_host),
            storage=_storage(bucket, public_bucket),
        )
        if dry:
            _dry_run(console, store, options, as_json)
            return
        console.print(f"Backfill of {store.describe()}: {options.selection.describe()}.")
        progress = make_progress(console)
        report = run_backfill(store, options, console, progress, verbose=verbose)
    except (PixelgradeError, ValueError) as exc:
        raise _fail(console, exc) from exc
    if as_json:
        print(json.dumps(report.to_dict()))
    console.print(
        f"\n{report.processed} images in {human_duration(report.seconds)} "
        f"({report.images_per_second:.1f} images/s): {report.scored} scored, {report.skipped} "
        f"skipped, {report.failed} failed, {report.retry_later} to retry.")
    if report.not_written_already_done:
        console.print(f"{report.not_written_already_done} rows were scored by someone else "
                      "meanwhile and were left as they were.")
    if report.failed or report.retry_later:
        console.print(f"Errors are listed in {error_log}.")
    if report.interrupted:
        console.print(f"[yellow]Interrupted.[/] Checkpoint saved in {checkpoint}; continue "
                      "with: pixelgrade backfill --resume")
        raise typer.Exit(130)
    if report.retry_later:
        console.print("Some images could not be fetched this time; retry them with: "
                      "pixelgrade backfill --resume")
    console.print("Check the result with: pixelgrade verify")


def watch(
    db: DbOpt = None,
    table: TableOpt = "images",
    id_column: IdOpt = "id",
    url_column: UrlOpt = "url",
    score_column: ScoreOpt = "quality_score",
    interval: Annotated[float, typer.Option(
        help="Seconds between polls for new rows (SQLite, Supabase, PostgreSQL without the "
        "trigger).", min=0.05)] = 2.0,
    sweep_interval: Annotated[float, typer.Option(
        help="Seconds between sweeps of every row still without a score (missed "
        "notifications, transient failures due for a retry).", min=0.1)] = 60.0,
    once: Annotated[bool, typer.Option(
        "--once", help="One sweep, then exit (for cron).")] = False,
    poll: Annotated[bool, typer.Option(
        "--poll", help="Poll even on PostgreSQL with the trigger (needed behind a "
        "transaction-mode pooler such as PgBouncer, where notifications never arrive).")
        ] = False,
    batch_size: Annotated[int, typer.Option(help="Rows per batch (one transaction each).",
                                            min=1)] = 100,
    concurrency: ConcurrencyOpt = 16,
    workers: WorkersOpt = None,
    error_log: Annotated[Path, typer.Option(help="Error log (JSON Lines).")] = Path(
        "watch-errors.log"),
    url_template: UrlTemplateOpt = None,
    root: RootOpt = None,
    bucket: BucketOpt = None,
    public_bucket: PublicBucketOpt = False,
    max_bytes: MaxBytesOpt = DEFAULT_MAX_BYTES,
    allow_private_network: AllowPrivateNetworkOpt = False,
    allow_host: AllowHostOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON Lines instead of text.")]
        = False,
) -> None:
    """Score the images other programs insert, as they arrive, until stopped.

    On PostgreSQL, new rows are announced by the trigger that `pixelgrade migrate` installs
    (LISTEN/NOTIFY); on SQLite and Supabase, watch polls every --interval seconds. A sweep at
    start and every --sweep-interval seconds catches rows inserted while it was down, missed
    notifications and transient failures due for a retry. One line per image (--json: JSON
    Lines). Ctrl-C or SIGTERM finishes the images in flight and exits with code 0.

    Examples:

      pixelgrade watch --db postgresql://app@db/shop

      pixelgrade watch --db sqlite:///app.db --interval 5 --json >> watch.log

      pixelgrade watch --once    # one sweep, then exit (cron)
    """
    from pixelgrade.watch import WatchLog, WatchOptions
    from pixelgrade.watch import watch as run_watch

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        url = resolve_database_url(db)
        store = open_store(url, _spec(table, id_column, url_column, score_column))
        root = _default_root(store, root)
        options = WatchOptions(
            batch_size=batch_size, workers=workers or os.cpu_count() or 1,
            concurrency=concurrency, error_log=error_log, interval=interval,
            sweep_interval=sweep_interval, once=once, listen=not poll,
            url_template=url_template, root=root,
            scoring=ScoringConfig(max_bytes=max_bytes), storage=_storage(bucket, public_bucket),
            http=network_policy(max_bytes, allow_private_network, allow_host))
        run_watch(store, options, WatchLog(sys.stdout, as_json=as_json))
    except (PixelgradeError, ValueError) as exc:
        raise _fail(console, exc) from exc


def _default_root(store: Store, root: Path | None) -> Path:
    """--root, else the SQLite file's folder, else the working directory: local paths in the
    table are read only inside it."""
    if root is not None:
        return root
    database = getattr(getattr(store, "url", None), "database", None)
    if store.dialect_name == "sqlite" and database:
        return Path(database).resolve().parent
    return Path.cwd()


def _storage(bucket: str | None, public: bool) -> StorageBucket | None:
    """The Supabase Storage bucket images are read from (settings: SUPABASE_URL and, for a
    private bucket, SUPABASE_SERVICE_ROLE_KEY)."""
    if bucket is None:
        if public:
            raise PixelgradeError("--public-bucket needs --bucket NAME")
        return None
    url, key = supabase_settings()
    return StorageBucket(url, bucket, public=public, key=key)


def _dry_run(console: Console, store: Store, options: BackfillOptions, as_json: bool) -> None:
    console.print("DRY RUN MODE - No database changes will be made")
    console.print(f"Connected to {store.describe()}")
    if isinstance(store, SupabaseStore) and store.write_mode == "patch":
        console.print("[yellow]Note:[/] the project has no pixelgrade_write_scores function: "
                      "each score will be written by its own request (slow on a hosted "
                      "project). Install it with `pixelgrade migrate --supabase --sql` (paste "
                      "into the SQL editor).")
    caps = store.capabilities
    if not (caps.status and caps.details):
        console.print("[yellow]Note:[/] the table has no quality_status/quality_details columns:"
                      " failures cannot be recorded and details are not kept; run "
                      "`pixelgrade migrate` to add them.")
    report = dry_run(store, options)
    if as_json:
        print(json.dumps(report.to_dict()))
    console.print(f"Found {report.todo} images without quality scores")
    for item in report.sample:
        shown = item["score"] if item["score"] is not None else "N/A"
        reason = f"  {item['status']}: {item['reason']}" if item["reason"] else ""
        console.print(f"  sample #{item['id']} {item['location']}: {shown}{reason}")
    if report.estimated_seconds is not None:
        console.print(f"Sample of {len(report.sample)} scored at "
                      f"{report.images_per_second:.1f} images/s; estimated duration for "
                      f"{report.todo} images: {human_duration(report.estimated_seconds)}")
    console.print("Dry run complete - no changes made")


def verify_command(
    db: DbOpt = None, table: TableOpt = "images", id_column: IdOpt = "id",
    url_column: UrlOpt = "url", score_column: ScoreOpt = "quality_score",
    strict: Annotated[bool, typer.Option(
        help="Exit 1 while rows are still waiting for a score.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    high: Annotated[int, typer.Option("--high", help="Lowest score in the High band.")] = 70,
    medium: Annotated[int, typer.Option("--medium", help="Lowest score in Medium.")] = 40,
    max_failed_share: Annotated[float, typer.Option(
        help="Warn when more than this share of rows failed.")] = DEFAULT_MAX_FAILED_SHARE,
) -> None:
    """Verification figures: totals, average, bands, statuses, a histogram, and warnings.

    Example: pixelgrade verify --strict   (exit code 1 while rows are unscored)
    """
    console = Console(highlight=False, soft_wrap=True)
    try:
        bands = Bands(high_from=high, medium_from=medium)
        store = open_store(resolve_database_url(db), _spec(table, id_column, url_column,
                                                           score_column))
        result = verify(store.stats(bands.high_from, bands.medium_from), max_failed_share)
    except (PixelgradeError, ValueError) as exc:
        raise _fail(Console(stderr=True), exc) from exc
    if as_json:
        print(json.dumps(result.to_dict()))
    else:
        _print_verification(console, store.describe(), result.to_dict())
    if strict and not result.complete:
        raise typer.Exit(1)


def _print_verification(console: Console, where: str, figures: dict[str, object]) -> None:
    console.print(f"[bold]Verification of {where}[/]")
    for key in ("total_images", "images_with_scores", "images_without_scores",
                "avg_quality_score"):
        console.print(f"  {key:<24}{figures[key]}")
    bands = figures["bands"]
    statuses = figures["statuses"]
    assert isinstance(bands, dict) and isinstance(statuses, dict)
    console.print("  bands: " + ", ".join(f"{name} {count}" for name, count in bands.items()))
    console.print("  status: " + ", ".join(f"{name} {count}"
                                           for name, count in sorted(statuses.items())))
    versions = figures["scorer_versions"]
    assert isinstance(versions, dict)
    if versions:
        console.print("  scorer versions: " + ", ".join(
            f"version {name} {count}" for name, count in sorted(versions.items())))
    histogram = figures["histogram"]
    assert isinstance(histogram, dict)
    peak = max(histogram.values()) or 1
    console.print("  score distribution:")
    for label, count in histogram.items():
        bar = "#" * round(40 * count / peak)
        console.print(f"    {label:>7} | {bar} {count}")
    warnings = figures["warnings"]
    assert isinstance(warnings, list)
    for warning in warnings:
        console.print(f"  [yellow]warning:[/] {warning}")
    if not warnings:
        console.print("  [green]OK:[/] every image has a score or a recorded reason.")
    sys.stdout.flush()
