"""Read one layer's file (GeoJSON, GeoPackage, Shapefile via pyogrio; CSV with lon/lat) into WGS84.

Reading never raises for a bad feature: rows whose coordinates cannot be read keep an empty
geometry and an entry in ``problems`` so that validation can report every error of the file at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from etl.formats import VECTOR_SUFFIXES, ReadError, choose_crs
from layers.crs import InputCRS, crs_from_file, geometries_to_wgs84, parse_crs

__all__ = ["VECTOR_SUFFIXES", "ReadError", "ReadResult", "choose_crs", "read_features"]

@dataclass
class ReadResult:
    """Features in WGS84 with their original attributes, and per-row problems found while reading."""

    frame: gpd.GeoDataFrame
    source_crs: InputCRS
    problems: dict[int, str] = field(default_factory=dict)


def read_features(path: Path, crs: str | None = None) -> ReadResult:
    """Read ``path``; ``crs`` is the CRS of a file that declares none (GeoJSON's implicit WGS84 aside).

    A file that declares a projected or other CRS is read in it; asking for a different one is an
    error rather than a silent guess. GCJ-02 and BD-09 are not EPSG codes, so a GeoJSON that is
    really GCJ-02 looks like WGS84 to GDAL: ``--crs gcj02`` is honoured for such files.
    """
    path = Path(path)
    if not path.exists():
        raise ReadError(path, "no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path, parse_crs(crs))
    if suffix not in VECTOR_SUFFIXES:
        raise ReadError(path, f"unsupported format {suffix!r}; use GeoJSON, GeoPackage, Shapefile or CSV")
    try:
        frame = pyogrio.read_dataframe(path)
    except Exception as exc:  # pyogrio raises several DataSource errors; all mean "cannot read"
        raise ReadError(path, f"cannot read: {exc}") from exc
    declared = crs_from_file(frame.crs)
    source = choose_crs(path, declared, crs)
    frame = frame.reset_index(drop=True)
    geoms = np.asarray(frame.geometry.values, dtype=object)
    frame = gpd.GeoDataFrame(
        frame.drop(columns=frame.geometry.name), geometry=geometries_to_wgs84(geoms, source), crs=4326
    )
    return ReadResult(_as_text_columns(frame), source)


def _read_csv(path: Path, source: InputCRS) -> ReadResult:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ReadError(path, f"cannot read as UTF-8 CSV: {exc}") from exc
    missing = {"lon", "lat"} - set(table.columns)
    if missing:
        raise ReadError(path, f"a CSV needs 'lon' and 'lat' columns; missing {', '.join(sorted(missing))}")
    lon = pd.to_numeric(table["lon"].str.strip(), errors="coerce").to_numpy(float)
    lat = pd.to_numeric(table["lat"].str.strip(), errors="coerce").to_numpy(float)
    problems = {
        int(i): f"lon/lat {table['lon'].iat[i]!r}, {table['lat'].iat[i]!r} are not numbers"
        for i in np.flatnonzero(~(np.isfinite(lon) & np.isfinite(lat)))
    }
    points = shapely.points(lon, lat)
    points[list(problems)] = None  # reported above; validation names them once
    frame = gpd.GeoDataFrame(table.drop(columns=["lon", "lat"]), geometry=geometries_to_wgs84(points, source), crs=4326)
    return ReadResult(frame, source, problems)


def _as_text_columns(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Codes must stay text: a GeoPackage may store 320682102003 as an integer or a float."""
    for column in frame.columns:
        if column == frame.geometry.name:
            continue
        series = frame[column]
        if pd.api.types.is_float_dtype(series) and series.dropna().apply(float.is_integer).all():
            series = series.astype("Int64")
        if pd.api.types.is_datetime64_any_dtype(series):
            frame[column] = series.map(lambda t: "" if pd.isna(t) else t.isoformat())
        else:
            frame[column] = series.astype("string").fillna("").astype(object)
    return frame
