"""One incoming point: from the caller's CRS to WGS84, refused when it is no place on Earth.

Every API that takes a single point (locate, route explain, event reports and so Open311, force
positions) converts it here, so the CRS is parsed, the point converted and its range checked the
same way everywhere. The messages are the problem details the API answers with, verbatim.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from layers.crs.convert import parse_crs, to_wgs84


class InvalidCoordinates(ValueError):
    """A point that is no place on Earth; ``str()`` is the detail the API answers with."""

    @classmethod
    def out_of_range(cls, x: float, y: float) -> InvalidCoordinates:
        """The point as given is beyond ±180/±90 (said before any conversion)."""
        return cls(f"({x}, {y}) is out of range: lon must be within ±180, lat within ±90")

    @classmethod
    def not_on_earth(cls, x: float, y: float, crs_text: str) -> InvalidCoordinates:
        """The point converted to WGS84 is not finite, or beyond ±180/±90."""
        return cls(f"({x}, {y}) in {crs_text} is not a place on Earth")


def on_earth(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_] | np.bool_:
    """Element-wise: lon within ±180 and lat within ±90 (NaN and infinities are not); one bool for two floats."""
    return (np.abs(lon) <= 180) & (np.abs(lat) <= 90)


def point_to_wgs84(x: float, y: float, crs_text: str, *, check_degrees: bool = False) -> tuple[float, float]:
    """(x, y) in ``crs_text`` as WGS84 (lon, lat).

    Raises ``UnknownCRSError`` for a CRS that cannot be converted from, ``InvalidCoordinates`` when
    the converted point is no place on Earth. ``check_degrees`` also refuses, before converting, a
    point beyond ±180/±90 in a geographic CRS, with the "out of range" message: event reports answer
    that way, while position fixes have always answered "not a place on Earth" for it too.
    """
    crs = parse_crs(crs_text)
    if check_degrees and crs.is_geographic and not on_earth(x, y):
        raise InvalidCoordinates.out_of_range(x, y)
    lons, lats = to_wgs84([x], [y], crs)
    lon, lat = float(lons[0]), float(lats[0])
    if not on_earth(lon, lat):
        raise InvalidCoordinates.not_on_earth(x, y, crs_text)
    return lon, lat
