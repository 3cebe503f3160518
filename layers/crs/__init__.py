"""Coordinate reference systems, in one place: naming them, converting to and from WGS84, the city's metric CRS.

Every other module imports from here (``from layers.crs import parse_crs, to_wgs84``), never from the
submodules, which only split the pieces: ``convert`` (parsing CRS names, WGS84 in and out),
``china`` (the GCJ-02/BD-09 offsets), ``metric`` (the city's metric CRS, projections and areas in
it) and ``point`` (one incoming point to WGS84, and its range check). It sits in ``layers``, the
lowest package, because the import (``etl``) and the live service (``geoservice``) must convert
and measure coordinates the same way.
"""

from layers.crs.china import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from layers.crs.convert import (
    InputCRS,
    UnknownCRSError,
    crs_from_file,
    from_wgs84,
    geometries_from_wgs84,
    geometries_to_wgs84,
    parse_crs,
    to_wgs84,
)
from layers.crs.metric import (
    FIRST_ZONE_CM,
    LAST_ZONE_CM,
    M2_PER_SQUARE_DEGREE_AT_MOST,
    AreaFunction,
    city_metric_epsg,
    dataset_metric_epsg,
    metric_area,
    metric_epsg_for,
    metric_length,
    metric_transformer,
    project,
    remember_metric_epsg,
)
from layers.crs.point import InvalidCoordinates, on_earth, point_to_wgs84

__all__ = [
    "FIRST_ZONE_CM",
    "LAST_ZONE_CM",
    "M2_PER_SQUARE_DEGREE_AT_MOST",
    "AreaFunction",
    "InputCRS",
    "InvalidCoordinates",
    "UnknownCRSError",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "city_metric_epsg",
    "crs_from_file",
    "dataset_metric_epsg",
    "from_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "geometries_from_wgs84",
    "geometries_to_wgs84",
    "metric_area",
    "metric_length",
    "metric_epsg_for",
    "metric_transformer",
    "on_earth",
    "parse_crs",
    "point_to_wgs84",
    "project",
    "remember_metric_epsg",
    "to_wgs84",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]
