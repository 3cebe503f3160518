"""The coordinate reference systems of OGC API - Features Part 2: which ones, in which axis order.

The layers are stored in WGS84 longitude/latitude (SRID 4326, written ``CRS84`` by OGC); a client may
ask for its answers (``crs``) or give its ``bbox`` (``bbox-crs``) in CGCS2000 (EPSG:4490, the national
datum surveys and plans are drawn in) or in EPSG:4326. Part 2 requires the axis order the EPSG
register defines, and for both of those EPSG says latitude first: so a ``bbox-crs`` of 4490 is
``minlat,minlon,maxlat,maxlon`` and the coordinates answered in 4490 are ``[lat, lon]``. CRS84 keeps
GeoJSON's longitude first. CGCS2000 and WGS84 differ by centimetres; PostGIS transforms between them
without a datum shift, as every Chinese GIS does at city scale.
"""

from __future__ import annotations

from dataclasses import dataclass

from geoservice.api.problems import ProblemError

STORAGE_SRID = 4326


@dataclass(frozen=True)
class FeatureCrs:
    """One CRS served: its URI, its PostGIS SRID and whether its first axis is latitude (north)."""

    uri: str
    srid: int
    latitude_first: bool

    def geometry_sql(self, column: str) -> str:
        """SQL turning the stored geometry ``column`` into this CRS, axes in this CRS's order."""
        moved = column if self.srid == STORAGE_SRID else f"ST_Transform({column}, {self.srid})"
        return f"ST_FlipCoordinates({moved})" if self.latitude_first else moved

    def lon_lat(self, box: list[float]) -> list[float]:
        """A 2D bbox given in this CRS's axis order, as minx (lon), miny (lat), maxx, maxy."""
        return [box[1], box[0], box[3], box[2]] if self.latitude_first else box

    @property
    def header(self) -> str:
        """The ``Content-Crs`` header value (Part 2: the URI in angle brackets)."""
        return f"<{self.uri}>"


CRS84 = FeatureCrs("http://www.opengis.net/def/crs/OGC/1.3/CRS84", STORAGE_SRID, latitude_first=False)
CGCS2000 = FeatureCrs("http://www.opengis.net/def/crs/EPSG/0/4490", 4490, latitude_first=True)
WGS84 = FeatureCrs("http://www.opengis.net/def/crs/EPSG/0/4326", STORAGE_SRID, latitude_first=True)
SERVED: dict[str, FeatureCrs] = {c.uri: c for c in (CRS84, CGCS2000, WGS84)}
STORAGE = CRS84  # the stored coordinates are WGS84 lon/lat: exactly CRS84


def crs_named(value: str | None, parameter: str) -> FeatureCrs:
    """The CRS a ``crs`` or ``bbox-crs`` parameter names (CRS84 when absent); a 400 for any other."""
    if value is None:
        return CRS84
    found = SERVED.get(value)
    if found is None:
        raise ProblemError(400, "Unsupported CRS", f"{parameter}: {value!r} is not served; use one of "
                           f"{', '.join(SERVED)}")  # fmt: skip
    return found
