"""A city pack: everything a city loads, as files in one directory (docs/city-pack.md).

One file per layer, named after it (``regions.gpkg``, ``grids.shp``, ``posts.csv`` …), the reference
tables and accounts as CSV (``departments.csv``, ``categories.csv``, ``routing_rules.csv``,
``users.csv``, the duty list ``duties.csv``) and ``city.toml`` (name, adcode, the files' CRS, time
zone, boundary version name).
Reading never stops at the first problem: what cannot be read becomes a ``PackFault`` and the rest
is still read, so ``city check`` can name every fault of every file in one run.
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import geopandas as gpd
import pandas as pd
import pyogrio

from etl.readers import ReadError, ReadResult, read_features
from etl.reference import DATA as REFERENCE_DATA
from etl.reference import OPTIONAL as REFERENCE_OPTIONAL
from etl.reference import REQUIRED as REFERENCE_REQUIRED
from layers.crs import parse_crs

# Loaded in this order: each layer may refer to those before it (grids → communities, station
# areas → stations, events → categories).
GEO_LAYERS = ("regions", "grids", "posts", "station_areas", "places", "population", "events")
TABLES = ("departments", "categories", "routing_rules", "users", "duties", "key_people")
REQUIRED_FILES = ("regions", "grids", "departments", "categories")
GEO_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".csv")
CITY_FILE = "city.toml"

USER_REQUIRED = ("username", "role")
USER_OPTIONAL = ("name", "phone", "region_code", "department_code", "grids", "password_hash", "must_change_password")
TABLE_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    **{t: (REFERENCE_REQUIRED[t], REFERENCE_OPTIONAL[t]) for t in REFERENCE_REQUIRED},
    "users": (USER_REQUIRED, USER_OPTIONAL),
    "duties": (("code", "name", "level", "every_days"), ("region_code", "description")),  # 职责清单 (issue 18)
    # 重点人员: a person is known by grid, name and ID number (the register has no code of its own)
    "key_people": (("name", "kind", "grid_code", "visit_cycle_days"),
                   ("id_number", "phone", "address", "responsible_username", "notes")),
}


@dataclass(frozen=True)
class PackFault:
    """One fault: which file, which feature (0-based, as QGIS counts) or CSV line, which field, why."""

    file: str
    reason: str
    row: int | None = None
    field: str | None = None
    code: str | None = None
    is_line: bool = False  # ``row`` is a CSV line number (the header is line 1), not a feature index

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"line {self.row}" if self.is_line else f"feature {self.row}")
        if self.code:
            where.append(f"code {self.code}")
        if self.field:
            where.append(f"field {self.field}")
        return f"{': '.join(where)}: {self.reason}"


@dataclass(frozen=True)
class CityInfo:
    """``city.toml``: who the city is and how to read its files."""

    name: str
    adcode: str
    crs: str = "wgs84"
    timezone: str = "Asia/Shanghai"
    version: str = ""  # the boundary version the pack's regions and grids become
    # [escalation.<level>]: (accept_hours, handle_hours) once an event is escalated to the level
    escalation: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def version_name(self) -> str:
        return self.version or f"{self.adcode}-{datetime.now(UTC).strftime('%Y-%m-%d')}"


@dataclass
class Pack:
    """What was read: the city, each geo layer's features (WGS84), each table as text, read faults."""

    directory: Path
    city: CityInfo | None
    files: dict[str, Path] = field(default_factory=dict)
    layers: dict[str, ReadResult] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    faults: list[PackFault] = field(default_factory=list)

    def file_name(self, layer: str) -> str:
        path = self.files.get(layer)
        return path.name if path else f"{layer}.*"


def read_pack(directory: Path) -> Pack:
    """Read every file of the pack in ``directory``; problems become faults, not exceptions."""
    directory = Path(directory)
    if not directory.is_dir():
        return Pack(directory, None, faults=[PackFault(str(directory), "is not a directory")])
    pack = Pack(directory, None)
    pack.city = _read_city(directory / CITY_FILE, pack.faults)
    crs = pack.city.crs if pack.city else None
    for layer in (*GEO_LAYERS, *TABLES):
        path = _find(directory, layer, pack.faults)
        if path is None:
            if layer in REQUIRED_FILES:
                pack.faults.append(PackFault(f"{layer}.*", f"missing: a pack needs a {layer} file"))
            continue
        pack.files[layer] = path
        if layer in TABLES:
            table = _read_table(path, layer, pack.faults)
            if table is not None:
                pack.tables[layer] = table
            continue
        try:
            pack.layers[layer] = read_features(path, crs)
        except (ReadError, ValueError) as exc:
            pack.faults.append(PackFault(path.name, str(exc).removeprefix(f"{path}: ")))
    return pack


def _find(directory: Path, layer: str, faults: list[PackFault]) -> Path | None:
    suffixes = (".csv",) if layer in TABLES else GEO_SUFFIXES
    found = [directory / f"{layer}{s}" for s in suffixes if (directory / f"{layer}{s}").exists()]
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        faults.append(PackFault(found[0].name, f"more than one file for {layer} ({names}); keep one"))
    return found[0] if found else None


def _read_city(path: Path, faults: list[PackFault]) -> CityInfo | None:
    if not path.exists():
        faults.append(PackFault(CITY_FILE, "missing: a pack needs city.toml (name, adcode, crs, timezone)"))
        return None
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        faults.append(PackFault(CITY_FILE, f"not valid TOML: {exc}"))
        return None
    before = len(faults)
    for key in ("name", "adcode"):
        if not str(raw.get(key, "")).strip():
            faults.append(PackFault(CITY_FILE, f"'{key}' is missing", field=key))
    adcode = str(raw.get("adcode", "")).strip()
    if adcode and not re.fullmatch(r"\d{6}", adcode):
        faults.append(PackFault(CITY_FILE, f"adcode {adcode!r} is not a 6-digit county code", field="adcode"))
    crs = str(raw.get("crs", "wgs84"))
    try:
        parse_crs(crs)
    except ValueError as exc:
        faults.append(PackFault(CITY_FILE, str(exc), field="crs"))
    timezone = str(raw.get("timezone", "Asia/Shanghai"))
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        faults.append(PackFault(CITY_FILE, f"unknown time zone {timezone!r}", field="timezone"))
    unknown = set(raw) - {"name", "adcode", "crs", "timezone", "version", "escalation"}
    if unknown:
        faults.append(PackFault(CITY_FILE, f"unknown key(s): {', '.join(sorted(unknown))}"))
    escalation = _read_escalation(raw.get("escalation", {}), faults)
    if len(faults) > before:
        return None
    return CityInfo(str(raw["name"]), adcode, crs, timezone, str(raw.get("version", "")), escalation)


ESCALATION_LEVELS = ("community", "town", "city")
ESCALATION_HOURS = ("accept_hours", "handle_hours")


def _read_escalation(raw: object, faults: list[PackFault]) -> dict[str, tuple[float, float]]:
    """``[escalation.community]`` … ``[escalation.city]``: both hours, positive numbers; every fault named."""
    if not isinstance(raw, dict):
        faults.append(PackFault(CITY_FILE, "escalation must be tables: [escalation.community] …", field="escalation"))
        return {}
    levels: dict[str, tuple[float, float]] = {}
    for level, table in raw.items():
        where = f"escalation.{level}"
        if level not in ESCALATION_LEVELS:
            known = ", ".join(ESCALATION_LEVELS)
            faults.append(PackFault(CITY_FILE, f"unknown level; levels are {known}", field=where))
            continue
        if not isinstance(table, dict) or set(table) != set(ESCALATION_HOURS):
            faults.append(PackFault(CITY_FILE, "give accept_hours and handle_hours, nothing else", field=where))
            continue
        hours = [table[k] for k in ESCALATION_HOURS]
        if not all(isinstance(h, int | float) and not isinstance(h, bool) and 0 < h < 100_000 for h in hours):
            faults.append(PackFault(CITY_FILE, "hours are positive numbers (below 100,000)", field=where))
            continue
        levels[level] = (float(hours[0]), float(hours[1]))
    return levels


def _read_table(path: Path, table: str, faults: list[PackFault]) -> pd.DataFrame | None:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        faults.append(PackFault(path.name, f"cannot read: {exc}"))
        return None
    if table == "categories" and "grid_worker_closes" in frame.columns and "small_matter" not in frame.columns:
        frame = frame.rename(columns={"grid_worker_closes": "small_matter"})  # its name before release 0008
    required, optional = TABLE_COLUMNS[table]
    if "password" in frame.columns:
        faults.append(
            PackFault(
                path.name,
                "passwords never appear in clear: give password_hash (argon2) or leave it "
                "empty for a one-time password",
                field="password",
            )  # fmt: skip
        )
    missing = [c for c in required if c not in frame.columns]
    if missing:
        faults.append(PackFault(path.name, f"required column(s) missing: {', '.join(missing)}"))
        return None
    for column in optional:
        if column not in frame.columns:
            frame[column] = ""
    return frame.apply(lambda s: s.str.strip())


def write_pack(
    directory: Path,
    city: CityInfo,
    layers: dict[str, gpd.GeoDataFrame],
    tables: dict[str, pd.DataFrame] | None = None,
) -> None:
    """Write a pack that ``city load`` reads: layers as GeoPackages (population as CSV), tables as CSV.

    Times become ISO 8601 text with their zone, so no reader can take them for local times. Tables
    not given are the shipped defaults (``etl/data``) where there is one.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for layer, frame in layers.items():
        if layer == "population":
            points = frame.geometry
            pd.DataFrame({"lon": points.x, "lat": points.y, "count": frame["count"]}).to_csv(
                directory / "population.csv", index=False
            )
            continue
        frame = frame.copy()
        for column in frame.columns:
            if pd.api.types.is_datetime64_any_dtype(frame[column]):
                frame[column] = [None if pd.isna(t) else t.isoformat() for t in frame[column]]
        path = directory / f"{layer}.gpkg"
        path.unlink(missing_ok=True)
        pyogrio.write_dataframe(frame, path, driver="GPKG")
    tables = tables or {}
    for table in ("departments", "categories", "routing_rules"):
        if table not in tables:
            shutil.copyfile(REFERENCE_DATA / f"{table}.csv", directory / f"{table}.csv")
    for table, frame in tables.items():
        frame.to_csv(directory / f"{table}.csv", index=False)
    write_city(directory / CITY_FILE, city)


def write_city(path: Path, city: CityInfo) -> None:
    """city.toml; TOML's basic strings read JSON's escapes, so json.dumps quotes each value."""
    values = {"name": city.name, "adcode": city.adcode, "crs": city.crs, "timezone": city.timezone,
              "version": city.version}  # fmt: skip
    lines = [f"{k} = {json.dumps(v, ensure_ascii=False)}\n" for k, v in values.items()]
    for level in ESCALATION_LEVELS:
        if level in city.escalation:
            accept, handle = city.escalation[level]
            lines.append(f"\n[escalation.{level}]\naccept_hours = {accept:g}\nhandle_hours = {handle:g}\n")
    path.write_text("".join(lines), "utf-8")
