"""GCJ-02 (Amap, Tencent) and BD-09 (Baidu) coordinates, to and from WGS84.

GCJ-02 is WGS84 plus a deliberate, smooth, non-linear offset of a few hundred metres that is
only applied inside a rough bounding box of China; BD-09 adds Baidu's own small rotation and
scaling on top of GCJ-02. Only the forward directions are published, so the inverses here
are found numerically (see ``_invert``).

Every function takes array-likes (or scalars) of longitude and latitude in degrees, broadcasts
them against each other and returns two new float64 arrays of the broadcast shape; scalars in
give 0-d arrays out (``float(a)`` unwraps them). NaNs pass through as NaN.
"""

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

Coords = tuple[NDArray[np.float64], NDArray[np.float64]]
_Forward = Callable[[NDArray[np.float64], NDArray[np.float64]], Coords]

# Krasovsky 1940 ellipsoid: the published algorithm uses it, not WGS84's, and results depend on it.
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0

# 1e-9 degrees is about 0.1 mm. The iterated maps contract by a factor of ~0.02 or better per
# step, so convergence takes 2-4 steps; the cap only guards against pathological input.
_TOLERANCE_DEG = 1e-9
_MAX_ITERATIONS = 10


def _as_arrays(lon: ArrayLike, lat: ArrayLike) -> Coords:
    """Return fresh float64 copies so callers' arrays are never modified in place."""
    x, y = np.broadcast_arrays(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    return x.copy(), y.copy()


def _in_china(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Mirror the bounding box every GCJ-02 implementation uses, so offsets match theirs exactly."""
    return (lon >= 72.004) & (lon <= 137.8347) & (lat >= 0.8293) & (lat <= 55.8271)


def _gcj_offset_raw(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> Coords:
    """Apply the GCJ-02 offset everywhere, without the China test, so iteration sees a smooth map."""
    x = lon - 105.0
    y = lat - 35.0
    xp = x * np.pi
    yp = y * np.pi
    sqrt_abs_x = np.sqrt(np.abs(x))
    common = (20.0 * np.sin(6.0 * xp) + 20.0 * np.sin(2.0 * xp)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x + common
    dlat += (20.0 * np.sin(yp) + 40.0 * np.sin(yp / 3.0)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(yp / 12.0) + 320.0 * np.sin(yp / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x + common
    dlon += (20.0 * np.sin(xp) + 40.0 * np.sin(xp / 3.0)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(xp / 12.0) + 300.0 * np.sin(xp / 30.0)) * 2.0 / 3.0
    rad_lat = np.radians(lat)
    magic = 1.0 - _EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    return lon + dlon, lat + dlat


def _gcj_to_bd_raw(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> Coords:
    """Apply the published GCJ-02 -> BD-09 formula; like coordtransform, with no China bounding box."""
    z = np.hypot(lon, lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def _bd_to_gcj_one_step(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> Coords:
    """Give the widely shipped approximate inverse; only good as a starting point (up to ~0.2 m off)."""
    x = lon - 0.0065
    y = lat - 0.006
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta), z * np.sin(theta)


def _invert(
    forward: _Forward, target_lon: NDArray[np.float64], target_lat: NDArray[np.float64], start: Coords
) -> Coords:
    """Solve forward(p) = target by fixed-point iteration p <- p - (forward(p) - target).

    The shipped one-step inverses evaluate the offset at the shifted point instead of the
    true one; because the offset varies with position, that leaves errors of up to ~4.5 m
    (GCJ-02) or ~0.2 m (BD-09). The offset changes slowly (its gradient is at most ~0.02), so
    each repetition shrinks the error by that factor. The whole array is iterated at once
    until every point has settled.
    """
    lon, lat = start
    for _ in range(_MAX_ITERATIONS):
        f_lon, f_lat = forward(lon, lat)
        d_lon = f_lon - target_lon
        d_lat = f_lat - target_lat
        lon = lon - d_lon
        lat = lat - d_lat
        # NaN compares False, so NaN points count as settled instead of forcing every iteration.
        if not (np.any(np.abs(d_lon) > _TOLERANCE_DEG) or np.any(np.abs(d_lat) > _TOLERANCE_DEG)):
            break
    return lon, lat


def _gcj_inverse_raw(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> Coords:
    """Invert the GCJ-02 offset, starting from the one-step guess target - offset(target)."""
    f_lon, f_lat = _gcj_offset_raw(lon, lat)
    return _invert(_gcj_offset_raw, lon, lat, (2.0 * lon - f_lon, 2.0 * lat - f_lat))


def _inside_china_only(fn: _Forward, lon: ArrayLike, lat: ArrayLike) -> Coords:
    """Leave points outside China untouched: GCJ-02 is the identity there, by definition."""
    x, y = _as_arrays(lon, lat)
    inside = _in_china(x, y)
    if inside.all():
        return fn(x, y)
    if inside.any():
        x[inside], y[inside] = fn(x[inside], y[inside])
    return x, y


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> Coords:
    """Encrypt WGS84 to GCJ-02 (the published algorithm; identity outside China)."""
    return _inside_china_only(_gcj_offset_raw, lon, lat)


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> Coords:
    """Decrypt GCJ-02 to WGS84 to well under 1 cm by iteration (identity outside China)."""
    return _inside_china_only(_gcj_inverse_raw, lon, lat)


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> Coords:
    """Convert GCJ-02 to BD-09 with Baidu's published formula."""
    return _gcj_to_bd_raw(*_as_arrays(lon, lat))


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> Coords:
    """Convert BD-09 to GCJ-02 by iterating the forward formula (the one-step inverse is ~0.2 m off)."""
    x, y = _as_arrays(lon, lat)
    return _invert(_gcj_to_bd_raw, x, y, _bd_to_gcj_one_step(x, y))


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> Coords:
    """Convert WGS84 to BD-09 through GCJ-02, as Baidu does."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> Coords:
    """Convert BD-09 to WGS84 through GCJ-02; both steps are exact inverses, so errors stay sub-mm."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))
