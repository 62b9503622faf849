"""``pixelgrade verify``: the seed's verification query and the checks a person would make."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console

from pixelgrade.cli.options import (
    ConfigOpt,
    DbOpt,
    HighOpt,
    IdOpt,
    JsonOpt,
    MediumOpt,
    QuietOpt,
    ScoreOpt,
    TableOpt,
    UrlOpt,
    option,
)
from pixelgrade.cli.output import console as make_console
from pixelgrade.cli.output import fail
from pixelgrade.cli.stores import open_table
from pixelgrade.errors import PixelgradeError
from pixelgrade.scoring import Bands
from pixelgrade.verify import DEFAULT_MAX_FAILED_SHARE, verify

#: Figures shown first, with their labels.
HEADLINE = ("total_images", "images_with_scores", "images_without_scores",
            "avg_quality_score")


def verify_command(
    db: DbOpt = None, table: TableOpt = "images", id_column: IdOpt = "id",
    url_column: UrlOpt = "url", score_column: ScoreOpt = "quality_score",
    strict: Annotated[bool, option(
        "--strict", help="Exit 1 while rows wait for a score, or when more than "
        "--max-failed-share of them failed.")] = False,
    as_json: JsonOpt = False,
    high: HighOpt = 70,
    medium: MediumOpt = 40,
    max_failed_share: Annotated[float, option(
        "--max-failed-share", metavar="SHARE", min=0.0, max=1.0,
        help="Warn (and with --strict, fail) when more than this share of rows failed.")
        ] = DEFAULT_MAX_FAILED_SHARE,
    quiet: QuietOpt = False,
    verbose: Annotated[bool, option(
        "--verbose", "-v", help="Also the score range.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Verification figures: totals, average, bands, statuses, a histogram, and warnings.

    Example: pixelgrade verify --strict   (exit 1 while rows are unscored or too many failed)
    """
    console = make_console()
    try:
        bands = Bands(high_from=high, medium_from=medium)
        store = open_table(db, table, id_column, url_column, score_column)
        result = verify(store.stats(bands.high_from, bands.medium_from), max_failed_share)
    except (PixelgradeError, ValueError) as exc:
        raise fail(exc) from exc
    figures = result.to_dict()
    if as_json:
        print(json.dumps(figures))
    elif quiet:
        for warning in result.warnings:
            console.print(f"[yellow]warning:[/] {warning}")
    else:
        _print_verification(console, store.describe(), figures, verbose)
    if strict and result.strict_failures():
        if not as_json:
            console.print("[red]verify --strict failed:[/] " + "; ".join(
                result.strict_failures()))
        raise typer.Exit(1)


def _shown(value: object) -> object:
    return "n/a (no scores yet)" if value is None else value


def _print_verification(console: Console, where: str, figures: dict[str, object],
                        verbose: bool) -> None:
    console.print(f"[bold]Verification of {where}[/]")
    keys = [*HEADLINE, "min_quality_score", "max_quality_score"] if verbose else HEADLINE
    for key in keys:
        console.print(f"  {key:<24}{_shown(figures[key])}")
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
