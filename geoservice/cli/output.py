"""What every command prints: results on stdout, errors on stderr as one line, progress on stderr.

Errors a user can act on exit with status 1 and a message naming what to fix; nothing is
half-written, because every write runs in one transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:  # etl.load brings geopandas: not for every command's start (``geoservice --help``)
    from etl.load import ImportRejected

console = Console(soft_wrap=True)  # messages stay on one line: people grep them
err = Console(stderr=True, soft_wrap=True)


def fail(message: str) -> typer.Exit:
    """The one-line error and exit status 1; raise what it returns."""
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(1)


def print_rejected(exc: ImportRejected) -> None:
    """Every fault of a rejected file, one line each, before the summary line."""
    for error in exc.errors:
        err.print(f"  {error}", highlight=False, markup=False)


def spinner() -> Progress:
    """A spinner with the elapsed time, for work of unknown length."""
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err)
