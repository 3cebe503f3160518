"""The edits a planner can make on a draft, as typed requests shared by the API and the CLI.

One body per operation, told apart by ``op`` (a discriminated union), so the OpenAPI document
shows each operation's fields and a wrong field is a 422 naming it. Geometries are GeoJSON in
``crs`` (default WGS84; ``gcj02``/``bd09`` for coordinates read off a Chinese base map).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from sqlalchemy.orm import Session

from geoservice.boundaries import drafts
from geoservice.boundaries.drafts import EditRejected, EditResult
from geoservice.boundaries.geometry import OutlineLimits, geometry_from_geojson
from geoservice.boundaries.settings import BoundarySettings
from geoservice.inputs import Name
from layers.crs import city_metric_epsg

GeoJSONGeometry = Annotated[dict[str, Any], Field(description="a GeoJSON geometry object")]
GridCode = Annotated[Name, Field(min_length=1, max_length=40, examples=["320682100200001"])]
GridName = Annotated[Name, Field(min_length=1, max_length=200)]
Person = Annotated[Name, Field(max_length=100)]


class _Edit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    crs: Name = Field("wgs84", max_length=30, description="CRS of the geometry: wgs84, cgcs2000, gcj02, bd09 or EPSG:n")


class ReplaceGeometry(_Edit):
    """Give a grid a new outline."""

    op: Literal["replace_geometry"]
    grid: GridCode
    geometry: GeoJSONGeometry


class Split(_Edit):
    """Cut a grid along a line; the largest piece keeps the code, others get the next free serials."""

    op: Literal["split"]
    grid: GridCode
    line: GeoJSONGeometry
    names: list[GridName] = Field(
        default_factory=list, max_length=100, description="names of the new grids, in code order"
    )


class Merge(_Edit):
    """Join neighbouring grids of one community into the one with the smallest code."""

    op: Literal["merge"]
    grids: list[GridCode] = Field(min_length=2, max_length=1000)
    name: GridName | None = None


class MoveBoundary(_Edit):
    """Give the part of ``area`` inside grid ``from_grid`` to its neighbour ``to_grid``."""

    op: Literal["move_boundary"]
    from_grid: GridCode
    to_grid: GridCode
    area: GeoJSONGeometry


class Update(_Edit):
    """Rename, recode, or change the team of a grid (fields left out stay as they are)."""

    op: Literal["update"]
    grid: GridCode
    code: GridCode | None = None
    name: GridName | None = None
    workers: list[Person] | None = Field(None, max_length=100)
    officer: Person | None = None


class Add(_Edit):
    """A new grid in a community of the draft."""

    op: Literal["add"]
    community_code: str = Field(pattern=r"^\d{12}$")
    name: GridName
    geometry: GeoJSONGeometry
    code: GridCode | None = None
    workers: list[Person] = Field(default_factory=list, max_length=100)
    officer: Person | None = None


class Remove(_Edit):
    """Delete a grid from the draft."""

    op: Literal["remove"]
    grid: GridCode


class Repair(_Edit):
    """Give each digitising sliver (gap or overlap) to the grid with the longest shared edge."""

    op: Literal["repair"]
    community_code: str | None = Field(None, pattern=r"^\d{12}$", description="one community; default all")
    max_m2: float | None = Field(
        None, gt=0, description="largest gap or overlap to move; default GEOSERVICE_SLIVER_FIX_MAX_M2 (100 m²)"
    )


Edit = Annotated[
    ReplaceGeometry | Split | Merge | MoveBoundary | Update | Add | Remove | Repair, Field(discriminator="op")
]
EDIT = TypeAdapter(Edit)


def apply_edit(
    session: Session, version_id: int, edit: Edit, *, boundaries: BoundarySettings, metric_crs: str | None
) -> EditResult:
    """Apply one edit to draft ``version_id`` in the session's transaction (settings from the caller's edge).

    Outlines are held to the boundary settings' limits and slivers repaired under them, measured in the
    city's metric CRS (``metric_crs`` when configured, else the one fixed at the first load), as the
    validation measures them.
    """
    try:
        epsg = city_metric_epsg(session, metric_crs)
    except ValueError as exc:  # nothing loaded yet, so no metric CRS to measure in
        raise EditRejected(str(exc)) from exc
    limits = OutlineLimits.of(boundaries, epsg)
    match edit:
        case Repair():
            return drafts.repair_draft_slivers(
                session, version_id, community_code=edit.community_code,
                max_m2=edit.max_m2 or boundaries.sliver_fix_max_m2, tolerance_m2=boundaries.sliver_tolerance_m2,
                epsg=epsg,
            )  # fmt: skip
        case ReplaceGeometry():
            geom = _geometry(edit.geometry, edit.crs)
            return drafts.replace_geometry(session, version_id, edit.grid, geom, limits)
        case Split():
            line = _geometry(edit.line, edit.crs)
            return drafts.split_grid(session, version_id, edit.grid, line, edit.names)
        case Merge():
            return drafts.merge_grids(session, version_id, edit.grids, edit.name)
        case MoveBoundary():
            area = _geometry(edit.area, edit.crs)
            return drafts.move_boundary(session, version_id, edit.from_grid, edit.to_grid, area, limits)
        case Update():
            return drafts.update_grid(
                session, version_id, edit.grid, new_code=edit.code, name=edit.name,
                workers=edit.workers, officer=edit.officer,
            )  # fmt: skip
        case Add():
            return drafts.add_grid(
                session, version_id, community_code=edit.community_code, geom=_geometry(edit.geometry, edit.crs),
                limits=limits, name=edit.name, code=edit.code, workers=edit.workers, officer=edit.officer,
            )  # fmt: skip
        case Remove():
            return drafts.remove_grid(session, version_id, edit.grid)
    raise EditRejected(f"unknown edit {edit!r}")  # pragma: no cover - the union is closed


def _geometry(geojson: dict[str, Any], crs: str) -> Any:
    try:
        return geometry_from_geojson(geojson, crs)
    except ValueError as exc:  # UnknownCRSError is a ValueError too
        raise EditRejected(str(exc)) from exc
