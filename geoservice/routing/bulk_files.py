"""``geoservice route IN OUT``: route a file of points in chunks, so a million rows fit in memory.

Input: CSV with ``lon``/``lat`` columns, or GeoJSON / GeoPackage / Shapefile of Points. Output keeps
every input column and adds the routed codes (and ``department``, ``rule_id`` when the input has a
``category`` column); its format follows the output's suffix (CSV and GeoPackage are written chunk
by chunk; GeoJSON is written once at the end). Rows whose coordinates cannot be used go to the
reject file with the reason; rows outside every grid stay in the output with empty codes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from etl.readers import VECTOR_SUFFIXES, ReadError, choose_crs
from geoservice.routing.bulk import route_points
from geoservice.routing.router import Router
from layers.crs import InputCRS, crs_from_file, on_earth, parse_crs, to_wgs84

OUTPUT_SUFFIXES = {".csv", ".gpkg", ".geojson"}


@dataclass
class RouteSummary:
    """What ``geoservice route`` prints at the end."""

    rejects_path: Path
    rows: int = 0
    routed: int = 0
    outside: int = 0
    rejected: int = 0


def route_file(
    router: Router,
    source: Path,
    target: Path,
    *,
    crs: str | None = None,
    rejects: Path | None = None,
    chunk_rows: int = 200_000,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> RouteSummary:
    """Route every row of ``source`` into ``target``; bad rows into ``rejects``."""
    if target.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ReadError(target, "write .csv, .gpkg or .geojson")
    rejects = rejects or target.with_name(target.stem + ".rejected.csv")
    for path in (target, rejects):
        path.unlink(missing_ok=True)
    total, chunks = _chunks(source, crs, chunk_rows)
    summary = RouteSummary(rejects)
    held: list[gpd.GeoDataFrame] = []  # GeoJSON output is written once, at the end
    for table, lon, lat, problems in chunks:
        summary.rows += len(table)
        ok = problems == ""
        if (~ok).any():
            bad = table[~ok].assign(reason=problems[~ok])
            bad.to_csv(rejects, mode="a", header=not rejects.exists(), index=False)
            summary.rejected += int((~ok).sum())
        good = table[ok].reset_index(drop=True)
        categories = good["category"].to_numpy(dtype=object) if "category" in good.columns else None
        routed = pd.concat([good, route_points(router, lon[ok], lat[ok], categories)], axis=1)
        summary.routed += int((routed["grid_code"] != "").sum())
        summary.outside += int((routed["grid_code"] == "").sum())
        _write(routed, lon[ok], lat[ok], target, held)
        progress(summary.rows, total)
    if held:
        frame = pd.concat(held, ignore_index=True)
        pyogrio.write_dataframe(gpd.GeoDataFrame(frame, geometry="geometry", crs=4326), target, driver="GeoJSON")
    elif not target.exists():
        pd.DataFrame(columns=["grid_code"]).to_csv(target, index=False)
    return summary


def _write(routed: pd.DataFrame, lon: np.ndarray, lat: np.ndarray, target: Path, held: list) -> None:
    suffix = target.suffix.lower()
    if suffix == ".csv":
        routed.to_csv(target, mode="a", header=not target.exists(), index=False)
        return
    frame = gpd.GeoDataFrame(routed.drop(columns=["geometry"], errors="ignore"),
                             geometry=shapely.points(lon, lat), crs=4326)  # fmt: skip
    if suffix == ".gpkg":
        pyogrio.write_dataframe(frame, target, driver="GPKG", append=target.exists())
    else:
        held.append(frame)


Chunk = tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]


def _chunks(source: Path, crs: str | None, chunk_rows: int) -> tuple[int, Iterator[Chunk]]:
    if not source.exists():
        raise ReadError(source, "no such file")
    suffix = source.suffix.lower()
    if suffix == ".csv":
        header = pd.read_csv(source, nrows=0, encoding="utf-8-sig").columns
        if not {"lon", "lat"} <= set(header):
            raise ReadError(source, "a CSV needs 'lon' and 'lat' columns")
        with source.open("rb") as handle:
            total = max(sum(1 for _ in handle) - 1, 0)
        return total, _csv_chunks(source, parse_crs(crs), chunk_rows)
    if suffix not in VECTOR_SUFFIXES:
        raise ReadError(source, f"unsupported format {suffix!r}; use CSV, GeoJSON, GeoPackage or Shapefile")
    info = pyogrio.read_info(source)
    declared = crs_from_file(info["crs"])
    return int(info["features"]), _vector_chunks(
        source, choose_crs(source, declared, crs), int(info["features"]), chunk_rows
    )


def _csv_chunks(source: Path, crs: InputCRS, chunk_rows: int) -> Iterator[Chunk]:
    reader = pd.read_csv(source, dtype=str, keep_default_na=False, chunksize=chunk_rows, encoding="utf-8-sig")
    for table in reader:
        x = pd.to_numeric(table["lon"].str.strip(), errors="coerce").to_numpy(float)
        y = pd.to_numeric(table["lat"].str.strip(), errors="coerce").to_numpy(float)
        yield (table, *checked_wgs84(x, y, crs))


def _vector_chunks(source: Path, crs: InputCRS, total: int, chunk_rows: int) -> Iterator[Chunk]:
    for start in range(0, total, chunk_rows):
        frame = pyogrio.read_dataframe(source, skip_features=start, max_features=chunk_rows)
        geoms = np.asarray(frame.geometry.values, dtype=object)
        is_point = np.array([g is not None and g.geom_type == "Point" for g in geoms], dtype=bool)
        x = np.where(is_point, shapely.get_x(np.where(is_point, geoms, None)), np.nan)
        y = np.where(is_point, shapely.get_y(np.where(is_point, geoms, None)), np.nan)
        table = pd.DataFrame(frame.drop(columns=frame.geometry.name))
        lon, lat, problems = checked_wgs84(x, y, crs)
        problems = np.where(is_point, problems, "geometry is not a Point")
        yield table, lon, lat, problems


def checked_wgs84(x: np.ndarray, y: np.ndarray, crs: InputCRS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WGS84 coordinates and, per row, '' or why the row cannot be routed (every bulk engine says the same)."""
    problems = np.full(x.shape, "", dtype=object)
    finite = np.isfinite(x) & np.isfinite(y)
    problems[~finite] = "lon/lat are missing or not numbers"
    lon, lat = np.full(x.shape, np.nan), np.full(x.shape, np.nan)
    if finite.any():
        lon[finite], lat[finite] = to_wgs84(x[finite], y[finite], crs)
    out = finite & ~on_earth(lon, lat)
    problems[out] = "coordinates out of range (lon ±180, lat ±90): wrong --crs, or lat/lon swapped?"
    return lon, lat, problems
