"""Every command-line option of ``pixelgrade``, declared once.

Each option is made by :func:`option`, which also gives it its environment variable:
``--batch-size`` is ``PIXELGRADE_BATCH_SIZE``. Where a value comes from, highest first: the
flag, the environment variable, ``pixelgrade.toml`` (see :mod:`pixelgrade.cli.project`), the
checkpoint on ``backfill --resume`` (see :mod:`pixelgrade.cli.backfill`), the default below.
Commands share the names and the help text by using the same ``...Opt`` alias.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pixelgrade.cli.project import apply_project_file
from pixelgrade.scoring import Bands, ScoringConfig
from pixelgrade.scoring.config import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_TARGET_MEGAPIXELS,
)
from pixelgrade.sources.http import HttpPolicy

ENV_PREFIX = "PIXELGRADE_"

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_PIXELS", "DEFAULT_TARGET_MEGAPIXELS", "ENV_PREFIX"]


def env_name(flag: str) -> str:
    """``--batch-size`` (or ``--resume/--no-resume``) -> ``PIXELGRADE_BATCH_SIZE``."""
    return ENV_PREFIX + flag.split("/")[0].lstrip("-").replace("-", "_").upper()


def option(*names: str, help: str, envvar: str | list[str] | None = None,
           **settings: Any) -> Any:
    """A ``typer.Option`` whose environment variable follows from its long name."""
    long = next(name for name in names if name.startswith("--"))
    return typer.Option(*names, help=help, envvar=envvar or env_name(long), show_envvar=False,
                        **settings)


# -- every command ---------------------------------------------------------------------------

ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", metavar="FILE", envvar="PIXELGRADE_CONFIG", show_envvar=False,
    is_eager=True, callback=apply_project_file,
    help="Settings file (default: ./pixelgrade.toml when it exists).")]
QuietOpt = Annotated[bool, option("--quiet", "-q", help="Print only errors and the result.")]
VerboseOpt = Annotated[bool, option("--verbose", "-v", help="Print more detail.")]

# -- the table ---------------------------------------------------------------------------------

DbOpt = Annotated[str | None, option(
    "--db", metavar="URL",
    help="sqlite:///file.db, postgresql://user@host/db, or 'supabase' (SUPABASE_URL and "
    "SUPABASE_SERVICE_ROLE_KEY from the environment or ./.env). Default: $DATABASE_URL, "
    "then DATABASE_URL in ./.env, then supabase when its two settings are there, then "
    "sqlite:///pixelgrade.db.")]
TableOpt = Annotated[str, option(
    "--table", metavar="NAME",
    help="The images table (or schema.table).")]
IdOpt = Annotated[str, option(
    "--id-column", metavar="COLUMN",
    help="Primary key column (integer or UUID).")]
UrlOpt = Annotated[str, option(
    "--url-column", "--path-column", metavar="COLUMN",
    help="Column with the image URL or path.")]
ScoreOpt = Annotated[str, option(
    "--score-column", metavar="COLUMN",
    help="Column for the 0-100 score.")]

# -- where images are read from --------------------------------------------------------------

UrlTemplateOpt = Annotated[str | None, option(
    "--url-template", metavar="TEMPLATE",
    help="Turn stored paths into URLs, e.g. 'https://cdn.example.com/{path}'.")]
RootOpt = Annotated[Path | None, option(
    "--root", metavar="FOLDER",
    help="Folder that local paths in the table are under; paths leading outside it are "
    "refused. Default: the SQLite file's folder, else the working directory.")]
BucketOpt = Annotated[str | None, option(
    "--bucket", metavar="NAME",
    help="Supabase Storage bucket that the paths in --path-column are in.")]
PublicBucketOpt = Annotated[bool, option(
    "--public-bucket/--private-bucket",
    help="The bucket is public: download by public URL, without the key.")]
AllowPrivateNetworkOpt = Annotated[bool, option(
    "--allow-private-network/--no-allow-private-network",
    help="Also fetch URLs on loopback, private, link-local and other non-public addresses "
    "(refused by default: rows must not make pixelgrade reach your internal network). "
    "Only for a network you trust.")]
AllowHostOpt = Annotated[list[str] | None, option(
    "--allow-host", metavar="HOST", envvar=["PIXELGRADE_ALLOW_HOST", "PIXELGRADE_ALLOW_HOSTS"],
    help="Fetch from this host even if it is on a private network: a host name, an IP "
    "address or a network (10.0.0.0/8). Repeatable; in the environment, space-separated.")]

# -- how images are scored ---------------------------------------------------------------------

HighOpt = Annotated[int, option(
    "--high", metavar="SCORE",
    help="Lowest score in the High band.", min=1, max=100)]
MediumOpt = Annotated[int, option(
    "--medium", metavar="SCORE",
    help="Lowest score in the Medium band.", min=1, max=100)]
MaxBytesOpt = Annotated[int, option(
    "--max-bytes", metavar="BYTES",
    help="Refuse images larger than this.", min=1)]
MaxPixelsOpt = Annotated[int, option(
    "--max-pixels", metavar="PIXELS",
    help="Refuse images whose header declares more pixels (bomb guard).", min=1)]
TargetOpt = Annotated[float, option(
    "--target-mp", metavar="MP", help="Megapixels that earn full resolution marks.",
    min=0.01)]

# -- how the work is done ----------------------------------------------------------------------

BatchSizeOpt = Annotated[int, option(
    "--batch-size", metavar="ROWS",
    help="Rows per batch (one transaction each).", min=1)]
ConcurrencyOpt = Annotated[int, option(
    "--concurrency", metavar="N",
    help="Downloads in flight.", min=1)]
WorkersOpt = Annotated[int | None, option(
    "--workers", metavar="N", help="Scoring processes (default: one per CPU core).",
    min=1)]
ErrorLogOpt = Annotated[Path, option(
    "--error-log", metavar="FILE", help="Error log (JSON Lines).")]
JsonOpt = Annotated[bool, option("--json", help="JSON instead of text.")]
HostOpt = Annotated[str, option(
    "--host", metavar="ADDRESS", help="Address to listen on (0.0.0.0: every interface).")]


def browser_address(host: str, port: int) -> str:
    """``http://HOST:PORT`` to open from this machine for a server listening on ``host``
    (every interface: 127.0.0.1; an IPv6 address in brackets)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}"
#: The services' logs (``watch``, ``serve``): see :mod:`pixelgrade.service.logs`.
def _log_format(value: str) -> str:
    if value.lower() not in ("text", "json"):
        raise typer.BadParameter(f"{value!r} is not a log format: text or json")
    return value.lower()


LogFormatOpt = Annotated[str, option(
    "--log-format", metavar="text|json", parser=_log_format,
    help="Log lines as text, or as JSON Lines (ts, level, event, message and fields; "
    "passwords and tokens never written).")]


def scoring_config(*, high: int, medium: int, max_bytes: int, max_pixels: int,
                   target_mp: float) -> ScoringConfig:
    """The scorer's settings from the options every scoring command has."""
    try:
        return ScoringConfig(max_bytes=max_bytes, max_pixels=max_pixels,
                             target_megapixels=target_mp,
                             bands=Bands(high_from=high, medium_from=medium))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def network_policy(max_bytes: int, allow_private_network: bool,
                   allow_host: list[str] | None, **limits: object) -> HttpPolicy:
    """The :class:`HttpPolicy` of a command: its size cap and the network guard's opt-ins
    (see :mod:`pixelgrade.sources.netguard`)."""
    return HttpPolicy(max_bytes=max_bytes, allow_private_network=allow_private_network,
                      allowed_hosts=frozenset(allow_host or ()), **limits)  # type: ignore[arg-type]
