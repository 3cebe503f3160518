"""``geoservice versions …``: boundary versions from the command line, as the API offers them.

Edits take the same JSON bodies as ``POST /v1/boundary-versions/{id}/edits`` (given inline or as
``@file.json``), so a planner can try an edit in one and repeat it in the other. Versions are
named by name. Errors a user can act on exit with status 1; every command is one transaction.
"""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from etl.load import ImportRejected
from etl.readers import ReadError
from geoservice.boundaries.diff import diff_versions
from geoservice.boundaries.drafts import EditRejected, create_draft, create_draft_from_files, rollback
from geoservice.boundaries.edits import EDIT, apply_edit
from geoservice.boundaries.impact import impact_report
from geoservice.boundaries.publish import Published, Publisher, publish_version
from geoservice.boundaries.settings import BoundarySettings
from geoservice.boundaries.validation import validate_version
from geoservice.boundaries.versions import VersionError, list_versions, resolve_version
from geoservice.cli.output import console, err, fail
from geoservice.infra.database import open_database, transaction
from geoservice.settings import RoutingSettings

versions_app = typer.Typer(help="Boundary versions of regions and grids: drafts, edits, validation, publish.")
AtOption = Annotated[datetime | None, typer.Option(help="effective from (ISO 8601 with zone); default now")]


@contextmanager
def _session() -> Iterator[Session]:
    """One transaction; a refused operation is a message and exit status 1, with nothing written."""
    try:
        with transaction(open_database()) as session:
            yield session
    except ImportRejected as exc:
        for error in exc.errors:
            err.print(f"  {error}", highlight=False, markup=False)
        raise fail(str(exc)) from exc
    except (VersionError, EditRejected, ReadError) as exc:
        raise fail(str(exc)) from exc


def _metric_crs() -> str | None:
    """``GEOSERVICE_METRIC_CRS``, read at the command's edge: validation and diffs measure areas in it."""
    return RoutingSettings().metric_crs


def _settings() -> dict[str, RoutingSettings | BoundarySettings]:
    """What publishing needs, read from the environment once for the command."""
    return {"routing": RoutingSettings(), "boundaries": BoundarySettings()}


def _publisher() -> Publisher:
    return Publisher(actor=f"cli:{getpass.getuser()}", role="admin")


@versions_app.command("list")
def versions_list() -> None:
    """Every boundary version, newest first."""
    with _session() as session:
        rows = list_versions(session)
    table = Table("id", "name", "status", "effective from", "effective to", "regions", "grids")
    for v in rows:
        table.add_row(str(v.id), v.name, v.status, _when(v.effective_from), _when(v.effective_to),
                      str(v.regions), str(v.grids))  # fmt: skip
    console.print(table)


@versions_app.command("create")
def versions_create(
    name: str,
    based_on: Annotated[str | None, typer.Option("--from", help="copy this version; default the one in force")] = None,
    grids: Annotated[Path | None, typer.Option(help="start from this grids file instead of a copy")] = None,
    regions: Annotated[Path | None, typer.Option(help="regions file (with --grids); default those in force")] = None,
    crs: Annotated[str | None, typer.Option(help="CRS of files that declare none")] = None,
    note: str = "",
) -> None:
    """Create a draft: a copy of a version, or grids (and regions) from files."""
    with _session() as session:
        if grids is not None:
            create_draft_from_files(session, name, grids, regions=regions, crs=crs, note=note)
        else:
            source = resolve_version(session, based_on) if based_on else None
            create_draft(session, name, based_on=source, note=note)
        counts = next(v for v in list_versions(session) if v.name == name.strip())
    console.print(f"created draft {counts.name} (id {counts.id}): {counts.grids} grids, {counts.regions} regions")


@versions_app.command("edit")
def versions_edit(
    name: str,
    edit: Annotated[str, typer.Argument(help='the edit as JSON, e.g. {"op": "remove", "grid": "…"}, or @file.json')],
) -> None:
    """Apply one edit to a draft (ops: replace_geometry, split, merge, move_boundary, update, add, remove, repair)."""
    raw = Path(edit[1:]).read_text() if edit.startswith("@") else edit
    try:
        parsed = EDIT.validate_python(json.loads(raw))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise fail(f"not a valid edit: {exc}") from exc
    with _session() as session:
        result = apply_edit(session, resolve_version(session, name), parsed, boundaries=BoundarySettings(),
                            metric_crs=_metric_crs())  # fmt: skip
    parts = [f"{what} {', '.join(codes)}" for what, codes in vars(result).items() if codes and what != "repairs"]
    console.print(f"edited {name}: " + ("; ".join(parts) or "nothing to change"), highlight=False)
    for repair in result.repairs:
        console.print(f"  {repair}", highlight=False, markup=False)


@versions_app.command("validate")
def versions_validate(name: str) -> None:
    """Check a version; every error is printed with where it is, and the exit status is 1 if any."""
    with _session() as session:
        report = validate_version(session, resolve_version(session, name), BoundarySettings(), metric_crs=_metric_crs())
    for finding in report.findings:
        where = finding.location.representative_point() if finding.location is not None else None
        near = f" (near lon {where.x:.6f}, lat {where.y:.6f})" if where is not None else ""
        console.print(f"  {finding.kind}: {finding.message}{near}", highlight=False, markup=False)
    if not report.ok:
        raise fail(f"{name}: {len(report.findings)} validation error(s)")
    console.print(f"{name}: valid ({report.grids} grids)")


@versions_app.command("impact")
def versions_impact(
    name: str,
    format: Annotated[str, typer.Option(help="json, geojson or csv")] = "json",
    out: Annotated[Path | None, typer.Option(help="write here instead of printing")] = None,
) -> None:
    """What publishing a draft would change against the version in force."""
    if format not in ("json", "geojson", "csv"):
        raise fail(f"unknown format {format!r}; use json, geojson or csv")
    with _session() as session:
        report = impact_report(session, resolve_version(session, name), settings=RoutingSettings())
    body = (
        report.as_csv()
        if format == "csv"
        else json.dumps(report.as_geojson() if format == "geojson" else report.as_json(), ensure_ascii=False, indent=1)
    )
    if out is None:
        print(body)
    else:
        out.write_text(body)
        console.print(f"wrote the impact of {name} to {out}")


@versions_app.command("publish")
def versions_publish(name: str, at: AtOption = None) -> None:
    """Validate a draft and put it in force (atomically; the previous version is retired at that instant)."""
    with _session() as session:
        published = publish_version(session, resolve_version(session, name), at, publisher=_publisher(), **_settings())
    _report(published)
    prepare_router(session.get_bind(), published.version.name)


@versions_app.command("rollback")
def versions_rollback(
    name: str,
    as_name: Annotated[str | None, typer.Option("--as", help="name of the new version")] = None,
    at: AtOption = None,
) -> None:
    """Publish a copy of an old version as a new version (history is never rewritten)."""
    with _session() as session:
        version_id = resolve_version(session, name)
        published = rollback(session, version_id, as_name, at, publisher=_publisher(), **_settings())
    _report(published)
    prepare_router(session.get_bind(), published.version.name)


@versions_app.command("diff")
def versions_diff(a: str, b: str) -> None:
    """Grids and regions that differ from version A to version B."""
    with _session() as session:
        a_id, b_id = resolve_version(session, a), resolve_version(session, b)
        diff = diff_versions(session, a_id, b_id, metric_crs=_metric_crs())
    for c in (*diff.grids, *diff.regions):
        row = c.as_json()
        what = f" ({', '.join(c.fields)})" if c.change == "changed" else ""
        area = ""
        if "geometry" in c.fields:
            area = f"; area {_num(row['area_before_m2'])} → {_num(row['area_after_m2'])} m²"
            if row["area_change_pct"] is not None:
                area += f" ({row['area_change_pct']:+.1f} %)"
        console.print(f"{c.layer} {c.code} {c.change}{what}{area}", highlight=False, markup=False)
    if not diff.grids and not diff.regions:
        console.print(f"{a} and {b} have the same grids and regions")


def prepare_router(engine: Engine, name: str) -> None:
    """Build the published version's router indexes into the cache, for the commands and workers to come.

    Best effort: the version is published either way, and whoever needs the indexes builds them
    when they are missing, so a failure here is a warning, not an error.
    """
    from geoservice.routing.loader import fill_index_cache  # numpy and shapely: only once published

    started = time.perf_counter()
    try:
        with transaction(engine) as session:
            version_id = resolve_version(session, name)
        state = fill_index_cache(engine, version_id, RoutingSettings())
    except (OSError, SQLAlchemyError, ValueError) as exc:
        err.print(f"the router index of {name} was not built now ({exc}); the next command or worker builds it",
                  highlight=False, markup=False)  # fmt: skip
        return
    if state == "built":
        console.print(f"router index of {name} built for the commands and workers to come "
                      f"({time.perf_counter() - started:.1f} s)", highlight=False)  # fmt: skip


def _report(published: Published) -> None:
    info = published.version
    console.print(f"published {info.name}: {info.grids} grids in force from {_when(info.effective_from)}")
    if published.rerouted or published.kept:
        console.print(
            f"{len(published.rerouted)} open event(s) re-routed; {len(published.kept)} already dispatched kept their "
            "assignment",
            highlight=False,
        )


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "—"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"
