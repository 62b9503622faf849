"""What every command prints the same way: errors, and consoles for text and for logs."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape


def console(*, stderr: bool = False) -> Console:
    """A console for a command's text: no guessing colours in numbers, long lines kept whole
    (paths, URLs and commands to copy must not be broken in two)."""
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def fail(exc: Exception, code: int = 1) -> typer.Exit:
    """Print ``Error: <message>`` on stderr; the caller raises the returned exit."""
    # Escaped: messages hold brackets ("pip install 'pixelgrade[dask]'", IPv6 hosts) that
    # Rich would otherwise take for markup and drop.
    console(stderr=True).print(f"[red]Error:[/] {escape(str(exc))}")
    return typer.Exit(code)
