"""Coordinate reference systems, in one place: naming them, converting to and from WGS84, the city's metric CRS.

Every other module imports from here (``from layers.crs import parse_crs, to_wgs84``), never from the
submodules, which only split the pieces: ``convert`` (parsing CRS names, WGS84 in and out) and
``china`` (the GCJ-02/BD-09 offsets). It sits in ``layers``, the lowest package, because the import
(``etl``) and the live service (``geoservice``) must convert coordinates the same way.
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
    metric_epsg_for,
    parse_crs,
    to_wgs84,
)

__all__ = [
    "InputCRS",
    "UnknownCRSError",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "crs_from_file",
    "from_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "geometries_from_wgs84",
    "geometries_to_wgs84",
    "metric_epsg_for",
    "parse_crs",
    "to_wgs84",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]
