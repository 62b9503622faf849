"""The ``pixelgrade`` command: a thin layer over the library (parse, call, print)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from pixelgrade import __version__
from pixelgrade.batch import default_workers, expand_locations, score_locations
from pixelgrade.cli_network import AllowHostOpt, AllowPrivateNetworkOpt, network_policy
from pixelgrade.scoring import Bands, QualityReport, ScoringConfig
from pixelgrade.scoring.config import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_TARGET_MEGAPIXELS,
)

app = typer.Typer(
    help="Quality scores (0-100) for the images of your app.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    # A crash's traceback must not print local variables: they hold database URLs with
    # passwords and service-role keys.
    pretty_exceptions_show_locals=False,
)

BAND_STYLE = {"high": "bold green", "medium": "bold yellow", "low": "bold red"}


def _config(high: int, medium: int, max_bytes: int, max_pixels: int, target_mp: float
            ) -> ScoringConfig:
    try:
        return ScoringConfig(max_bytes=max_bytes, max_pixels=max_pixels,
                             target_megapixels=target_mp,
                             bands=Bands(high_from=high, medium_from=medium))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _line(location: str, report: QualityReport) -> str:
    """Human-readable lines (Rich markup) for a report: the score, band and what limits it, then
    every issue and how the total is made."""
    if report.status != "scored":
        style = "dim" if report.status == "skipped" else "red"
        return (f"[{style}]  N/A  {report.status:<7}[/] {location}  "
                f"[{style}]{escape(report.reason or '')}[/]")
    band = report.band or ""
    size = f"{report.width}x{report.height} {report.format}"
    head = (f"[{BAND_STYLE.get(band, '')}]{report.score:>5}  {band:<7}[/] {escape(location)}  "
            f"[dim]{size}[/]  {escape(report.summary or 'no issues found')}")
    if not report.issues:
        return head
    lines = [head, *(f"               - {escape(issue.message)}" for issue in report.issues)]
    if report.formula:
        lines.append(f"               [dim]total: {escape(report.formula)}[/]")
    return "\n".join(lines)


def _print_summary(console: Console, reports: list[QualityReport]) -> None:
    counts: dict[str, int] = {"high": 0, "medium": 0, "low": 0, "N/A": 0}
    for report in reports:
        counts[report.band or "N/A"] += 1
    scored = [r.score for r in reports if r.score is not None]
    mean = f", mean score {sum(scored) / len(scored):.1f}" if scored else ""
    console.print(
        f"\n{len(reports)} images: [green]{counts['high']} high[/], "
        f"[yellow]{counts['medium']} medium[/], [red]{counts['low']} low[/], "
        f"{counts['N/A']} unscored (N/A){mean}"
    )


HighOpt = Annotated[int, typer.Option("--high", help="Lowest score in the High band.")]
MediumOpt = Annotated[int, typer.Option("--medium", help="Lowest score in the Medium band.")]
MaxBytesOpt = Annotated[int, typer.Option("--max-bytes", help="Refuse inputs larger than this.")]
MaxPixelsOpt = Annotated[int, typer.Option(
    "--max-pixels", help="Refuse images whose header declares more pixels (bomb guard).")]
TargetOpt = Annotated[float, typer.Option(
    "--target-mp", help="Megapixels that earn full resolution marks.")]


@app.command()
def score(
    locations: Annotated[list[str], typer.Argument(
        help="Image files, folders (scored recursively) or http(s) URLs.",
        metavar="PATH_OR_URL...")],
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object per line instead of text.")] = False,
    workers: Annotated[int | None, typer.Option(
        help="Scoring processes (default: one per core for 4+ images).", min=1)] = None,
    high: HighOpt = 70,
    medium: MediumOpt = 40,
    max_bytes: MaxBytesOpt = DEFAULT_MAX_BYTES,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    target_mp: TargetOpt = DEFAULT_TARGET_MEGAPIXELS,
    allow_private_network: AllowPrivateNetworkOpt = False,
    allow_host: AllowHostOpt = None,
) -> None:
    """Score images and print each one's score, band and what limits it, then every issue and
    how the total is made.

    Unreadable, corrupt or non-image inputs are reported as [red]failed[/] with the reason and
    vector images (SVG, PDF) as skipped; the exit code stays 0 (it is non-zero only for usage
    errors).

    Examples:

      pixelgrade score photo.jpg https://example.com/cat.webp

      pixelgrade score ./uploads --json > scores.jsonl

      pixelgrade score shop/*.jpg --high 80 --medium 50
    """
    config = _config(high, medium, max_bytes, max_pixels, target_mp)
    try:
        policy = network_policy(max_bytes, allow_private_network, allow_host)
        policy.guard()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    paths = expand_locations(locations)
    console = Console(highlight=False, soft_wrap=True)
    reports: list[QualityReport] = []
    for location, report in score_locations(paths, config, workers or default_workers(len(paths)),
                                              policy):
        reports.append(report)
        if as_json:
            print(json.dumps({"path": location, **report.to_dict()}), flush=True)
        else:
            console.print(_line(location, report))
    if not as_json and len(reports) > 1:
        _print_summary(console, reports)


@app.command()
def demo(
    folder: Annotated[Path, typer.Option(
        "--dir", help="Where to write the sample library and its database.")] = Path(
        "pixelgrade-demo"),
) -> None:
    """Run the whole procedure on a sample library: dry run, backfill, verify.

    Builds a SQLite database of a few hundred images (real photos, damaged copies, bad and
    missing files) in --dir, then runs the same commands you would run on your own database.
    """
    from pixelgrade.cli_demo import run_demo

    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 150  # a log or CI page: do not wrap tables at 80 columns
    run_demo(folder, console)


@app.command()
def version() -> None:
    """Print the pixelgrade version and the scorer version stored with each score."""
    from pixelgrade.scoring import SCORER_VERSION

    print(f"pixelgrade {__version__} (scorer version {SCORER_VERSION})")


from pixelgrade import cli_db, cli_web  # noqa: E402  (commands on a database; the web gallery)

app.command()(cli_db.init)
app.command()(cli_db.migrate)
app.command()(cli_db.backfill)
app.command()(cli_db.watch)
app.command("verify")(cli_db.verify_command)
app.command()(cli_web.serve)


def main() -> None:  # pragma: no cover - console entry point
    app()
