"""``pixelgrade watch``: score the rows other programs insert, as they arrive."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
    LogFormatOpt,
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

if TYPE_CHECKING:
    from pixelgrade.stores import Store
    from pixelgrade.watch import WatchLog, WatchOptions


def watch(
    db: DbOpt = None,
    table: TableOpt = "images",
    id_column: IdOpt = "id",
    url_column: UrlOpt = "url",
    score_column: ScoreOpt = "quality_score",
    interval: Annotated[float | None, option(
        "--interval", metavar="SECONDS",
        help="Seconds between polls for new rows (SQLite, Supabase, PostgreSQL "
        "without the trigger). Default: 0.5 on SQLite (a local file: a poll costs "
        "nothing), 2 elsewhere (each poll is a query or a request to a server).",
        min=0.05)] = None,
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
    log_format: LogFormatOpt = "text",
    as_json: Annotated[bool, option(
        "--json", help="The same as --log-format json (its older name).")] = False,
    metrics_port: Annotated[int | None, option(
        "--metrics-port", metavar="PORT",
        help="Serve GET /metrics (Prometheus) and GET /healthz on this port while watching.",
        min=1, max=65535)] = None,
    metrics_host: Annotated[str, option(
        "--metrics-host", metavar="ADDRESS",
        help="Address for --metrics-port (0.0.0.0: every interface, for a Prometheus on "
        "another machine).")] = "127.0.0.1",
    quiet: QuietOpt = False,
    verbose: Annotated[bool, option(
        "--verbose", "-v", help="Also what limits each score.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Score the images other programs insert, as they arrive, until stopped.

    On PostgreSQL, new rows are announced by the trigger that `pixelgrade migrate` installs
    (LISTEN/NOTIFY); on SQLite and Supabase, watch polls every --interval seconds. A sweep at
    start and every --sweep-interval seconds catches rows inserted while it was down, missed
    notifications and transient failures due for a retry. One line per image (--log-format
    json: JSON Lines). Ctrl-C or SIGTERM finishes the images in flight and exits with code 0.
    --metrics-port serves /metrics and /healthz while it runs (docs/deploy.md).

    Examples:

    \b
      pixelgrade watch --db postgresql://app@db/shop
      pixelgrade watch --db sqlite:///app.db --log-format json >> watch.log
      pixelgrade watch --db postgresql://app@db/shop --metrics-port 9108
      pixelgrade watch --once    # one sweep, then exit (cron)
    """
    from pixelgrade.watch import WatchLog, WatchOptions, poll_interval
    from pixelgrade.watch import watch as run_watch

    try:
        store = open_table(db, table, id_column, url_column, score_column)
        options = WatchOptions(
            batch_size=batch_size, workers=workers or os.cpu_count() or 1,
            concurrency=concurrency, error_log=error_log,
            interval=interval if interval is not None else poll_interval(store),
            sweep_interval=sweep_interval, once=once, listen=not poll,
            url_template=url_template, root=default_root(store, root),
            scoring=scoring_config(high=high, medium=medium, max_bytes=max_bytes,
                                   max_pixels=max_pixels, target_mp=target_mp),
            storage=storage_bucket(bucket, public_bucket),
            http=network_policy(max_bytes, allow_private_network, allow_host))
        log = WatchLog(sys.stdout, as_json=as_json or log_format == "json", quiet=quiet,
                       verbose=verbose)
        if metrics_port is None:
            run_watch(store, options, log)
        else:
            _watch_with_metrics(store, options, log, metrics_host, metrics_port)
    except (PixelgradeError, ValueError) as exc:
        raise fail(exc) from exc


def _watch_with_metrics(store: Store, options: WatchOptions, log: WatchLog, host: str,
                        port: int) -> None:
    """The watch, with /metrics and /healthz served on ``host:port`` until it ends: the same
    routes as ``serve``'s (:func:`pixelgrade.service.routes.add_service_routes`), on a
    small app of their own in a uvicorn thread."""
    from pixelgrade.service.health import HealthCheck
    from pixelgrade.service.metrics import ServiceMetrics
    from pixelgrade.service.routes import ServiceServer, metrics_app
    from pixelgrade.watch import Watcher

    metrics = ServiceMetrics(store=getattr(store, "dialect_name", ""))
    health = HealthCheck(store)
    watcher = Watcher(store, options, log, metrics)
    health.register("watch", watcher.liveness)
    with ServiceServer(metrics_app(metrics, health), host, port) as server:
        log.note("metrics", f"metrics on {server.url}/metrics, health on {server.url}/healthz",
                 url=server.url)
        watcher.run()
