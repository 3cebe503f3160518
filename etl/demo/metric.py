"""The city's metric CRS and the only two projections the builder makes (in and out of it)."""

from __future__ import annotations

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

# CGCS2000 / 3-degree Gauss-Kruger CM 75E … CM 135E are EPSG:4534 … EPSG:4554, one per 3°.
FIRST_CM, LAST_CM, FIRST_EPSG = 75, 135, 4534


def gauss_kruger_epsg(lon: float) -> int:
    """EPSG code of the CGCS2000 3° zone (no false-easting prefix) whose central meridian is nearest.

    Chinese surveying data for a county is kept in the 3° zone it falls in; distortion there is
    below 1:10,000, so buffers and areas in it are as good as ground measurements.
    """
    cm = int(np.clip(3 * round(lon / 3), FIRST_CM, LAST_CM))
    return FIRST_EPSG + (cm - FIRST_CM) // 3


def to_metric(geom: BaseGeometry, epsg: int) -> BaseGeometry:
    """Project a WGS84 geometry into ``epsg``."""
    return _transform(geom, Transformer.from_crs(4326, epsg, always_xy=True))


def _transform(geom: BaseGeometry, transformer: Transformer) -> BaseGeometry:
    def project(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geom, project)


def city_polygon(boundary_wgs84: BaseGeometry, epsg: int, grid_size: float) -> BaseGeometry:
    """The boundary in metric coordinates, valid and snapped to ``grid_size``.

    Snapping first means every later overlay with the same grid size sees identical coordinates, so
    the outer edges of the tessellation coincide with this polygon exactly.
    """
    metric = shapely.make_valid(to_metric(boundary_wgs84, epsg))
    polygons = [p for p in shapely.get_parts(metric) if isinstance(p, shapely.Polygon | shapely.MultiPolygon)]
    if not polygons:
        raise ValueError("the boundary has no polygonal area")
    merged = shapely.union_all(polygons, grid_size=grid_size)
    if merged.is_empty or merged.area <= 0:
        raise ValueError("the boundary has no polygonal area")
    return merged
