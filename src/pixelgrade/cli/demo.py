"""``pixelgrade demo``: the whole procedure on the embedded default, as a new user would run it.

Builds a SQLite library of a few hundred images (real photos, damaged copies, unreadable and
missing files), then runs the very commands the README shows: ``backfill --dry-run``,
``backfill``, ``verify``, echoing each command line before its output.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from pixelgrade.demo import build_database

BAND_STYLE = {"high": "bold green", "medium": "bold yellow", "low": "bold red"}


def run_demo(folder: Path, console: Console, run: Callable[[list[str]], int]) -> None:
    """The demo, running each command with ``run`` (the ``pixelgrade`` program itself, so
    every option has its default, as for a person typing it)."""
    console.rule("[bold]pixelgrade demo[/]")
    console.print(f"Building a sample library in {folder}/ ...")
    url, rows = build_database(folder)
    console.print(f"{rows} images in {url} (table images, column quality_score all NULL)\n")
    common = ["--db", url, "--checkpoint", str(folder / "backfill-checkpoint.json"),
              "--error-log", str(folder / "backfill-errors.log")]

    for args in (["backfill", "--dry-run", "--db", url],
                 ["backfill", *common, "--batch-size", "50"],
                 ["verify", "--db", url]):
        _echo(console, args)
        code = run(args)
        if code:
            raise SystemExit(code)
        console.print()
    _featured(console, url)
    database = Path(sa.make_url(url).database or "").resolve()
    console.print(f"\nThe database is [bold]{database}[/]. Try:")
    for command in (["serve", "--db", url],  # the gallery: browse, filter, upload
                    ["verify", "--db", url, "--json"],
                    ["backfill", "--db", url, "--retry-failed", "--verbose"],
                    ["score", str(folder / "featured" / "coffee-noisy.png")]):
        console.print(f"  pixelgrade {shlex.join(command)}", highlight=False)


def _echo(console: Console, args: list[str]) -> None:
    console.print(f"[bold cyan]$ pixelgrade {shlex.join(args)}[/]", highlight=False)


def _featured(console: Console, url: str) -> None:
    """The hand-picked images with their scores and issues, as stored by the backfill."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT url, quality_score, quality_status, quality_details FROM images "
            "WHERE url LIKE 'featured/%' ORDER BY quality_score IS NULL, quality_score DESC"
        )).all()
    engine.dispose()
    import json

    table = Table(title="Featured images: score, band and what is wrong, as stored")
    for column in ("score", "image", "issues / reason"):
        table.add_column(column, justify="right" if column == "score" else "left")
    for location, score, status, details_text in rows:
        details = json.loads(details_text) if details_text else {}
        name = Path(location).name
        if score is None:
            table.add_row("N/A", name, f"[dim]{status}: {details.get('reason')}[/]")
            continue
        band = "high" if score >= 70 else "medium" if score >= 40 else "low"
        issues = "\n".join(issue["message"] for issue in details.get("issues", []))
        table.add_row(f"[{BAND_STYLE[band]}]{score}[/]", name, issues or "[dim]no issues[/]")
    console.print(table)
