"""The ``pixelgrade`` program: its commands, ``--version`` and ``-h``, put together."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pixelgrade import __version__
from pixelgrade.cli.backfill import backfill
from pixelgrade.cli.config import config_command
from pixelgrade.cli.database import init, migrate
from pixelgrade.cli.hook import hook
from pixelgrade.cli.options import option
from pixelgrade.cli.output import console
from pixelgrade.cli.score import score
from pixelgrade.cli.serve import serve
from pixelgrade.cli.verify import verify_command
from pixelgrade.cli.watch import watch

app = typer.Typer(
    help="Quality scores (0-100) for the images of your app.\n\n"
    "Every option can also be set in ./pixelgrade.toml (or --config FILE) or as an "
    "environment variable named after it (--batch-size: PIXELGRADE_BATCH_SIZE); flags win "
    "over the environment, the environment over the file. `pixelgrade config` shows what "
    "each command would use.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    # A crash's traceback must not print local variables: they hold database URLs with
    # passwords and service-role keys.
    pretty_exceptions_show_locals=False,
)


def _version_line() -> str:
    from pixelgrade.scoring import SCORER_VERSION

    return f"pixelgrade {__version__} (scorer version {SCORER_VERSION})"


def _print_version(value: bool) -> None:
    if value:
        print(_version_line())
        raise typer.Exit()


@app.callback()
def _program(
    show_version: Annotated[bool | None, typer.Option(
        "--version", help="Print the version and exit.", is_eager=True,
        callback=_print_version)] = None,
) -> None:
    """Quality scores (0-100) for the images of your app."""


@app.command()
def demo(
    folder: Annotated[Path, option(
        "--dir", help="Where to write the sample library and its database.")] = Path(
        "pixelgrade-demo"),
) -> None:
    """Run the whole procedure on a sample library: dry run, backfill, verify.

    Builds a SQLite database of a few hundred images (real photos, damaged copies, bad and
    missing files) in --dir, then runs the same commands you would run on your own database.
    """
    from pixelgrade.cli.demo import run_demo

    shown = console()
    if not shown.is_terminal:
        shown.width = 150  # a log or CI page: do not wrap tables at 80 columns
    program = typer.main.get_command(app)

    def run(args: list[str]) -> int:
        code = program.main(args, prog_name="pixelgrade", standalone_mode=False)
        return code if isinstance(code, int) else 0

    run_demo(folder, shown, run)


@app.command()
def version() -> None:
    """Print the pixelgrade version and the scorer version stored with each score."""
    print(_version_line())


app.command()(init)
app.command()(migrate)
app.command()(backfill)
app.command()(watch)
app.command("verify")(verify_command)
app.command()(serve)
app.command()(hook)
app.command()(score)
app.command("config")(config_command)


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="pixelgrade")
