"""``geoservice route``: grid, community, town, station and department for a file of points."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from etl.readers import ReadError
from geoservice.cli.output import console, err, fail
from geoservice.infra.database import open_database
from geoservice.settings import RoutingSettings


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
    from geoservice.boundaries.versions import NoVersionInForce
    from geoservice.routing.bulk_files import route_file
    from geoservice.routing.registry import RouterRegistry

    try:
        router = RouterRegistry(open_database(), RoutingSettings()).current()
        with Progress(
            TextColumn("routing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
        ) as bar:
            task = bar.add_task("route", total=None)
            summary = route_file(
                router, source, target, crs=crs, rejects=rejects, chunk_rows=chunk,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
    except (ReadError, NoVersionInForce, ValueError) as exc:
        raise fail(str(exc)) from exc
    message = f"{summary.rows:,} rows: {summary.routed:,} routed, {summary.outside:,} outside every grid"
    if summary.rejected:
        message += f", {summary.rejected:,} rejected (reasons in {summary.rejects_path})"
    console.print(message, highlight=False)
