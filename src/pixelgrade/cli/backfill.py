"""``pixelgrade backfill``: score every row whose score is NULL (parse, call, print).

``--resume`` takes the run's settings from its checkpoint: a setting that no flag, environment
variable or ``pixelgrade.toml`` gives is the one the interrupted run used (the database URL
without its password; the password comes from the URL you pass, ``DATABASE_URL`` or
``PGPASSWORD``, as any time).
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
import typer
from rich.console import Console

from pixelgrade.backfill import BackfillOptions, EngineOptions, dry_run, run_backfill
from pixelgrade.backfill import checkpoint as checkpoints
from pixelgrade.backfill.progress import NoProgress, human_duration, make_progress
from pixelgrade.backfill.run import BackfillReport, DryRunReport
from pixelgrade.cli.options import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_TARGET_MEGAPIXELS,
    AllowHostOpt,
    AllowPrivateNetworkOpt,
    BatchSizeOpt,
    BucketOpt,
    ConcurrencyOpt,
    ConfigOpt,
    DbOpt,
    ErrorLogOpt,
    HighOpt,
    IdOpt,
    MaxBytesOpt,
    MaxPixelsOpt,
    MediumOpt,
    PublicBucketOpt,
    QuietOpt,
    RootOpt,
    ScoreOpt,
    TableOpt,
    TargetOpt,
    UrlOpt,
    UrlTemplateOpt,
    WorkersOpt,
    network_policy,
    option,
    scoring_config,
)
from pixelgrade.cli.output import console as make_console
from pixelgrade.cli.output import fail
from pixelgrade.cli.stores import default_root, storage_bucket, table_spec
from pixelgrade.errors import PixelgradeError
from pixelgrade.scoring import SCORER_VERSION
from pixelgrade.stores import (
    Selection,
    Store,
    SupabaseStore,
    configured_database,
    open_store,
    resolve_database_url,
    without_password,
)

#: Settings a checkpoint records and ``--resume`` takes back (never a secret).
RESUMED = ("db", "table", "id_column", "url_column", "score_column", "url_template", "root",
           "bucket", "public_bucket", "allow_private_network", "allow_host", "max_bytes",
           "max_pixels", "target_mp", "high", "medium", "retry_failed", "rescore_version",
           "batch_size", "delay", "rate", "concurrency", "executor", "scheduler", "chunk_size",
           "error_log")
#: Options ``verify`` must be given to look at the same table and bands, with their defaults.
FOLLOW_UP_DEFAULTS: dict[str, object] = {
    "table": "images", "id_column": "id", "url_column": "url",
    "score_column": "quality_score", "high": 70, "medium": 40}
DEFAULT_CHECKPOINT = Path(checkpoints.EXAMPLE)
#: Exit codes: 1 an error, or a run that scored nothing; 130 interrupted.
EXIT_FAILED, EXIT_INTERRUPTED = 1, 130


def backfill(
    ctx: typer.Context,
    db: DbOpt = None,
    table: TableOpt = "images",
    id_column: IdOpt = "id",
    url_column: UrlOpt = "url",
    score_column: ScoreOpt = "quality_score",
    dry: Annotated[bool, option(
        "--dry-run", help="Check, count and score a sample; write nothing at all.")] = False,
    batch_size: BatchSizeOpt = 100,
    delay: Annotated[int, option(
        "--delay", metavar="MS", help="Pause between batches, milliseconds.", min=0)] = 0,
    rate: Annotated[float | None, option(
        "--rate", metavar="PER_SECOND", help="At most this many images per second.",
        min=0.001)] = None,
    concurrency: ConcurrencyOpt = 16,
    workers: WorkersOpt = None,
    executor: Annotated[str, option(
        "--executor", metavar="local|dask|dask-local",
        help="Where images are fetched and scored: local (processes on this "
        "machine), dask (the workers of the Dask cluster at --scheduler) or dask-local (a "
        "Dask LocalCluster of --workers processes).")] = "local",
    scheduler: Annotated[str | None, option(
        "--scheduler", metavar="ADDRESS",
        help="Dask scheduler for --executor dask, e.g. tcp://10.0.0.5:8786.")] = None,
    chunk_size: Annotated[int, option(
        "--chunk-size", metavar="ROWS",
        help="Rows per task: each worker fetches and scores this many at a time.",
        min=1)] = 8,
    limit: Annotated[int | None, option(
        "--limit", metavar="ROWS", help="Stop after this many rows.", min=1)] = None,
    resume: Annotated[bool, option(
        "--resume", help="Continue from the checkpoint, with its settings, and retry what the "
        "error log holds.")] = False,
    checkpoint: Annotated[Path, option("--checkpoint", metavar="FILE",
                                       help="Checkpoint file.")] = DEFAULT_CHECKPOINT,
    error_log: ErrorLogOpt = Path("backfill-errors.log"),
    retry_failed: Annotated[bool, option(
        "--retry-failed", help="Also redo rows recorded as failed.")] = False,
    rescore_version: Annotated[bool, option(
        "--rescore-version",
        help="Also redo rows scored, skipped or failed by another scorer version.")] = False,
    url_template: UrlTemplateOpt = None,
    root: RootOpt = None,
    bucket: BucketOpt = None,
    public_bucket: PublicBucketOpt = False,
    max_bytes: MaxBytesOpt = DEFAULT_MAX_BYTES,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    target_mp: TargetOpt = DEFAULT_TARGET_MEGAPIXELS,
    high: HighOpt = 70,
    medium: MediumOpt = 40,
    allow_private_network: AllowPrivateNetworkOpt = False,
    allow_host: AllowHostOpt = None,
    as_json: Annotated[bool, option("--json", help="Print a JSON summary at the end.")]
        = False,
    quiet: QuietOpt = False,
    verbose: Annotated[bool, option("--verbose", "-v", help="A line for every image.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Give every image whose score is NULL a score: safely, resumably, fast.

    Start with --dry-run: it scores a sample and says what would fail and how to fix it.
    Interrupt with Ctrl-C at any time: rows already started are finished and committed, and
    --resume continues from there with the same settings.

    Exit code 0 when the run finished, 1 on an error or when nothing could be scored, 130
    when interrupted.

    Examples:

    \b
      pixelgrade backfill --dry-run
      pixelgrade backfill --db postgresql://app@db/shop --batch-size 500
      pixelgrade backfill --resume --verbose
      pixelgrade backfill --batch-size 10 --delay 2000   # the seed script
      pixelgrade backfill --db supabase --bucket photos --path-column storage_path
      pixelgrade backfill --executor dask --scheduler tcp://10.0.0.5:8786
    """
    console = make_console(stderr=as_json)
    params = dict(ctx.params)
    try:
        if resume:
            params = _with_checkpoint_settings(ctx, params, checkpoint, console)
        url = resolve_database_url(params["db"])
        store = open_store(url, table_spec(params["table"], params["id_column"],
                                           params["url_column"], params["score_column"]))
        params["root"] = default_root(store, params["root"])
        options = _options(params, url)
        if dry:
            report = _dry_run(console, store, options, quiet)
            if as_json:
                print(json.dumps(report.to_dict()))
            if report.cannot_succeed:
                raise typer.Exit(EXIT_FAILED)
            return
        if not quiet:
            console.print(f"Backfill of {store.describe()}: {options.selection.describe()}.")
        progress = NoProgress() if quiet else make_progress(console)
        result = run_backfill(store, options, console, progress, verbose=verbose and not quiet)
    except (PixelgradeError, ValueError) as exc:
        raise fail(exc) from exc
    if as_json:
        print(json.dumps(result.to_dict()))
    _print_summary(console, result, params, url)


def _options(params: dict[str, Any], url: str) -> BackfillOptions:
    """The library's options from the command's settings."""
    scoring = scoring_config(high=params["high"], medium=params["medium"],
                             max_bytes=params["max_bytes"], max_pixels=params["max_pixels"],
                             target_mp=params["target_mp"])
    return BackfillOptions(
        engine=EngineOptions(batch_size=params["batch_size"], delay=params["delay"] / 1000,
                             rate=params["rate"], limit=params["limit"]),
        selection=Selection(retry_failed=params["retry_failed"],
                            rescore_version=SCORER_VERSION if params["rescore_version"]
                            else None),
        workers=params["workers"] or os.cpu_count() or 1,
        concurrency=params["concurrency"], executor=params["executor"],
        scheduler=params["scheduler"], chunk_size=params["chunk_size"],
        checkpoint=params["checkpoint"], error_log=params["error_log"],
        resume=params["resume"], url_template=params["url_template"], root=params["root"],
        scoring=scoring,
        http=network_policy(params["max_bytes"], params["allow_private_network"],
                            params["allow_host"]),
        storage=storage_bucket(params["bucket"], params["public_bucket"]),
        settings=_recorded(params, url),
    )


def _recorded(params: dict[str, Any], url: str) -> dict[str, Any]:
    """What the checkpoint keeps of this run's settings: JSON values, no password, paths
    absolute (a resume may start in another folder)."""
    recorded: dict[str, Any] = {}
    for name in RESUMED:
        value = params[name]
        if name == "db":
            value = _portable_database(url)
        elif isinstance(value, Path):
            value = str(value.resolve())
        recorded[name] = value
    return recorded


def _portable_database(url: str) -> str:
    """``url`` without its password, and with a relative SQLite path made absolute."""
    if url.startswith("sqlite:"):
        database = sa.make_url(url).database
        if database and database != ":memory:":
            return f"sqlite:///{Path(database).resolve()}"
    return without_password(url)


def _with_checkpoint_settings(ctx: typer.Context, params: dict[str, Any], path: Path,
                              console: Console) -> dict[str, Any]:
    """``params`` with every setting that nothing else gave taken from the checkpoint."""
    saved = checkpoints.load(path)
    if saved is None or not saved.settings:
        return params
    taken = []
    for name, value in saved.settings.items():
        if name not in params or not _from_default(ctx, name):
            continue
        if name == "db" and configured_database() is not None:
            continue  # DATABASE_URL (environment, .env) is a setting too, and wins
        if name in ("root", "error_log") and value is not None:
            value = Path(value)
        if params[name] != value:
            params[name] = value
            taken.append(name)
    if taken:
        console.print(f"Resuming with the settings of the run in {path}: "
                      + ", ".join(f"--{name.replace('_', '-')}" for name in taken) + ".")
    return params


def _from_default(ctx: typer.Context, name: str) -> bool:
    """True when no flag, environment variable or settings file gave ``name``."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "DEFAULT"


def _dry_run(console: Console, store: Store, options: BackfillOptions,
             quiet: bool) -> DryRunReport:
    say = (lambda *_: None) if quiet else console.print
    say("DRY RUN MODE - No database changes will be made")
    say(f"Connected to {store.describe()}")
    if isinstance(store, SupabaseStore) and store.write_mode == "patch":
        say("[yellow]Note:[/] the project has no pixelgrade_write_scores function, or one from "
            "before writes checked the URL: each score will be written by its own request "
            "(slow on a hosted project). Install the current one with "
            "`pixelgrade migrate --supabase --sql` (paste into the SQL editor).")
    caps = store.capabilities
    if not (caps.status and caps.details):
        say("[yellow]Note:[/] the table has no quality_status/quality_details columns: failures "
            "cannot be recorded and details are not kept; run `pixelgrade migrate` to add them.")
    report = dry_run(store, options)
    say(f"Found {report.todo} images without quality scores")
    for item in report.sample:
        shown = item["score"] if item["score"] is not None else "N/A"
        reason = f"  {item['status']}: {item['reason']}" if item["reason"] else ""
        say(f"  sample #{item['id']} {item['location']}: {shown}{reason}")
    if report.estimated_seconds is not None and not report.cannot_succeed:
        say(f"Sample of {len(report.sample)} scored at {report.images_per_second:.1f} images/s; "
            f"estimated duration for {report.todo} images: "
            f"{human_duration(report.estimated_seconds)}")
    if report.sample_failed:
        style = "red" if report.cannot_succeed else "yellow"
        console.print(f"[{style}]{report.sample_failed} of {len(report.sample)} sample rows "
                      "would fail:[/]")
        for line in report.failures.lines():
            console.print(f"  {line}")
    if report.cannot_succeed:
        console.print("[red]Dry run complete - no changes made; the run would score nothing "
                      "as configured: fix the above, then dry-run again.[/]")
    else:
        say("Dry run complete - no changes made")
    return report


def _print_summary(console: Console, report: BackfillReport, params: dict[str, Any],
                   url: str) -> None:
    if report.processed == 0 and not report.interrupted:
        console.print("\nNothing to do: every row already has a score or a recorded reason.")
    else:
        console.print(
            f"\n{_images(report.processed)} in {human_duration(report.seconds)} "
            f"({report.images_per_second:.1f} images/s): {report.scored} scored, "
            f"{report.skipped} skipped, {report.failed} failed, {report.retry_later} to retry.")
    if report.not_written_already_done:
        console.print(f"{report.not_written_already_done} rows were scored by someone else "
                      "meanwhile and were left as they were.")
    if report.failures.groups:
        console.print("Failures by kind, with the first fix to try:")
        for line in report.failures.lines():
            console.print(f"  {line}")
        console.print(f"Every failed row is listed in {report.error_log}.")
    resume = _command("backfill", params, url, extra=["--resume"])
    if report.interrupted:
        console.print(f"[yellow]Interrupted.[/] Checkpoint saved in {report.checkpoint}; "
                      f"continue with: {resume}")
        raise typer.Exit(EXIT_INTERRUPTED)
    if report.retry_later:
        console.print(f"Some images could not be fetched this time; retry them with: {resume}")
    if report.nothing_succeeded:
        console.print("[red]Nothing was scored:[/] fix the failures above, then run the "
                      "backfill again (rows that failed for good need --retry-failed).")
        raise typer.Exit(EXIT_FAILED)
    console.print(f"Check the result with: {_command('verify', params, url)}")


def _images(count: int) -> str:
    return f"{count} image{'' if count == 1 else 's'}"


def _command(name: str, params: dict[str, Any], url: str, extra: list[str] | None = None
             ) -> str:
    """A command line that works as written. ``verify`` gets the store options this run was
    given (the password as a placeholder when the URL holds one: it is never printed);
    ``backfill --resume`` takes them from the checkpoint, so it only needs a checkpoint other
    than the default."""
    args = ["pixelgrade", name, *(extra or [])]
    if name == "verify":
        if params["db"] is not None:
            args += ["--db", without_password(url, "PASSWORD")]
        args += [f"--{key.replace('_', '-')}={params[key]}"
                 for key, default in FOLLOW_UP_DEFAULTS.items() if params[key] != default]
    elif params["checkpoint"] != DEFAULT_CHECKPOINT:
        args += ["--checkpoint", str(params["checkpoint"])]
    return shlex.join(args)
