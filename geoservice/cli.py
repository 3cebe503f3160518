"""The ``geoservice`` command: database, demo, import/export, boundary versions, the server.

Errors a user can act on exit with status 1 and a message naming what to fix; nothing is
half-written, because every write runs in one transaction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.engine import make_url

from etl.contracts import CONTRACTS
from etl.load import ImportRejected, import_layer
from etl.readers import ReadError
from etl.writers import ExportError, read_layer, write_layer
from geoservice.auth.users import UserError, add_user, list_users, set_disabled
from geoservice.backup import BackupError, backup, restore
from geoservice.coverage_cli import coverage_app
from geoservice.database import embedded_cluster, open_database, resolve_url, transaction
from geoservice.embedded import ClusterError
from geoservice.event_routing import assign_departments, assign_places
from geoservice.events_cli import events_app
from geoservice.observability import logging_config
from geoservice.open311_cli import open311_app
from geoservice.routing.loader import load_router
from geoservice.settings import DatabaseSettings, OperationsSettings, ServerSettings
from geoservice.versions import VersionError, current_version_id, notify_layers_changed, resolve_version
from geoservice.versions_cli import versions_app
from layers.models import Role

app = typer.Typer(help="Spatial governance service: grids, police posts, events on PostGIS.", no_args_is_help=True)
db_app = typer.Typer(help="The embedded PostGIS cluster (ignored when GEOSERVICE_DATABASE_URL is set).")
users_app = typer.Typer(help="People who sign in: roles and scopes.")
app.add_typer(db_app, name="db")
app.add_typer(versions_app, name="versions")
app.add_typer(users_app, name="users")
app.add_typer(coverage_app, name="coverage")
app.add_typer(events_app, name="events")
app.add_typer(open311_app, name="open311")

console = Console(soft_wrap=True)  # messages stay on one line: people grep them
err = Console(stderr=True, soft_wrap=True)
LAYERS = ", ".join(CONTRACTS)


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(1)


# --- db ------------------------------------------------------------------------------------------
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
        raise _fail(str(exc)) from exc
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
        raise _fail(str(exc)) from exc


@db_app.command("backup")
def db_backup(path: Annotated[Path, typer.Argument(help="file to write (pg_dump custom format)")]) -> None:
    """Dump the whole database to PATH; the file appears only when the dump is complete."""
    try:
        size = backup(resolve_url(DatabaseSettings()), path)
    except (BackupError, ClusterError) as exc:
        raise _fail(str(exc)) from exc
    console.print(f"backup written: {path} ({size / 1e6:,.1f} MB)", highlight=False)


@db_app.command("restore")
def db_restore(
    path: Annotated[Path, typer.Argument(help="a file written by `geoservice db backup`")],
    yes: Annotated[bool, typer.Option("--yes", help="replace the database's contents without asking")] = False,
) -> None:
    """Replace the database's contents by a backup, in one transaction (all or nothing)."""
    url = resolve_url(DatabaseSettings())
    if not yes and not typer.confirm(f"Replace everything in {make_url(url).database} by {path}?"):
        raise _fail("nothing restored")
    try:
        restore(url, path)
    except BackupError as exc:
        raise _fail(f"{exc} (nothing was changed)") from exc
    console.print(f"restored from {path}; restart running servers so they reload the boundaries", highlight=False)


# --- demo ----------------------------------------------------------------------------------------
@app.command()
def demo(
    boundary: Annotated[Path | None, typer.Option(help="County boundary (GeoJSON); default 如皋市")] = None,
    crs: Annotated[str, typer.Option(help="CRS of --boundary")] = "gcj02",
    adcode: Annotated[str, typer.Option(help="6-digit county code of --boundary")] = "320682",
    seed: int = 320682,
    grids: Annotated[int, typer.Option(help="about how many grids")] = 1500,
    events: Annotated[int, typer.Option(help="historic events over 12 months")] = 50_000,
) -> None:
    """Load the demo city (once; skipped when it is already loaded)."""
    from geoservice.demo import DEMO_BOUNDARY, DemoOptions, demo_loaded, demo_users, load_demo

    engine = open_database()
    if demo_loaded(engine):
        console.print("demo city already loaded")
        return
    options = DemoOptions(
        boundary=boundary or DEMO_BOUNDARY, boundary_crs=crs, adcode=adcode, seed=seed,
        n_grids=grids, n_communities=max(1, grids // 5), n_events=events,
    )  # fmt: skip
    with _spinner() as progress:
        task = progress.add_task("demo city", total=None)
        counts = load_demo(engine, options, step=lambda s: progress.update(task, description=s))
    table = Table("layer", "rows", title="demo city loaded")
    for layer, count in counts.items():
        table.add_row(layer, f"{count:,}")
    console.print(table)
    users = Table("username", "password", "role", "scope", title="demo users — change these passwords")
    for user in demo_users(adcode):
        users.add_row(user.username, user.password, user.role, user.region_code or user.department_code or "")
    console.print(users)


# --- import / export -----------------------------------------------------------------------------
@app.command("import")
def import_(
    layer: Annotated[str, typer.Argument(help=f"one of: {LAYERS}")],
    path: Annotated[Path, typer.Argument(help="GeoJSON, GeoPackage, Shapefile or CSV (lon, lat columns)")],
    crs: Annotated[str | None, typer.Option(help="wgs84, cgcs2000, gcj02, bd09 or EPSG:n")] = None,
    fix: Annotated[bool, typer.Option(help="repair invalid geometries with make_valid")] = False,
    version: Annotated[str | None, typer.Option(help="boundary version (draft) for regions/grids")] = None,
) -> None:
    """Validate a file and load all of it, or nothing."""
    if layer not in CONTRACTS:
        raise _fail(f"unknown layer {layer!r}; layers are: {LAYERS}")
    engine = open_database()
    try:
        with _spinner() as progress, transaction(engine) as session:
            progress.add_task(f"importing {path} into {layer}", total=None)
            report = import_layer(session, layer, path, crs=crs, fix=fix, version=version)
            if layer == "events":
                assign_places(session)
                version_id = current_version_id(session)
                if version_id is not None:
                    assign_departments(session, load_router(session, version_id))
            elif not CONTRACTS[layer].versioned:
                notify_layers_changed(session)
    except ImportRejected as exc:
        for error in exc.errors:
            err.print(f"  {error}", highlight=False, markup=False)
        raise _fail(str(exc)) from exc
    except (ReadError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    for repair in report.repairs:
        console.print(f"  {repair}", highlight=False, markup=False)
    where = f" (boundary version {report.version})" if report.version else ""
    console.print(f"loaded {report.count:,} {layer}{where}")


@app.command("export")
def export(
    layer: Annotated[str, typer.Argument(help=f"one of: {LAYERS}")],
    path: Annotated[Path, typer.Argument(help=".geojson, .gpkg, .shp or .csv (points only)")],
    version: Annotated[str | None, typer.Option(help="boundary version; default: the one in force")] = None,
    crs: Annotated[str, typer.Option(help="wgs84 (default), gcj02 or bd09")] = "wgs84",
) -> None:
    """Write a layer in the import contract's columns."""
    if layer not in CONTRACTS:
        raise _fail(f"unknown layer {layer!r}; layers are: {LAYERS}")
    engine = open_database()
    try:
        with transaction(engine) as session:
            version_id = resolve_version(session, version) if CONTRACTS[layer].versioned else None
            count = write_layer(read_layer(session, layer, version_id), path, crs)
    except (ExportError, VersionError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    console.print(f"wrote {count:,} {layer} to {path}")


# --- bulk routing --------------------------------------------------------------------------------
@app.command()
def route(
    source: Annotated[
        Path, typer.Argument(metavar="IN", help="CSV (lon, lat columns), GeoJSON, GeoPackage or Shapefile")
    ],
    target: Annotated[Path, typer.Argument(metavar="OUT", help=".csv, .gpkg or .geojson")],
    crs: Annotated[str | None, typer.Option(help="CRS of IN when it declares none")] = None,
    rejects: Annotated[Path | None, typer.Option(help="where unusable rows go; default OUT.rejected.csv")] = None,
    chunk: Annotated[int, typer.Option(min=1000, help="rows per chunk")] = 200_000,
) -> None:
    """Add grid, community, town and station codes (and department) to every row of a file of points."""
    from rich.progress import BarColumn, MofNCompleteColumn

    from geoservice.routing.bulk_files import route_file
    from geoservice.routing.registry import NoVersionInForce, RouterRegistry

    try:
        router = RouterRegistry(open_database()).current()
        with Progress(
            TextColumn("routing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
        ) as bar:
            task = bar.add_task("route", total=None)
            summary = route_file(
                router, source, target, crs=crs, rejects=rejects, chunk_rows=chunk,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
    except (ReadError, NoVersionInForce, ValueError) as exc:
        raise _fail(str(exc)) from exc
    message = f"{summary.rows:,} rows: {summary.routed:,} routed, {summary.outside:,} outside every grid"
    if summary.rejected:
        message += f", {summary.rejected:,} rejected (reasons in {summary.rejects_path})"
    console.print(message, highlight=False)


# --- users ---------------------------------------------------------------------------------------
@users_app.command("add")
def users_add(
    username: str,
    role: Annotated[Role, typer.Option(help="what the user may do")],
    region: Annotated[str | None, typer.Option(help="region code a dispatcher or grid worker is scoped to")] = None,
    department: Annotated[str | None, typer.Option(help="department code of a handler")] = None,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)] = "",
) -> None:
    """Create a user (the password is asked for, or given with --password)."""
    try:
        with transaction(open_database()) as session:
            add_user(session, username, password, role, region_code=region, department_code=department)
    except UserError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"added {username} ({role})")


@users_app.command("list")
def users_list() -> None:
    """Every user, role, scope and state."""
    with transaction(open_database()) as session:
        rows = list_users(session)
    table = Table("username", "role", "region", "department", "state")
    for u in rows:
        table.add_row(u["username"], u["role"], u["region_code"] or "", u["department_code"] or "",
                      "disabled" if u["disabled"] else "active")  # fmt: skip
    console.print(table)


@users_app.command("disable")
def users_disable(username: str) -> None:
    """Disable an account; its tokens stop working at once."""
    try:
        with transaction(open_database()) as session:
            set_disabled(session, username)
    except UserError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"disabled {username}")


# --- serve ---------------------------------------------------------------------------------------
@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default GEOSERVICE_HOST or 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="default GEOSERVICE_PORT or 8000")] = None,
    workers: int = 1,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs)."""
    import uvicorn

    settings = ServerSettings()
    open_database().dispose()  # start the cluster and migrate once, before the workers fork
    uvicorn.run(
        "geoservice.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_config=logging_config(OperationsSettings().log_format),
        access_log=False,
    )


def _spinner() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err)
