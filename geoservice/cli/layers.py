"""``geoservice import`` and ``geoservice export``: one layer per file, all or nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from etl.contracts import CONTRACTS
from etl.load import ImportRejected, import_layer
from etl.readers import ReadError
from etl.writers import ExportError, read_layer, write_layer
from geoservice.boundaries.versions import VersionError, notify_layers_changed, resolve_version
from geoservice.cli.output import console, fail, print_rejected, spinner
from geoservice.infra.database import open_database, transaction
from geoservice.routing.bulk_events import route_imported_events
from geoservice.settings import RoutingSettings

LAYERS = ", ".join(CONTRACTS)


def import_(
    layer: Annotated[str, typer.Argument(help=f"one of: {LAYERS}")],
    path: Annotated[Path, typer.Argument(help="GeoJSON, GeoPackage, Shapefile or CSV (lon, lat columns)")],
    crs: Annotated[str | None, typer.Option(help="wgs84, cgcs2000, gcj02, bd09 or EPSG:n")] = None,
    fix: Annotated[bool, typer.Option(help="repair invalid geometries with make_valid")] = False,
    version: Annotated[str | None, typer.Option(help="boundary version (draft) for regions/grids")] = None,
) -> None:
    """Validate a file and load all of it, or nothing."""
    if layer not in CONTRACTS:
        raise fail(f"unknown layer {layer!r}; layers are: {LAYERS}")
    engine = open_database()
    try:
        with spinner() as progress, transaction(engine) as session:
            progress.add_task(f"importing {path} into {layer}", total=None)
            report = import_layer(session, layer, path, crs=crs, fix=fix, version=version)
            if layer == "events":
                route_imported_events(session, RoutingSettings())
            elif not CONTRACTS[layer].versioned:
                notify_layers_changed(session)
    except ImportRejected as exc:
        print_rejected(exc)
        raise fail(str(exc)) from exc
    except (ReadError, ValueError) as exc:
        raise fail(str(exc)) from exc
    for repair in report.repairs:
        console.print(f"  {repair}", highlight=False, markup=False)
    where = f" (boundary version {report.version})" if report.version else ""
    console.print(f"loaded {report.count:,} {layer}{where}")
    if CONTRACTS[layer].versioned:
        console.print(f"version {report.version} is a draft: nothing changes until it is published with: "
                      f"geoservice versions publish {report.version}", highlight=False)  # fmt: skip


def export(
    layer: Annotated[str, typer.Argument(help=f"one of: {LAYERS}")],
    path: Annotated[Path, typer.Argument(help=".geojson, .gpkg, .shp or .csv (points only)")],
    version: Annotated[str | None, typer.Option(help="boundary version; default: the one in force")] = None,
    crs: Annotated[str, typer.Option(help="wgs84 (default), gcj02 or bd09")] = "wgs84",
) -> None:
    """Write a layer in the import contract's columns."""
    if layer not in CONTRACTS:
        raise fail(f"unknown layer {layer!r}; layers are: {LAYERS}")
    engine = open_database()
    try:
        with transaction(engine) as session:
            version_id = resolve_version(session, version) if CONTRACTS[layer].versioned else None
            count = write_layer(read_layer(session, layer, version_id), path, crs)
    except (ExportError, VersionError, ValueError) as exc:
        raise fail(str(exc)) from exc
    console.print(f"wrote {count:,} {layer} to {path}")
