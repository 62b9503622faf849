"""``pixelgrade watch``: score the rows other programs insert, as they arrive."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

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
from pixelgrade.cli.output import fail
from pixelgrade.cli.stores import default_root, open_table, storage_bucket
from pixelgrade.errors import PixelgradeError


def watch(
    db: DbOpt = None,
    table: TableOpt = "images",
    id_column: IdOpt = "id",
    url_column: UrlOpt = "url",
    score_column: ScoreOpt = "quality_score",
    interval: Annotated[float, option(
        "--interval", metavar="SECONDS",
        help="Seconds between polls for new rows (SQLite, Supabase, PostgreSQL "
        "without the trigger).", min=0.05)] = 2.0,
    sweep_interval: Annotated[float, option(
        "--sweep-interval", metavar="SECONDS",
        help="Seconds between sweeps of every row still without a score "
        "(missed notifications, transient failures due for a retry).", min=0.1)] = 60.0,
    once: Annotated[bool, option("--once", help="One sweep, then exit (for cron).")] = False,
    poll: Annotated[bool, option(
        "--poll", help="Poll even on PostgreSQL with the trigger (needed behind a "
        "transaction-mode pooler such as PgBouncer, where notifications never arrive).")
        ] = False,
    batch_size: BatchSizeOpt = 100,
    concurrency: ConcurrencyOpt = 16,
    workers: WorkersOpt = None,
    error_log: ErrorLogOpt = Path("watch-errors.log"),
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
    as_json: Annotated[bool, option("--json", help="JSON Lines instead of text.")] = False,
    quiet: QuietOpt = False,
    verbose: Annotated[bool, option(
        "--verbose", "-v", help="Also what limits each score.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Score the images other programs insert, as they arrive, until stopped.

    On PostgreSQL, new rows are announced by the trigger that `pixelgrade migrate` installs
    (LISTEN/NOTIFY); on SQLite and Supabase, watch polls every --interval seconds. A sweep at
    start and every --sweep-interval seconds catches rows inserted while it was down, missed
    notifications and transient failures due for a retry. One line per image (--json: JSON
    Lines). Ctrl-C or SIGTERM finishes the images in flight and exits with code 0.

    Examples:

    \b
      pixelgrade watch --db postgresql://app@db/shop
      pixelgrade watch --db sqlite:///app.db --interval 5 --json >> watch.log
      pixelgrade watch --once    # one sweep, then exit (cron)
    """
    from pixelgrade.watch import WatchLog, WatchOptions
    from pixelgrade.watch import watch as run_watch

    try:
        store = open_table(db, table, id_column, url_column, score_column)
        options = WatchOptions(
            batch_size=batch_size, workers=workers or os.cpu_count() or 1,
            concurrency=concurrency, error_log=error_log, interval=interval,
            sweep_interval=sweep_interval, once=once, listen=not poll,
            url_template=url_template, root=default_root(store, root),
            scoring=scoring_config(high=high, medium=medium, max_bytes=max_bytes,
                                   max_pixels=max_pixels, target_mp=target_mp),
            storage=storage_bucket(bucket, public_bucket),
            http=network_policy(max_bytes, allow_private_network, allow_host))
        run_watch(store, options, WatchLog(sys.stdout, as_json=as_json, quiet=quiet,
                                           verbose=verbose))
    except (PixelgradeError, ValueError) as exc:
        raise fail(exc) from exc
