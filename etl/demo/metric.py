"""What the demo builder adds to ``layers.crs`` for its metric CRS: a zone for any boundary, and the city polygon."""

from __future__ import annotations

import shapely
from shapely.geometry.base import BaseGeometry

from layers.crs import FIRST_ZONE_CM, LAST_ZONE_CM, metric_epsg_for, project


def demo_metric_epsg(lon: float) -> int:
    """The CGCS2000 3° zone of ``lon`` (``metric_epsg_for``), or the nearest one outside China's zones.

    A demo city may be drawn on any boundary, so a longitude beyond the zones takes the first or
    last zone instead of being refused; its buffers and areas are then distorted, but it builds.
    """
    return metric_epsg_for(min(max(lon, FIRST_ZONE_CM), LAST_ZONE_CM))


def city_polygon(boundary_wgs84: BaseGeometry, epsg: int, grid_size: float) -> BaseGeometry:
    """The boundary in metric coordinates, valid and snapped to ``grid_size``.

    Snapping first means every later overlay with the same grid size sees identical coordinates, so
    the outer edges of the tessellation coincide with this polygon exactly.
    """
    metric = shapely.make_valid(project(boundary_wgs84, epsg))
    polygons = [p for p in shapely.get_parts(metric) if isinstance(p, shapely.Polygon | shapely.MultiPolygon)]
    if not polygons:
        raise ValueError("the boundary has no polygonal area")
    merged = shapely.union_all(polygons, grid_size=grid_size)
    if merged.is_empty or merged.area <= 0:
        raise ValueError("the boundary has no polygonal area")
    return merged
