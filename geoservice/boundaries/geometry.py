"""Pure geometry for boundary work: GeoJSON in and out, vertex conforming.

Geometries are kept in lon/lat as stored; areas are measured in the city's metric CRS by
``layers.crs.metric_area``, as the import's validation measures them, so both agree on what a sliver is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geoservice.boundaries.settings import BoundarySettings
from layers.crs import geometries_to_wgs84, metric_area, parse_crs, project

CONFORM_TOLERANCE_DEG = 1e-9  # about 0.1 mm: only vertices that already lie on an edge are inserted


def geometry_from_geojson(geometry: Mapping[str, Any], crs: str = "wgs84") -> BaseGeometry:
    """A GeoJSON geometry in ``crs`` as WGS84 (ValueError when it cannot be read).

    A polygon's rings must be closed, as RFC 7946 says: shapely would close an open ring silently,
    and an outline the planner did not draw is not one to store. Positions are 2-D and finite
    (grids are stored in 2-D; a height would be refused by PostGIS instead, as a 500).
    """
    _require_closed_rings(geometry)
    try:
        geom = shapely.geometry.shape(dict(geometry))
    except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.GEOSException) as exc:
        raise ValueError(f"not a GeoJSON geometry: {exc}") from exc
    if shapely.has_z(geom):
        raise ValueError("positions are [lon, lat] (or [x, y]); 3-D coordinates are not taken")
    wgs84 = geometries_to_wgs84([geom], parse_crs(crs))[0]
    if not np.isfinite(shapely.get_coordinates(wgs84)).all():
        raise ValueError(f"the coordinates are not finite numbers in {crs}, or cannot be converted from it")
    return wgs84


def _require_closed_rings(geometry: Mapping[str, Any]) -> None:
    kind, coordinates = geometry.get("type"), geometry.get("coordinates")
    polygons = [coordinates] if kind == "Polygon" else coordinates if kind == "MultiPolygon" else []
    for polygon in polygons if isinstance(polygons, list) else []:
        for ring in polygon if isinstance(polygon, list) else []:
            if isinstance(ring, list) and ring and ring[0] != ring[-1]:
                raise ValueError("a polygon's rings must be closed: the last position repeats the first (RFC 7946)")


@dataclass(frozen=True)
class OutlineLimits:
    """What an edited outline may be: the city's metric CRS to measure in, and the settings' limits."""

    metric_epsg: int
    max_vertices: int
    max_extent_m: float
    min_area_m2: float

    @classmethod
    def of(cls, settings: BoundarySettings, metric_epsg: int) -> OutlineLimits:
        """The limits for a city measured in ``metric_epsg``; an outline under a sliver is no area."""
        return cls(metric_epsg, settings.max_grid_vertices, settings.max_grid_extent_m,
                   max(settings.sliver_tolerance_m2, 1e-6))  # fmt: skip


def outline_problem(geom: BaseGeometry, limits: OutlineLimits) -> str | None:
    """Why ``geom`` (WGS84) cannot be a grid's outline, in words for the planner; None when it can.

    The one decision on an edited polygon. Everything an edit stores must be validatable and
    publishable later, so anything the validation, the router or PostGIS could not take is refused
    here: not a (multi)polygon, 3-D, non-finite or off-Earth coordinates, more vertices than the
    limit, invalid by OGC rules (bowties, holes outside shells — shapely says where), no area in
    metres, or wider than a city.
    """
    if not isinstance(geom, shapely.Polygon | shapely.MultiPolygon) or geom.is_empty:
        return f"must be a Polygon or MultiPolygon, not {'an empty ' if geom.is_empty else 'a '}{geom.geom_type}"
    if shapely.has_z(geom):
        return "has 3-D coordinates; give lon/lat pairs only"
    coords = shapely.get_coordinates(geom)
    if not np.isfinite(coords).all():
        return "has coordinates that are not finite numbers"
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx and maxx <= 180 and -90 <= miny and maxy <= 90):
        return "has coordinates out of range; give lon/lat (or name its crs)"
    if len(coords) > limits.max_vertices:
        return f"has {len(coords):,} vertices; at most {limits.max_vertices:,} (GEOSERVICE_MAX_GRID_VERTICES)"
    if not geom.is_valid:
        return f"is not a valid polygon: {shapely.is_valid_reason(geom)}"
    metric = project(geom, limits.metric_epsg)
    width, height = metric.bounds[2] - metric.bounds[0], metric.bounds[3] - metric.bounds[1]
    if not (math.isfinite(width) and math.isfinite(height)) or max(width, height) > limits.max_extent_m:
        return (f"is wider than a city: at most {limits.max_extent_m:,.0f} m across (GEOSERVICE_MAX_GRID_EXTENT_M)")
    area = metric_area(limits.metric_epsg)(geom)
    if not area >= limits.min_area_m2:
        return f"has an area of {area:.3g} m², less than {limits.min_area_m2:g} m²: it encloses nothing"
    return None


def union_of(geoms: list[BaseGeometry]) -> BaseGeometry:
    """The union of grids: the fast coverage union when they are vertex-matched, else a plain union.

    GEOS's coverage union raises on a coverage that is not correctly noded (an overlap smaller than
    the sliver tolerance, an edge that touches a neighbour's without sharing its vertices), which a
    draft may well hold; the answer must not depend on that.
    """
    try:
        merged = shapely.coverage_union_all(geoms)
    except shapely.errors.GEOSException:
        return shapely.union_all(geoms)
    return merged if merged.is_valid else shapely.union_all(geoms)


def geojson_of(geom: BaseGeometry | None) -> dict[str, Any] | None:
    """RFC 7946 geometry with the coordinates as stored, so a downloaded grid uploads back unchanged."""
    if geom is None or geom.is_empty:
        return None
    return shapely.geometry.mapping(geom)


def as_multipolygon(geom: BaseGeometry) -> shapely.MultiPolygon:
    """The polygonal parts of ``geom`` as one MultiPolygon (what the grids table stores)."""
    parts = [p for p in shapely.get_parts(geom) if isinstance(p, shapely.Polygon) and not p.is_empty]
    return shapely.MultiPolygon(parts)


def polygonal(geom: BaseGeometry) -> bool:
    """Whether ``geom`` is a non-empty Polygon or MultiPolygon."""
    return isinstance(geom, shapely.Polygon | shapely.MultiPolygon) and not geom.is_empty


def conform(neighbour: BaseGeometry, changed: BaseGeometry) -> BaseGeometry:
    """``neighbour`` with the vertices of ``changed`` that lie on its edges inserted.

    Splitting a grid or moving a boundary puts new vertices on edges the grid shares with its
    neighbours; without them the neighbours would no longer match vertex for vertex and the
    coverage would be reported as broken although no area moved.
    """
    return shapely.snap(neighbour, changed, CONFORM_TOLERANCE_DEG)


def point_xy(geom: BaseGeometry) -> tuple[float, float]:
    """A point surely inside (or on) ``geom``: the point itself, or a point on the polygon's surface."""
    point = geom if isinstance(geom, shapely.Point) else shapely.point_on_surface(geom)
    return float(point.x), float(point.y)
