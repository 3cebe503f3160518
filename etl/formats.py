"""What a file reader says about a whole file, without the readers' imports (geopandas, pyogrio).

``etl.readers`` re-exports these; a command that only needs the error and the CRS rule (``geoservice
route``, whose start-up is part of what a user waits for) imports them from here.
"""

from __future__ import annotations

from pathlib import Path

from layers.crs import InputCRS, parse_crs

VECTOR_SUFFIXES = {".geojson", ".json", ".gpkg", ".shp", ".zip"}


class ReadError(ValueError):
    """The file as a whole cannot be read (missing, unknown format, conflicting CRS).

    The message names the file by its own name, never its directory: an uploaded file sits in a
    temporary folder of the server, and where the server keeps things is nobody's business (the
    reasons GDAL gives quote the full path, so it is taken out of them too).
    """

    def __init__(self, path: Path, reason: str) -> None:
        path = Path(path)
        for where in (str(path), str(path.parent) + "/"):
            reason = reason.replace(where, path.name if where == str(path) else "")
        super().__init__(f"{path.name}: {reason}")


def choose_crs(path: Path, declared: InputCRS | None, asked: str | None) -> InputCRS:
    """The CRS to read a file in: what it declares, or ``asked`` where that does not contradict it."""
    if asked is None:
        return declared or parse_crs("wgs84")
    wanted = parse_crs(asked)
    if declared is None or declared == wanted:
        return wanted
    if declared.is_geographic_wgs84_like and (wanted.is_geographic_wgs84_like or wanted.epsg is None):
        return wanted  # lon/lat files carry no datum we could check GCJ-02/BD-09 against
    raise ReadError(path, f"the file declares {declared.name} but --crs {wanted.name} was given")
