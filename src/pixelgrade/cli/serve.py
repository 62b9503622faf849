"""``pixelgrade serve``: the gallery and the JSON API (parse, open the store, run uvicorn)."""

from __future__ import annotations

import dataclasses
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from rich.console import Console
from rich.markup import escape

from pixelgrade.cli.options import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_TARGET_MEGAPIXELS,
    AllowHostOpt,
    AllowPrivateNetworkOpt,
    BucketOpt,
    ConfigOpt,
    DbOpt,
    ErrorLogOpt,
    HighOpt,
    HostOpt,
    IdOpt,
    LogFormatOpt,
    MaxPixelsOpt,
    MediumOpt,
    PublicBucketOpt,
    QuietOpt,
    RootOpt,
    ScoreOpt,
    TableOpt,
    TargetOpt,
    UrlOpt,
    browser_address,
    network_policy,
    option,
    scoring_config,
)
from pixelgrade.cli.output import fail
from pixelgrade.cli.stores import sqlite_folder, storage_bucket, table_spec
from pixelgrade.envvars import read_variable
from pixelgrade.errors import PixelgradeError
from pixelgrade.scoring import Bands
from pixelgrade.stores import open_store, resolve_database_url
from pixelgrade.stores.base import GalleryStore

if TYPE_CHECKING:
    from pixelgrade.web.app import WebSettings


def serve(
    db: DbOpt = None,
    table: TableOpt = "images",
    id_column: IdOpt = "id",
    url_column: UrlOpt = "url",
    score_column: ScoreOpt = "quality_score",
    created_column: Annotated[str | None, option(
        "--created-column", metavar="COLUMN",
        help="Column that records when each row was added: \"Newest\" sorts by it, latest "
        "first (default: created_at when the table has it, else the key).")] = None,
    host: HostOpt = "127.0.0.1",
    port: Annotated[int, option(
        "--port", metavar="PORT", help="Port to listen on.", min=1, max=65535)] = 8000,
    uploads: Annotated[Path | None, option(
        "--uploads", metavar="FOLDER", help="Folder for uploaded images (default: uploads/ "
        "beside the SQLite database, else ./uploads). Rows record them relative to --root: "
        "give watch and backfill the same --root.")] = None,
    uploads_url: Annotated[str | None, option(
        "--uploads-url", metavar="TEMPLATE",
        help="Record uploads as URLs instead, where the --uploads folder is published: "
        "{path} is the file's path inside it, e.g. "
        "'https://cdn.example.com/uploads/{path}'.")] = None,
    root: RootOpt = None,
    cache: Annotated[Path | None, option(
        "--cache", metavar="FOLDER", help="Thumbnail cache folder (default: thumbnails/ "
        "beside the SQLite database, else ./.pixelgrade/thumbnails).")] = None,
    bucket: BucketOpt = None,
    public_bucket: PublicBucketOpt = False,
    workers: Annotated[int, option(
        "--workers", metavar="N", help="Scoring processes for uploads and re-scores.",
        min=1)] = 2,
    high: HighOpt = 70,
    medium: MediumOpt = 40,
    max_bytes: Annotated[int, option(
        "--max-bytes", metavar="BYTES", help="Refuse uploads (and sources) larger than this.",
        min=1)] = DEFAULT_MAX_BYTES,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    target_mp: TargetOpt = DEFAULT_TARGET_MEGAPIXELS,
    allow_private_network: AllowPrivateNetworkOpt = False,
    allow_host: AllowHostOpt = None,
    error_log: ErrorLogOpt = Path("serve-errors.log"),
    protect_reads: Annotated[bool, option(
        "--protect-reads", help="Pages and API reads need the token too (else only writes "
        "do).")] = False,
    log_level: Annotated[str | None, option(
        "--log-level", metavar="LEVEL",
        help="uvicorn's log level (default: warning; info with --verbose "
        "shows every request).")] = None,
    log_format: LogFormatOpt = "text",
    quiet: QuietOpt = False,
    verbose: Annotated[bool, option(
        "--verbose", "-v", help="Log every request (uvicorn's info level).")] = False,
    config: ConfigOpt = None,
) -> None:
    """Browse, filter, sort, upload and re-score images in a web page, and the same as JSON.

    Uploads and re-scores need the API token: set PIXELGRADE_API_TOKEN (environment or
    ./.env), or one is made up at start and printed in the address to open. Your own token
    is printed in that address only when the output is a terminal; otherwise sign the
    browser in at /sign-in. Reads are open unless --protect-reads.

    Rows whose image URLs are on a private or loopback address get no preview unless you
    allow them (--allow-host HOST); serve says so when it finds such rows.

    Examples:

    \b
      pixelgrade serve --db sqlite:///pixelgrade-demo/library.db
      PIXELGRADE_API_TOKEN=s3cret pixelgrade serve --db postgresql://app@db/shop
      pixelgrade serve --db supabase --bucket photos --path-column storage_path
    """
    import uvicorn

    from pixelgrade.service.logs import json_log_config
    from pixelgrade.web.actions import check_uploads_url
    from pixelgrade.web.app import TOKEN_VARIABLE, WebSettings, check_previews, create_app
    from pixelgrade.web.hooks import HOOK_PATH, secret_from_environment
    from pixelgrade.web.logs import uvicorn_log_config
    from pixelgrade.web.refusals import PreviewRefusals

    console, notes = _consoles(log_format, quiet)
    try:
        bands = Bands(high_from=high, medium_from=medium)
        store = open_store(resolve_database_url(db), dataclasses.replace(
            table_spec(table, id_column, url_column, score_column),
            created_column=created_column))
        folder = sqlite_folder(store)
        sqlite_folder_root = root is None and folder is not None
        root = root or folder or Path.cwd()
        if uploads_url is not None:
            check_uploads_url(uploads_url)
        network_policy(max_bytes, allow_private_network, allow_host).guard()  # bad --allow-host
        token, made_up = _token()
        settings = WebSettings(
            bands=bands, scoring=scoring_config(high=high, medium=medium, max_bytes=max_bytes,
                                                max_pixels=max_pixels, target_mp=target_mp),
            token=token, protect_reads=protect_reads,
            uploads=uploads or (folder / "uploads" if folder else Path("uploads")),
            root=root,
            cache=cache or (folder / "thumbnails" if folder else Path(".pixelgrade/thumbnails")),
            storage=storage_bucket(bucket, public_bucket), workers=workers,
            allow_private_network=allow_private_network,
            allowed_hosts=frozenset(allow_host or ()), uploads_url=uploads_url,
            webhook_secret=secret_from_environment(), error_log=error_log,
            token_hint=("the one pixelgrade serve made up for this run and printed in the "
                        "address to open" if made_up else f"the {TOKEN_VARIABLE} that "
                        "pixelgrade serve was started with (environment or ./.env)"))
        if uploads_url is None:  # else uploads are read back from where they are published
            _check_uploads_inside_root(settings.uploads, settings.root or Path.cwd())
        refused = check_previews(store, settings)
        from pixelgrade.backfill.errorlog import ErrorLog

        ErrorLog(error_log, example="serve-errors.log")  # an unwritable path fails now
    except (PixelgradeError, ValueError) as exc:
        raise fail(exc) from exc
    caps = store.capabilities
    if not (caps.status and caps.details):
        notes.print("[yellow]Note:[/] the table has no quality_status/quality_details "
                      "columns: the gallery cannot say why an image has no score, nor show "
                      "components and issues; add them with `pixelgrade migrate`.")
    app = create_app(store, settings, refused=refused)
    address = f"{browser_address(host, port)}/"
    console.print(f"pixelgrade gallery of {store.describe()}")
    # A token of the user's own is printed only to a terminal (as Jupyter does), never into a
    # file or pipe the output may be going to; the sign-in form takes it from there.
    signing_address = f"{address}?token={escape(quote(token, safe=''))}"
    terminal = _is_terminal() and log_format == "text"  # JSON: for a journal, never a token
    console.print(f"Open [bold]{signing_address}[/]" if (
        made_up and log_format == "text") or terminal else f"Open [bold]{address}[/]")
    if made_up and log_format == "json":
        console.print(f"Uploads and re-scores need a token: the one made up for this run is "
                      f"not written to JSON logs; set {TOKEN_VARIABLE} to choose one.")
    elif made_up:
        console.print(f"Uploads and re-scores need the token in that address (made up for "
                      f"this run; set {TOKEN_VARIABLE} to choose it).")
    elif terminal:
        notes.print(f"That address signs this browser in with your {TOKEN_VARIABLE} (shown "
                    "because this is a terminal; never when the output goes to a file or a "
                    f"pipe), as does the form at {address}sign-in.")
    else:
        reads = " to see the gallery and" if protect_reads else ""
        console.print(f"Sign in at [bold]{address}sign-in[/] with your {TOKEN_VARIABLE}{reads} "
                      "to upload and re-score (the token is not printed: the output is not a "
                      "terminal).")
    notes.print(f"API: {address}api/docs · uploads saved in {settings.uploads} · "
                "Ctrl-C to stop")
    _print_uploads(notes, settings, sqlite_folder_root)
    if settings.webhook_secret:
        notes.print(f"Supabase Database Webhook: POST {address.rstrip('/')}{HOOK_PATH} "
                    "(PIXELGRADE_WEBHOOK_SECRET is set).")
    _print_newest(notes, store)
    notice = PreviewRefusals(refused).notice()
    if notice:
        console.print(f"[yellow]Note:[/] {escape(notice)}")
    if host in ("0.0.0.0", "::"):
        console.print("[yellow]Listening on every network interface.[/]")
    uvicorn.run(app, host=host, port=port,
                log_level=log_level or ("info" if verbose else "warning"),
                log_config=json_log_config() if log_format == "json" else uvicorn_log_config())


def _consoles(log_format: str, quiet: bool) -> tuple[Any, Any]:
    """Where serve's start-up lines go: the lines that always show, and the notes (--quiet:
    the address only); with --log-format json, JSON lines (:mod:`pixelgrade.service.logs`)."""
    if log_format == "json":
        from pixelgrade.service.logs import JsonConsole

        return JsonConsole(event="start"), JsonConsole(quiet=quiet)
    return (Console(highlight=False, soft_wrap=True),
            Console(highlight=False, soft_wrap=True, quiet=quiet))


def _is_terminal() -> bool:
    """Whether what serve prints goes to a terminal (not a file, a pipe or a journal)."""
    return sys.stdout.isatty()


def _print_newest(console: Console, store: GalleryStore) -> None:
    """Say what "Newest" sorts by, and how to make it mean something when it does not."""
    created = store.sort_keys.created_column
    if created is None:
        what = ("by id" if store.sort_keys.integer_key
                else "in key order, which says nothing about age with these keys")
        console.print(f"Sort: the table has no created_at column, so the last sort lists "
                      f"images {what}; pass --created-column NAME to sort them by when they "
                      "were added.")
        return
    console.print(f"Sort: \"Newest\" is by {created}, latest first.")
    has_index = getattr(store, "has_index_on", None)
    if callable(has_index) and not has_index(created):
        console.print(f"[yellow]Note:[/] no index starts with {created}: each \"Newest\" page "
                      f"sorts the table; on a large one, add it: CREATE INDEX ON "
                      f"{store.spec.table} ({created}, {store.spec.id_column})")


def _print_uploads(console: Console, settings: WebSettings, sqlite_folder_root: bool) -> None:
    """How uploads are recorded, and what the other commands need to find them."""
    if settings.uploads_url is not None:
        console.print(f"Uploads are recorded as {escape(settings.uploads_url)} URLs ({{path}}: "
                      f"the file's path inside {escape(str(settings.uploads))}): publish that "
                      "folder there; watch and backfill fetch them from it (add --allow-host "
                      "for a private host).")
        return
    root = escape(str((settings.root or Path.cwd()).resolve()))
    if sqlite_folder_root:
        console.print(f"Uploads are recorded as paths relative to {root} (the database's "
                      "folder, where watch and backfill look by default).")
    else:
        console.print(f"Uploads are recorded as paths relative to {root}: run `pixelgrade "
                      f"watch` and `pixelgrade backfill` with --root {root} (from any folder) "
                      "so they find them, or serve with --uploads-url.")


def _check_uploads_inside_root(uploads: Path, root: Path) -> None:
    """Uploads are read back like any row, so only from under the root."""
    if not uploads.resolve().is_relative_to(root.resolve()):
        raise PixelgradeError(
            f"--uploads {uploads} is outside the image folder {root}: the gallery reads local "
            "files only under --root; pass an --uploads folder inside it, or a --root that "
            "holds both")


def _token() -> tuple[str, bool]:
    """The API token from the environment or ./.env, else a new random one (True)."""
    from pixelgrade.web.app import TOKEN_VARIABLE

    value = read_variable(TOKEN_VARIABLE)
    if value:
        return value, False
    return secrets.token_urlsafe(18), True
