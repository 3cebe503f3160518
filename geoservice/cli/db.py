"""``geoservice db``: the embedded PostGIS cluster, backups and restores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from geoservice.cli.output import console, fail
from geoservice.infra.backup import BackupError, backup, restore
from geoservice.infra.database import embedded_cluster, open_database, resolve_url
from geoservice.infra.embedded import ClusterError
from geoservice.settings import DatabaseSettings

db_app = typer.Typer(help="The embedded PostGIS cluster (ignored when GEOSERVICE_DATABASE_URL is set).")


@db_app.command("up")
def db_up() -> None:
    """Initialise (once) and start the embedded cluster; print its URL."""
    settings = DatabaseSettings()
    if settings.database_url:
        console.print("GEOSERVICE_DATABASE_URL is set: that server is used, nothing to start")
        return
    try:
        url = embedded_cluster(settings).up()
    except ClusterError as exc:
        raise fail(str(exc)) from exc
    open_database(settings).dispose()
    console.print(url, highlight=False)


@db_app.command("down")
def db_down() -> None:
    """Stop the embedded cluster cleanly."""
    stopped = embedded_cluster(DatabaseSettings()).down()
    console.print("stopped" if stopped else "not running")


@db_app.command("status")
def db_status() -> None:
    """Whether the embedded cluster is initialised and running, and on which port."""
    status = embedded_cluster(DatabaseSettings()).status()
    console.print(
        f"datadir {status.datadir}\ninitialised {status.initialised}\nrunning {status.running}\nport {status.port}",
        highlight=False,
    )
    if not status.running:
        raise typer.Exit(3)  # like pg_ctl status: scripts can test it


@db_app.command("url")
def db_url() -> None:
    """Print the SQLAlchemy URL of the database in use."""
    settings = DatabaseSettings()
    try:
        console.print(settings.database_url or embedded_cluster(settings).url(), highlight=False)
    except ClusterError as exc:
        raise fail(str(exc)) from exc


@db_app.command("backup")
def db_backup(path: Annotated[Path, typer.Argument(help="file to write (pg_dump custom format)")]) -> None:
    """Dump the whole database to PATH; the file appears only when the dump is complete."""
    try:
        size = backup(resolve_url(DatabaseSettings()), path)
    except (BackupError, ClusterError) as exc:
        raise fail(str(exc)) from exc
    console.print(f"backup written: {path} ({size / 1e6:,.1f} MB)", highlight=False)


@db_app.command("restore")
def db_restore(
    path: Annotated[Path, typer.Argument(help="a file written by `geoservice db backup`")],
    yes: Annotated[bool, typer.Option("--yes", help="replace the database's contents without asking")] = False,
) -> None:
    """Replace the database's contents by a backup, in one transaction (all or nothing)."""
    url = resolve_url(DatabaseSettings())
    if not yes and not typer.confirm(f"Replace everything in {make_url(url).database} by {path}?"):
        raise fail("nothing restored")
    try:
        restore(url, path)
    except BackupError as exc:
        raise fail(f"{exc} (nothing was changed)") from exc
    console.print(f"restored from {path}; restart running servers so they reload the boundaries", highlight=False)
