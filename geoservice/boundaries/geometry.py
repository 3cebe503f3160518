"""Pure geometry for boundary work: GeoJSON in and out, vertex conforming.

Geometries are kept in lon/lat as stored; areas are measured in the city's metric CRS by
``layers.crs.metric_area``, as the import's validation measures them, so both agree on what a sliver is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from layers.crs import geometries_to_wgs84, parse_crs

CONFORM_TOLERANCE_DEG = 1e-9  # about 0.1 mm: only vertices that already lie on an edge are inserted


def geometry_from_geojson(geometry: Mapping[str, Any], crs: str = "wgs84") -> BaseGeometry:
    """A GeoJSON geometry in ``crs`` as WGS84 (ValueError when it cannot be read)."""
    try:
        geom = shapely.geometry.shape(dict(geometry))
    except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.GEOSException) as exc:
        raise ValueError(f"not a GeoJSON geometry: {exc}") from exc
    return geometries_to_wgs84([geom], parse_crs(crs))[0]


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
