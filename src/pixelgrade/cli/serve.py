"""``pixelgrade serve``: the gallery and the JSON API (parse, open the store, run uvicorn)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated

from dotenv import dotenv_values
from rich.console import Console

from pixelgrade.cli.options import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_TARGET_MEGAPIXELS,
    AllowHostOpt,
    AllowPrivateNetworkOpt,
    BucketOpt,
    ConfigOpt,
    DbOpt,
    HighOpt,
    IdOpt,
    MaxPixelsOpt,
    MediumOpt,
    PublicBucketOpt,
    QuietOpt,
    RootOpt,
    ScoreOpt,
    TableOpt,
    TargetOpt,
    UrlOpt,
    network_policy,
    option,
    scoring_config,
)
from pixelgrade.cli.output import fail
from pixelgrade.cli.stores import open_table, sqlite_folder, storage_bucket
from pixelgrade.errors import PixelgradeError
from pixelgrade.scoring import Bands


def serve(
    db: DbOpt = None,
    table: TableOpt = "images",
    id_column: IdOpt = "id",
    url_column: UrlOpt = "url",
    score_column: ScoreOpt = "quality_score",
    host: Annotated[str, option(
        "--host", metavar="ADDRESS",
        help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, option(
        "--port", metavar="PORT", help="Port to listen on.", min=1, max=65535)] = 8000,
    uploads: Annotated[Path | None, option(
        "--uploads", metavar="FOLDER", help="Folder for uploaded images (default: uploads/ "
        "beside the SQLite database, else ./uploads).")] = None,
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
    protect_reads: Annotated[bool, option(
        "--protect-reads", help="Pages and API reads need the token too (else only writes "
        "do).")] = False,
    log_level: Annotated[str | None, option(
        "--log-level", metavar="LEVEL",
        help="uvicorn's log level (default: warning; info with --verbose "
        "shows every request).")] = None,
    quiet: QuietOpt = False,
    verbose: Annotated[bool, option(
        "--verbose", "-v", help="Log every request (uvicorn's info level).")] = False,
    config: ConfigOpt = None,
) -> None:
    """Browse, filter, sort, upload and re-score images in a web page, and the same as JSON.

    Uploads and re-scores need the API token: set PIXELGRADE_API_TOKEN (environment or
    ./.env), or one is made up at start and printed in the address to open. Reads are
    open unless --protect-reads.

    Examples:

    \b
      pixelgrade serve --db sqlite:///pixelgrade-demo/library.db
      PIXELGRADE_API_TOKEN=s3cret pixelgrade serve --db postgresql://app@db/shop
      pixelgrade serve --db supabase --bucket photos --path-column storage_path
    """
    import uvicorn

    from pixelgrade.web.app import TOKEN_VARIABLE, WebSettings, create_app

    console = Console(highlight=False, soft_wrap=True)
    notes = Console(highlight=False, soft_wrap=True, quiet=quiet)  # --quiet: the address only
    try:
        bands = Bands(high_from=high, medium_from=medium)
        store = open_table(db, table, id_column, url_column, score_column)
        folder = sqlite_folder(store)
        root = root or folder
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
            allowed_hosts=frozenset(allow_host or ()))
        _check_uploads_inside_root(settings.uploads, settings.root or Path.cwd())
    except (PixelgradeError, ValueError) as exc:
        raise fail(exc) from exc
    caps = store.capabilities
    if not (caps.status and caps.details):
        notes.print("[yellow]Note:[/] the table has no quality_status/quality_details "
                      "columns: the gallery cannot say why an image has no score, nor show "
                      "components and issues; add them with `pixelgrade migrate`.")
    app = create_app(store, settings)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "") else (
        f"[{host}]" if ":" in host else host)
    address = f"http://{shown_host}:{port}/"
    console.print(f"pixelgrade gallery of {store.describe()}")
    console.print(f"Open [bold]{address}?token={token}[/]" if made_up
                  else f"Open [bold]{address}[/]")
    if made_up:
        console.print(f"Uploads and re-scores need the token in that address (made up for "
                      f"this run; set {TOKEN_VARIABLE} to choose it).")
    notes.print(f"API: {address}api/docs · uploads saved in {settings.uploads} · "
                  "Ctrl-C to stop")
    if host in ("0.0.0.0", "::"):
        console.print("[yellow]Listening on every network interface.[/]")
    uvicorn.run(app, host=host, port=port,
                log_level=log_level or ("info" if verbose else "warning"))


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

    env_file = Path.cwd() / ".env"
    value = os.environ.get(TOKEN_VARIABLE) or (
        dotenv_values(env_file).get(TOKEN_VARIABLE) if env_file.is_file() else None)
    if value:
        return value, False
    return secrets.token_urlsafe(18), True
