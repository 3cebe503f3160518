"""``geoservice coverage …``: coverage-gap reports and siting suggestions from the command line.

``report`` writes the report for a region as HTML (printable, self-contained), GeoJSON (the gaps),
CSV (the figures), a CSV of the key places outside each rule and JSON, all or nothing: every file is
rendered in memory first and moved into place only when all of them are ready.
"""

from __future__ import annotations

import enum
import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from etl.readers import ReadError, read_features
from geoservice.boundaries.units import UnknownRegion
from geoservice.boundaries.versions import NoVersionInForce
from geoservice.cli.output import console, fail, spinner
from geoservice.coverage.html import render_html
from geoservice.coverage.output import (
    places_csv,
    report_csv,
    report_geojson,
    report_json,
    suggestion_geojson,
    suggestion_json,
)
from geoservice.coverage.service import NoDemandLayer, coverage_report, suggest_sites
from geoservice.coverage.siting import TIME_LIMIT_S
from geoservice.infra.database import open_database, transaction
from geoservice.settings import RoutingSettings
from layers.models import PostLevel

coverage_app = typer.Typer(help="Coverage of the police-post rings: gap reports and where new posts would help.")


class Demand(enum.StrEnum):
    """What new posts should reach."""

    population = "population"
    places = "places"
    events = "events"



def _zoned(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        raise fail("--as-of needs a time zone, e.g. 2026-11-01T00:00:00+08:00")
    return moment


@coverage_app.command("report")
def report(
    out: Annotated[Path, typer.Option(help="directory to write the report files into (created if missing)")],
    region: Annotated[str | None, typer.Option(help="region or grid code; default: the city")] = None,
    level: Annotated[PostLevel | None, typer.Option(help="one post level; default: all three")] = None,
    as_of: Annotated[datetime | None, typer.Option(help="end of the 12 months of events (with a zone)")] = None,
) -> None:
    """Write the coverage-gap report of a region: HTML, GeoJSON, CSV (figures and places) and JSON."""
    as_of = _zoned(as_of)
    routing = RoutingSettings()
    try:
        with spinner() as progress, transaction(open_database()) as session:
            progress.add_task("computing coverage", total=None)
            result = coverage_report(
                session, region, levels=[level.value] if level else None, as_of=as_of,
                radii_m=routing.rings_m, metric_crs=routing.metric_crs,
            )  # fmt: skip
    except (UnknownRegion, NoVersionInForce) as exc:
        raise fail(str(exc)) from exc
    stem = f"coverage-{result.region.code}"
    files = {
        f"{stem}.html": render_html(result),
        f"{stem}.geojson": json.dumps(report_geojson(result), ensure_ascii=False),
        f"{stem}.csv": report_csv(result),
        f"{stem}-places.csv": places_csv(result),
        f"{stem}.json": json.dumps(report_json(result), ensure_ascii=False, indent=1),
    }
    write_all(out, files)
    table = Table("level", "area within", "people within", "key places outside", "events outside")
    for lv, f in result.region.levels.items():
        people = "—" if f.population_share is None else f"{f.population_share:.1%}"
        table.add_row(lv, f"{f.area_share:.1%}", people, f"{f.places_outside:,}", f"{f.events_outside:,}")
    console.print(table)
    console.print(f"wrote {', '.join(files)} to {out}", highlight=False)


@coverage_app.command("suggest")
def suggest(
    k: Annotated[int, typer.Option(min=1, max=50, help="how many new posts")],
    region: Annotated[str | None, typer.Option(help="region or grid code; default: the city")] = None,
    level: Annotated[PostLevel, typer.Option(help="level of the new posts")] = PostLevel.central_room,
    demand: Annotated[Demand, typer.Option(help="what the new posts should reach")] = Demand.population,
    candidates: Annotated[
        Path | None, typer.Option(help="candidate sites (any layer file); default: community/grid centres, key places")
    ] = None,
    crs: Annotated[str | None, typer.Option(help="CRS of --candidates when it declares none")] = None,
    full: Annotated[bool, typer.Option(help="also say how many posts would reach all of it (LSCP)")] = False,
    time_limit: Annotated[float, typer.Option(min=1, max=600, help="CBC time limit per model, seconds")] = TIME_LIMIT_S,
    out: Annotated[Path | None, typer.Option(help="write the sites as GeoJSON (and the full answer as .json)")] = None,
    as_of: Annotated[datetime | None, typer.Option(help="end of the 12 months of events (demand=events)")] = None,
) -> None:
    """Where k new posts of a level would reach the most uncovered demand (spopt MCLP, straight lines)."""
    as_of = _zoned(as_of)
    routing = RoutingSettings()
    try:
        sites = read_features(candidates, crs).frame if candidates else None
        with spinner() as progress, transaction(open_database()) as session:
            progress.add_task(f"choosing {k} site(s)", total=None)
            result = suggest_sites(
                session, region, level.value, k, demand=demand.value, full=full, time_limit_s=time_limit,
                candidates=sites, as_of=as_of, radii_m=routing.rings_m, metric_crs=routing.metric_crs,
            )  # fmt: skip
    except (UnknownRegion, NoVersionInForce, NoDemandLayer, ReadError) as exc:
        raise fail(str(exc)) from exc
    table = Table("#", "site", "from", "lon", "lat", "gain", "alone", title=f"{k} new {level.value}(s)")
    for n, s in enumerate(result.sites, 1):
        table.add_row(str(n), s.name, s.source, f"{s.lon:.6f}", f"{s.lat:.6f}", f"{s.gain:,.0f}", f"{s.alone:,.0f}")
    console.print(table)
    share = (
        f" ({result.covered_before / result.total:.1%} → {result.covered_after / result.total:.1%})"
        if result.total
        else ""
    )
    console.print(
        f"{result.demand} reached: {result.covered_before:,.0f} → {result.covered_after:,.0f} of {result.total:,.0f}"
        f"{share}; MCLP {result.run.status} ({result.run.solution}) in {result.run.runtime_s:.1f} s; "
        f"total {result.runtime_s:.1f} s",
        highlight=False,
    )
    if result.full is not None:
        needed = len(result.full.chosen)
        console.print(
            f"LSCP {result.full.status} ({result.full.solution}): {needed} posts reach all the demand the candidate "
            f"sites reach; {result.full_problem.unreachable:,.0f} is beyond every candidate",
            highlight=False,
        )
    if out is not None:
        write_all(
            out.parent,
            {out.name: json.dumps(suggestion_geojson(result), ensure_ascii=False),
             out.with_suffix(".json").name: json.dumps(suggestion_json(result), ensure_ascii=False, indent=1)},
        )  # fmt: skip
        console.print(f"wrote {out} and {out.with_suffix('.json')}", highlight=False)


def write_all(directory: Path, files: dict[str, str]) -> None:
    """Write every file or none: each goes to a temporary name first, then all are renamed into place."""
    directory.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[str, Path]] = []
    try:
        for name, content in files.items():
            handle, temp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".part")
            staged.append((temp, directory / name))
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(content)
            os.chmod(temp, 0o644)  # mkstemp's 0600 would hide the report from the people it is for
        for temp, final in staged:
            os.replace(temp, final)
    finally:
        for temp, _ in staged:
            Path(temp).unlink(missing_ok=True)

