"""Tile addresses (z/x/y in Web Mercator, XYZ scheme) and the sizes that follow from them."""

from __future__ import annotations

import math
from dataclasses import dataclass

EARTH_CIRCUMFERENCE_M = 40_075_016.68557849  # of the Web Mercator sphere, the width of tile 0/0/0
ORIGIN_M = EARTH_CIRCUMFERENCE_M / 2
MAX_ZOOM = 24
TILE_PIXELS = 256  # the pixel a map draws; simplification tolerances are expressed in it
MAX_LATITUDE = 85.0511287798066


class BadTileAddress(ValueError):
    """z/x/y that name no tile; the message says which number is out of range."""


@dataclass(frozen=True, order=True)
class TileAddress:
    """One tile: zoom ``z``, column ``x`` from the west, row ``y`` from the north."""

    z: int
    x: int
    y: int

    def __post_init__(self) -> None:
        if not 0 <= self.z <= MAX_ZOOM:
            raise BadTileAddress(f"zoom {self.z} is outside 0..{MAX_ZOOM}")
        last = 2**self.z - 1
        if not (0 <= self.x <= last and 0 <= self.y <= last):
            raise BadTileAddress(f"at zoom {self.z}, x and y run from 0 to {last}; got x={self.x}, y={self.y}")

    @property
    def size_m(self) -> float:
        """Width of the tile in Web Mercator metres (a projected length, not a ground distance)."""
        return EARTH_CIRCUMFERENCE_M / 2**self.z

    @property
    def pixel_m(self) -> float:
        """One map pixel at this zoom, in Web Mercator units: the simplification tolerance."""
        return self.size_m / TILE_PIXELS

    def mercator_bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) in EPSG:3857, as ``ST_TileEnvelope`` computes them."""
        size = self.size_m
        minx = -ORIGIN_M + self.x * size
        maxy = ORIGIN_M - self.y * size
        return minx, maxy - size, minx + size, maxy

    def lonlat_bounds(self, margin: float = 0.0) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees, grown by ``margin`` (a fraction of the tile's width)."""
        minx, miny, maxx, maxy = self.mercator_bounds()
        grow = (maxx - minx) * margin
        west, south = mercator_to_lonlat(minx - grow, miny - grow)
        east, north = mercator_to_lonlat(maxx + grow, maxy + grow)
        return west, south, east, north


def tile_at(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The column and row of the tile holding a point at zoom ``z``."""
    n = 2**z
    lat = max(-MAX_LATITUDE, min(MAX_LATITUDE, lat))
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


def mercator_to_lonlat(x: float, y: float) -> tuple[float, float]:
    """EPSG:3857 metres → degrees (spherical inverse, clamped to the projection's edges)."""
    x = max(-ORIGIN_M, min(ORIGIN_M, x))
    y = max(-ORIGIN_M, min(ORIGIN_M, y))
    lon = x / ORIGIN_M * 180.0
    lat = math.degrees(2 * math.atan(math.exp(y / 6_378_137.0)) - math.pi / 2)
    return lon, lat


def boxes_overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    """Whether two (minx, miny, maxx, maxy) boxes share any point (touching counts)."""
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]
