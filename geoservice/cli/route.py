"""``geoservice route``: grid, community, town, station and department for a file of points."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from etl.formats import ReadError
from geoservice.cli.output import console, err, fail, spinner
from geoservice.infra.database import open_database, transaction
from geoservice.settings import RoutingSettings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from geoservice.routing.router import Router


class RoutingEngine(enum.StrEnum):
    """Where the points are routed: this process (chunked files) or a Dask cluster (partitioned Parquet)."""

    local = "local"
    dask = "dask"


def route(
    source: Annotated[
        Path,
        typer.Argument(metavar="IN", help="CSV (lon, lat), Parquet (GeoParquet, or lon/lat columns), GeoJSON, "
                       "GeoPackage, Shapefile; with --engine dask: a Parquet file or a directory of them"),
    ],  # fmt: skip
    target: Annotated[
        Path, typer.Argument(metavar="OUT", help=".csv, .parquet (GeoParquet), .gpkg or .geojson; "
                             "with --engine dask: a directory")
    ],
    crs: Annotated[str | None, typer.Option(help="CRS of IN when it declares none")] = None,
    rejects: Annotated[Path | None, typer.Option(help="where unusable rows go; default OUT.rejected.csv")] = None,
    chunk: Annotated[int, typer.Option(min=1000, help="rows per chunk")] = 200_000,
    engine: Annotated[RoutingEngine, typer.Option(help="local: this process; dask: a Dask cluster")] = (
        RoutingEngine.local
    ),
    scheduler: Annotated[str | None, typer.Option(help="dask: the scheduler's address; default a LocalCluster")] = None,
    workers: Annotated[int, typer.Option(min=1, max=256, help="dask: LocalCluster worker processes")] = 2,
    load: Annotated[str | None, typer.Option(help="dask: also COPY the result into this new PostGIS table")] = None,
) -> None:
    """Add grid, community, town and station codes (and department) to every row of a file of points."""
    from geoservice.boundaries.versions import NoVersionInForce
    from geoservice.routing.registry import RouterRegistry

    if engine == RoutingEngine.local and (scheduler or load):
        raise fail("--scheduler and --load go with --engine dask")
    try:
        # No warm-up of new connections: it prepares PostGIS transforms for tiles, which routing never asks for.
        database = open_database(warm=False)
        registry = RouterRegistry(database, RoutingSettings(), long_lived=False)
        if engine == RoutingEngine.dask:
            _route_on_dask(registry.current(), source, target, crs, scheduler, workers, load, database)
            return
        from geoservice.routing.bulk_files import route_file, skip_pyarrow_pandas_probe

        skip_pyarrow_pandas_probe()
        with Progress(
            TextColumn("routing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
        ) as bar:
            task = bar.add_task("route", total=None)
            summary = route_file(  # the router is made while the input's first chunks are read
                registry.current, source, target, crs=crs, rejects=rejects, chunk_rows=chunk,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
    except (ReadError, NoVersionInForce, ValueError) as exc:
        raise fail(str(exc)) from exc
    message = f"{summary.rows:,} rows: {summary.routed:,} routed, {summary.outside:,} outside every grid"
    if summary.rejected:
        message += f", {summary.rejected:,} rejected (reasons in {summary.rejects_path})"
    console.print(message, highlight=False)


def _route_on_dask(
    router: Router, source: Path, target: Path, crs: str | None, scheduler: str | None, workers: int,
    load: str | None, database: Engine,
) -> None:  # fmt: skip
    from geoservice.routing.distributed import dask_client, load_routed, route_parquet

    try:
        with spinner() as progress, dask_client(scheduler, workers) as client:
            progress.add_task(f"routing {source} on {scheduler or f'{workers} local workers'}", total=None)
            summary = route_parquet(client, router, source, target, crs=crs)
    except OSError as exc:  # the scheduler cannot be reached
        raise fail(f"dask scheduler {scheduler}: {exc}") from exc
    message = (
        f"{summary.rows:,} rows in {summary.partitions} partitions on {summary.workers} workers: "
        f"{summary.routed:,} routed, {summary.outside:,} outside every grid"
    )
    if summary.rejected:
        message += f", {summary.rejected:,} rejected (the reason is in their 'reason' column)"
    console.print(message, highlight=False)
    if load:
        with transaction(database) as session:
            rows = load_routed(session, target, load)
        console.print(f"loaded {rows:,} rows into table {load}", highlight=False)
