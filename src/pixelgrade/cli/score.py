"""``pixelgrade score``: score files, folders, URLs or stdin and print what limits each score."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from pixelgrade.batch import default_workers, expand_locations, score_locations
from pixelgrade.cli.options import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_TARGET_MEGAPIXELS,
    AllowHostOpt,
    AllowPrivateNetworkOpt,
    ConfigOpt,
    HighOpt,
    MaxBytesOpt,
    MaxPixelsOpt,
    MediumOpt,
    TargetOpt,
    network_policy,
    option,
    scoring_config,
)
from pixelgrade.cli.output import console as make_console
from pixelgrade.scoring import QualityReport, ScoringConfig, score_bytes

BAND_STYLE = {"high": "bold green", "medium": "bold yellow", "low": "bold red"}
#: The location that means "read one image from standard input".
STDIN = "-"
INDENT = " " * 15


def score(
    locations: Annotated[list[str], typer.Argument(
        help="Image files, folders (scored recursively), http(s) URLs, or - to read one "
        "image from standard input.", metavar="PATH_OR_URL", show_default=False)],
    as_json: Annotated[bool, option(
        "--json", help="One JSON object per line instead of text.")] = False,
    workers: Annotated[int | None, option(
        "--workers", metavar="N",
        help="Scoring processes (default: one per core for 4+ images).", min=1)] = None,
    fail_under: Annotated[int | None, option(
        "--fail-under", metavar="SCORE", min=0, max=100,
        help="Exit 1 if an image scores below SCORE or cannot be scored (for CI).")] = None,
    high: HighOpt = 70,
    medium: MediumOpt = 40,
    max_bytes: MaxBytesOpt = DEFAULT_MAX_BYTES,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    target_mp: TargetOpt = DEFAULT_TARGET_MEGAPIXELS,
    allow_private_network: AllowPrivateNetworkOpt = False,
    allow_host: AllowHostOpt = None,
    quiet: Annotated[bool, option(
        "--quiet", "-q", help="One line per image: score, band, name.")] = False,
    verbose: Annotated[bool, option(
        "--verbose", "-v", help="Also every component's sub-score and measurement.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Score images and print each one's score, band and what limits it, then every issue and
    how the total is made.

    Unreadable, corrupt or non-image inputs are reported as failed with the reason,
    vector images (SVG, PDF) as skipped. The exit code is 0, or 1 with --fail-under when an
    image scores below it, fails or is skipped (2 for usage errors).

    Examples:

    \b
      pixelgrade score photo.jpg https://example.com/cat.webp
      pixelgrade score ./uploads --json > scores.jsonl
      curl -s https://example.com/cat.jpg | pixelgrade score -
      pixelgrade score build/images --fail-under 60 --quiet
    """
    settings = scoring_config(high=high, medium=medium, max_bytes=max_bytes,
                              max_pixels=max_pixels, target_mp=target_mp)
    try:
        policy = network_policy(max_bytes, allow_private_network, allow_host)
        policy.guard()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if STDIN in locations and len(locations) > 1:
        raise typer.BadParameter("- (standard input) holds one image: pass it alone")
    console = make_console()
    reports: list[QualityReport] = []
    if locations == [STDIN]:
        scored: Iterator[tuple[str, QualityReport]] = iter(
            [("(stdin)", _score_stdin(settings))])
    else:
        paths = expand_locations(locations)
        scored = score_locations(paths, settings, workers or default_workers(len(paths)),
                                 policy)
    for location, report in scored:
        reports.append(report)
        if as_json:
            print(json.dumps({"path": location, **report.to_dict()}), flush=True)
        else:
            console.print(_lines(location, report, quiet, verbose))
    if not as_json and len(reports) > 1:
        _print_summary(console, reports)
    if fail_under is not None:
        below = [r for r in reports if r.score is None or r.score < fail_under]
        if below:
            if not as_json:
                console.print(f"[red]{len(below)} of {len(reports)} images score below "
                              f"{fail_under} or have no score.[/]")
            raise typer.Exit(1)


def _score_stdin(settings: ScoringConfig) -> QualityReport:
    data = sys.stdin.buffer.read(settings.max_bytes + 1)
    if len(data) > settings.max_bytes:
        return QualityReport(status="failed", reason=f"standard input holds more than "
                             f"--max-bytes {settings.max_bytes} bytes")
    if not data:
        return QualityReport(status="failed", reason="standard input is empty: pipe an "
                             "image into it (pixelgrade score - < photo.jpg)")
    return score_bytes(data, settings)


def _lines(location: str, report: QualityReport, quiet: bool, verbose: bool) -> str:
    """Human-readable lines (Rich markup) for a report: the score, band and what limits it,
    then every issue and how the total is made (``quiet``: the first line only)."""
    if report.status != "scored":
        style = "dim" if report.status == "skipped" else "red"
        return (f"[{style}]  N/A  {report.status:<7}[/] {escape(location)}  "
                f"[{style}]{escape(report.reason or '')}[/]")
    band = report.band or ""
    size = f"{report.width}x{report.height} {report.format}"
    head = (f"[{BAND_STYLE.get(band, '')}]{report.score:>5}  {band:<7}[/] {escape(location)}")
    if quiet:
        return head
    head += f"  [dim]{size}[/]  {escape(report.summary or 'no issues found')}"
    lines = [head, *(f"{INDENT}- {escape(issue.message)}" for issue in report.issues)]
    if report.formula and (report.issues or verbose):
        lines.append(f"{INDENT}[dim]total: {escape(report.formula)}[/]")
    if verbose:
        for name, component in report.components.items():
            value = "" if component.value is None else f"{component.value:g} {component.unit}"
            sub_score = "n/a" if component.score is None else component.score
            lines.append(f"{INDENT}[dim]{name:<12} {sub_score:>3}  {escape(value)}[/]")
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
