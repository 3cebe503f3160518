"""Input coordinate reference systems: naming them, and moving coordinates to and from WGS84.

Chinese data arrives in four flavours: WGS84 (GPS), CGCS2000 (the national datum, within
centimetres of WGS84, so treated as identical), GCJ-02 (Amap/Tencent) and BD-09 (Baidu), plus
the occasional projected file with a proper EPSG code. Everything is stored in WGS84.
"""

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyproj
import shapely
from numpy.typing import ArrayLike, NDArray
from pyproj.exceptions import CRSError

from layers.crs import china
from layers.crs.pipelines import transformer_from_wgs84

__all__ = [
    "InputCRS",
    "UnknownCRSError",
    "crs_from_file",
    "from_wgs84",
    "geometries_from_wgs84",
    "geometries_to_wgs84",
    "parse_crs",
    "to_wgs84",
]

Coords = tuple[NDArray[np.float64], NDArray[np.float64]]
Geometries = Sequence[shapely.Geometry | None] | NDArray[np.object_]
_XYFunction = Callable[[NDArray[np.float64], NDArray[np.float64]], Coords]

ACCEPTED = "wgs84, cgcs2000, gcj02, bd09 or EPSG:n"

_ALIASES = {
    "wgs84": "wgs84",
    "wgs-84": "wgs84",
    "cgcs2000": "cgcs2000",
    "gcj02": "gcj02",
    "gcj-02": "gcj02",
    "bd09": "bd09",
    "bd-09": "bd09",
}
_NAMED_EPSG: dict[str, int | None] = {"wgs84": 4326, "cgcs2000": 4490, "gcj02": None, "bd09": None}
_EPSG_NAMES = {4326: "wgs84", 4490: "cgcs2000"}
_WGS84_LIKE_EPSG = frozenset({4326, 4490})
_EPSG_RE = re.compile(r"epsg\s*:\s*(\d+)")


class UnknownCRSError(ValueError):
    """An input CRS we cannot convert from; the message always says what would be accepted."""

    def __init__(self, text: object, reason: str = "unknown CRS") -> None:
        """Keep the offending text so callers can report it verbatim."""
        self.text = text
        super().__init__(f"{reason}: {text!r}; expected one of {ACCEPTED} (case-insensitive)")


@dataclass(frozen=True)
class InputCRS:
    """A parsed input CRS: a canonical China-specific name, or 'EPSG:n' for anything pyproj knows."""

    name: str
    epsg: int | None

    @property
    def is_geographic_wgs84_like(self) -> bool:
        """Tell whether coordinates can be stored as they are (CGCS2000 differs by centimetres)."""
        return self.name in ("wgs84", "cgcs2000") or self.epsg in _WGS84_LIKE_EPSG

    @property
    def is_geographic(self) -> bool:
        """Tell whether coordinates are degrees, so ±180/±90 bound them (GCJ-02 and BD-09 are degrees too)."""
        return self.epsg is None or self.is_geographic_wgs84_like or _is_geographic_epsg(self.epsg)


WGS84 = InputCRS("wgs84", 4326)


@lru_cache(maxsize=64)
def _is_geographic_epsg(code: int) -> bool:
    """Ask PROJ once per code: building a pyproj CRS hits the PROJ database."""
    return bool(pyproj.CRS.from_epsg(code).is_geographic)


@lru_cache(maxsize=256)
def _epsg_crs(code: int) -> InputCRS:
    """Validate once per code: building a pyproj CRS hits the PROJ database."""
    text = f"EPSG:{code}"
    try:
        crs = pyproj.CRS.from_epsg(code)
    except CRSError:
        raise UnknownCRSError(text, "EPSG code unknown to PROJ") from None
    # Vertical, geocentric and engineering CRSs have codes too, but cannot place a 2-D map feature.
    if not (crs.is_geographic or crs.is_projected):
        raise UnknownCRSError(text, f"{crs.name} is a {crs.type_name}, not a horizontal CRS")
    return InputCRS(text, code)


def parse_crs(text: str | None) -> InputCRS:
    """Parse a user-supplied CRS name; an absent one means WGS84, the only unambiguous default."""
    if text is None or not text.strip():
        return WGS84
    key = text.strip().lower()
    if key in _ALIASES:
        name = _ALIASES[key]
        return InputCRS(name, _NAMED_EPSG[name])
    match = _EPSG_RE.fullmatch(key)
    if match is None:
        raise UnknownCRSError(text)
    code = int(match.group(1))
    if code in _EPSG_NAMES:
        return InputCRS(_EPSG_NAMES[code], code)
    return _epsg_crs(code)


def crs_from_file(crs_like: pyproj.CRS | str | None) -> InputCRS | None:
    """Map the CRS a file declares (as pyogrio/geopandas report it) to an InputCRS, None if none.

    GCJ-02 and BD-09 have no EPSG codes, so a file can never declare them: files in those systems
    claim WGS84 and the caller must override that with an explicit name.
    """
    if crs_like is None:
        return None
    try:
        crs = pyproj.CRS.from_user_input(crs_like)
    except CRSError:
        raise UnknownCRSError(str(crs_like), "unreadable CRS declared by the file") from None
    # GeoJSON's default OGC:CRS84 is WGS84 in lon/lat order, but has no EPSG code of its own.
    if crs.to_authority() == ("OGC", "CRS84"):
        return WGS84
    code = crs.to_epsg()
    if code is None:
        raise UnknownCRSError(crs.to_string(), "file CRS has no EPSG equivalent")
    return parse_crs(f"EPSG:{code}")


_TRANSFORMERS: dict[tuple[int, int], pyproj.Transformer] = {}


def _transformer(src: int, dst: int, remember_in: str | os.PathLike | None = None) -> pyproj.Transformer:
    """Build each transformer once per process: construction is slow, and since pyproj 3.1 sharing is thread-safe.

    ``remember_in``: a directory where a WGS84 → ``dst`` pipeline is kept between processes
    (``layers.crs.pipelines``); the first transformer built for a pair serves every later call.
    """
    found = _TRANSFORMERS.get((src, dst))
    if found is None:
        if src == 4326:
            built = transformer_from_wgs84(dst, Path(remember_in) if remember_in is not None else None)
        else:
            built = pyproj.Transformer.from_crs(src, dst, always_xy=True)
        found = _TRANSFORMERS.setdefault((src, dst), built)
    return found


def _epsg_of(crs: InputCRS) -> int:
    """Refuse hand-built InputCRS values that name nothing convertible, rather than guess."""
    if crs.epsg is None:
        raise UnknownCRSError(crs.name)
    return crs.epsg


def _copy_xy(x: ArrayLike, y: ArrayLike) -> Coords:
    """Return float64 copies, so every path hands back new arrays the caller may mutate."""
    xs, ys = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return xs.copy(), ys.copy()


def to_wgs84(x: ArrayLike, y: ArrayLike, crs: InputCRS) -> Coords:
    """Convert coordinates (x = longitude/easting) in crs to WGS84 lon, lat."""
    if crs.is_geographic_wgs84_like:
        return _copy_xy(x, y)
    if crs.name == "gcj02":
        return china.gcj02_to_wgs84(x, y)
    if crs.name == "bd09":
        return china.bd09_to_wgs84(x, y)
    lon, lat = _transformer(_epsg_of(crs), 4326).transform(*_copy_xy(x, y))
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def from_wgs84(lon: ArrayLike, lat: ArrayLike, crs: InputCRS) -> Coords:
    """Convert WGS84 lon, lat to coordinates in crs (x = longitude/easting)."""
    if crs.is_geographic_wgs84_like:
        return _copy_xy(lon, lat)
    if crs.name == "gcj02":
        return china.wgs84_to_gcj02(lon, lat)
    if crs.name == "bd09":
        return china.wgs84_to_bd09(lon, lat)
    x, y = _transformer(4326, _epsg_of(crs)).transform(*_copy_xy(lon, lat))
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def _transform_geometries(geoms: Geometries, fn: _XYFunction) -> NDArray[np.object_]:
    """Transform all coordinates of all geometries in one vectorised call, keeping any Z unchanged."""

    def xy_fn(
        x: NDArray[np.float64], y: NDArray[np.float64], z: NDArray[np.float64] | None = None
    ) -> tuple[NDArray[np.float64], ...]:
        new_x, new_y = fn(x, y)
        return (new_x, new_y) if z is None else (new_x, new_y, z)

    # include_z=None keeps 3-D geometries 3-D; shapely calls xy_fn once per dimensionality.
    return shapely.transform(np.asarray(geoms, dtype=object), xy_fn, include_z=None, interleaved=False)


def geometries_to_wgs84(geoms: Geometries, crs: InputCRS) -> NDArray[np.object_]:
    """Convert shapely geometries (None allowed) from crs to WGS84."""
    if crs.is_geographic_wgs84_like:
        return np.asarray(geoms, dtype=object).copy()
    return _transform_geometries(geoms, lambda x, y: to_wgs84(x, y, crs))


def geometries_from_wgs84(geoms: Geometries, crs: InputCRS) -> NDArray[np.object_]:
    """Convert shapely geometries (None allowed) from WGS84 to crs."""
    if crs.is_geographic_wgs84_like:
        return np.asarray(geoms, dtype=object).copy()
    return _transform_geometries(geoms, lambda lon, lat: from_wgs84(lon, lat, crs))

