"""``pixelgrade hook``: only the webhook receiver and ``POST /api/images/{id}/score`` (parse,
open the store, run uvicorn; the work is :mod:`pixelgrade.web.hooks`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

from rich.console import Console

from pixelgrade.cli.options import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_TARGET_MEGAPIXELS,
    AllowHostOpt,
    AllowPrivateNetworkOpt,
    BucketOpt,
    ConcurrencyOpt,
    ConfigOpt,
    DbOpt,
    ErrorLogOpt,
    HighOpt,
    HostOpt,
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
    browser_address,
    network_policy,
    option,
    scoring_config,
)
from pixelgrade.cli.output import fail
from pixelgrade.cli.stores import default_root, storage_bucket, table_spec
from pixelgrade.envvars import read_variable
from pixelgrade.errors import PixelgradeError
from pixelgrade.stores import open_store, resolve_database_url


def hook(
    db: DbOpt = None,
    table: TableOpt = "images",
    id_column: IdOpt = "id",
    url_column: UrlOpt = "url",
    score_column: ScoreOpt = "quality_score",
    created_column: Annotated[str | None, option(
        "--created-column", metavar="COLUMN",
        help="Column that records when each row was added (default: created_at when the "
        "table has it): the time from insert to score is measured from it.")] = None,
    host: HostOpt = "127.0.0.1",
    port: Annotated[int, option(
        "--port", metavar="PORT", help="Port to listen on.", min=1, max=65535)] = 8001,
    workers: Annotated[int, option(
        "--workers", metavar="N", help="Scoring processes.", min=1)] = 2,
    concurrency: ConcurrencyOpt = 8,
    queue_size: Annotated[int, option(
        "--queue-size", metavar="ROWS",
        help="Rows waiting to be scored, at most; beyond, the webhook answers 503 with "
        "Retry-After (the row keeps no score: watch's sweep or a backfill finds it).",
        min=1)] = 1000,
    error_log: ErrorLogOpt = Path("hook-errors.log"),
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
    log_level: Annotated[str | None, option(
        "--log-level", metavar="LEVEL",
        help="uvicorn's log level (default: warning; info shows every request).")] = None,
    log_format: LogFormatOpt = "text",
    quiet: QuietOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Score rows as the database announces them: a Supabase Database Webhook receiver.

    POST /api/hooks/supabase takes a Database Webhook's payload (INSERT: score the row;
    UPDATE that changed the URL column of a row without a score: score it again; DELETE:
    ignored), with 'Authorization: Bearer <secret>', the secret being
    PIXELGRADE_WEBHOOK_SECRET (environment or ./.env; without it the route answers 503). It
    answers 202 at once and scores in the background, with the backfill's scorer and guarded
    writes. `pixelgrade migrate --supabase --sql --webhook-url URL` prints the trigger that
    calls it. POST /api/images/ID/score does the same for any application, with the
    PIXELGRADE_API_TOKEN.

    Examples:

    \b
      PIXELGRADE_WEBHOOK_SECRET=... pixelgrade hook --db supabase --host 0.0.0.0
      pixelgrade hook --db postgresql://app@db/shop --port 9000 --workers 4
    """
    import uvicorn

    from pixelgrade.service.logs import JsonConsole, json_log_config
    from pixelgrade.web.app import TOKEN_VARIABLE
    from pixelgrade.web.hooks import (
        HOOK_PATH,
        SECRET_VARIABLE,
        HookSettings,
        create_hook_app,
        secret_from_environment,
    )
    from pixelgrade.web.logs import uvicorn_log_config

    console: Console | JsonConsole = (
        JsonConsole(event="start", quiet=quiet) if log_format == "json"
        else Console(highlight=False, soft_wrap=True, quiet=quiet))
    try:
        store = open_store(resolve_database_url(db), dataclasses.replace(
            table_spec(table, id_column, url_column, score_column),
            created_column=created_column))
        secret = secret_from_environment()
        settings = HookSettings(
            scoring=scoring_config(high=high, medium=medium, max_bytes=max_bytes,
                                   max_pixels=max_pixels, target_mp=target_mp),
            secret=secret, token=read_variable(TOKEN_VARIABLE), workers=workers,
            concurrency=concurrency, queue_size=queue_size, error_log=error_log,
            root=default_root(store, root), url_template=url_template,
            storage=storage_bucket(bucket, public_bucket),
            http=network_policy(max_bytes, allow_private_network, allow_host))
        from pixelgrade.backfill.errorlog import ErrorLog

        ErrorLog(error_log, example="hook-errors.log")  # an unwritable path fails now
    except (PixelgradeError, ValueError) as exc:
        raise fail(exc) from exc
    app = create_hook_app(store, settings)
    address = browser_address(host, port)
    console.print(f"pixelgrade hook for {store.describe()}")
    if secret:
        console.print(f"Webhook: POST {address}{HOOK_PATH} with 'Authorization: Bearer "
                      f"<{SECRET_VARIABLE}>'")
    else:
        console.print(f"[yellow]Note:[/] {SECRET_VARIABLE} is not set: the webhook answers "
                      f"503 until pixelgrade hook is started with it.")
    console.print(f"Score on request: POST {address}/api/images/ID/score "
                  + ("with the API token" if settings.token
                     else f"(off: set {TOKEN_VARIABLE} to enable it)")
                  + f" · failures in {error_log} · Ctrl-C to stop")
    uvicorn.run(app, host=host, port=port, log_level=log_level or "warning",
                log_config=json_log_config() if log_format == "json" else uvicorn_log_config())

