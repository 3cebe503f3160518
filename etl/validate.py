"""Validate a layer's features before anything is written.

Every check runs and every error is collected, so a user fixes a file in one round instead of one
error per attempt. A file with any error loads nothing (see ``etl.load``). Feature numbers are the
0-based position of the feature in the file, as QGIS and ``ogrinfo`` count them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from etl.contracts import REGION_LEVELS, RISK_LEVELS, LayerContract
from etl.topology import TopologyProblem, coverage_problems
from layers.crs import metric_area
from layers.models import POST_LEVELS

# China's extent with a margin: a point whose (lat, lon) falls here was probably given as (lat, lon).
CHINA_LON = (70.0, 140.0)
CHINA_LAT = (0.0, 56.0)
EVENT_STATUSES = (
    "reported", "accepted", "rejected", "dispatched", "returned", "handling",
    "handled", "verified", "reopened", "archived", "evaluated",
)  # fmt: skip
CHINA_TZ = "Asia/Shanghai"
PARENT_LEVEL = {"town": "city", "community": "town"}
SHAPEFILE_FIELD_WIDTH = 10


@dataclass(frozen=True)
class FeatureError:
    """One problem with one feature (``index`` None: the file as a whole)."""

    index: int | None
    code: str | None
    message: str

    def __str__(self) -> str:
        if self.index is None:
            return self.message
        code = f" (code {self.code})" if self.code else ""
        return f"feature {self.index}{code}: {self.message}"


@dataclass
class References:
    """What the database already holds that a file may refer to."""

    metric_epsg: int
    regions: dict[str, str] = field(default_factory=dict)  # code → level, in the target version
    community_geoms: dict[str, BaseGeometry] = field(default_factory=dict)  # code → polygon (lon/lat)
    station_codes: set[str] = field(default_factory=set)
    category_codes: set[str] = field(default_factory=set)


@dataclass
class Validation:
    """The outcome: errors (nothing may be written if any), repairs made by ``--fix``, clean features."""

    frame: gpd.GeoDataFrame
    errors: list[FeatureError] = field(default_factory=list)
    repairs: list[FeatureError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def validate(
    contract: LayerContract,
    frame: gpd.GeoDataFrame,
    refs: References,
    *,
    fix: bool = False,
    read_problems: dict[int, str] | None = None,
) -> Validation:
    """Run the checks of ``contract`` on ``frame`` (WGS84) and return every error found."""
    frame = _restore_shapefile_names(frame, contract)
    result = Validation(frame)
    missing = [c for c in contract.required if c not in frame.columns]
    if missing:
        present = ", ".join(c for c in frame.columns if c != frame.geometry.name) or "none"
        result.errors.append(
            FeatureError(
                None, None, f"required field(s) missing: {', '.join(missing)} (the file has: {present})"
            )
        )
        return result
    for column in contract.optional:
        if column not in result.frame.columns:
            result.frame[column] = ""
    codes = _codes(result.frame)
    for index, why in (read_problems or {}).items():
        result.errors.append(FeatureError(index, codes[index], why))
    _check_required_values(contract, result, codes)
    _check_geometry(contract, result, codes, fix)
    if contract.unique_code:
        _check_unique_codes(result, codes)
    LAYER_CHECKS[contract.name](result, codes, refs)
    result.errors.sort(key=lambda e: -1 if e.index is None else e.index)
    return result


def _restore_shapefile_names(frame: gpd.GeoDataFrame, contract: LayerContract) -> gpd.GeoDataFrame:
    """Shapefiles cut field names to 10 characters (community_code → community_): undo that."""
    renames = {
        name[:SHAPEFILE_FIELD_WIDTH]: name
        for name in contract.columns
        if len(name) > SHAPEFILE_FIELD_WIDTH and name not in frame.columns
    }
    return frame.rename(columns={k: v for k, v in renames.items() if k in frame.columns})


def _codes(frame: gpd.GeoDataFrame) -> list[str | None]:
    if "code" not in frame.columns:
        return [None] * len(frame)
    return [str(c).strip() or None for c in frame["code"]]


def _check_required_values(contract: LayerContract, result: Validation, codes: list[str | None]) -> None:
    for column in contract.required:
        values = result.frame[column].astype(str).str.strip()
        result.frame[column] = values
        for index in np.flatnonzero(values.eq("").to_numpy()):
            result.errors.append(FeatureError(int(index), codes[index], f"'{column}' is empty"))


def _check_geometry(contract: LayerContract, result: Validation, codes: list[str | None], fix: bool) -> None:
    geoms = np.asarray(result.frame.geometry.values, dtype=object)
    for index, geom in enumerate(geoms):
        if geom is None or geom.is_empty:
            if index not in {e.index for e in result.errors}:
                result.errors.append(FeatureError(index, codes[index], "has no geometry"))
            continue
        if geom.geom_type not in contract.geometry_types:
            allowed = " or ".join(sorted(contract.geometry_types))
            result.errors.append(
                FeatureError(
                    index, codes[index], f"geometry is a {geom.geom_type}; this layer takes {allowed}"
                )
            )
            continue
        out_of_range = _coordinate_problem(geom)
        if out_of_range:
            result.errors.append(FeatureError(index, codes[index], out_of_range))
            continue
        if not geom.is_valid:
            reason = shapely.is_valid_reason(geom)
            if not fix:
                result.errors.append(
                    FeatureError(
                        index, codes[index], f"invalid geometry: {reason}; --fix repairs it with make_valid"
                    )
                )
                continue
            repaired = _repair(geom, contract)
            if repaired is None:
                result.errors.append(
                    FeatureError(
                        index, codes[index], f"invalid geometry ({reason}) that make_valid cannot repair"
                    )
                )
                continue
            geoms[index] = repaired
            result.repairs.append(
                FeatureError(index, codes[index], f"repaired {reason}: {_change(geom, repaired)}")
            )
    if contract.geometry_types >= {"Polygon", "MultiPolygon"} and "Point" not in contract.geometry_types:
        geoms = np.array([_as_multipolygon(g) for g in geoms], dtype=object)
    result.frame = result.frame.set_geometry(gpd.GeoSeries(geoms, crs=4326, index=result.frame.index))


def _coordinate_problem(geom: BaseGeometry) -> str | None:
    minx, miny, maxx, maxy = geom.bounds
    if -180 <= minx and maxx <= 180 and -90 <= miny and maxy <= 90:
        return None
    swapped = CHINA_LON[0] <= miny and maxy <= CHINA_LON[1] and CHINA_LAT[0] <= minx and maxx <= CHINA_LAT[1]
    hint = "; latitude and longitude look swapped" if swapped else "; is the CRS right (see --crs)?"
    return f"coordinates out of range (lon {minx:.6f}..{maxx:.6f}, lat {miny:.6f}..{maxy:.6f}){hint}"


def _repair(geom: BaseGeometry, contract: LayerContract) -> BaseGeometry | None:
    repaired = shapely.make_valid(geom)
    parts = [p for p in shapely.get_parts(repaired) if p.geom_type in contract.geometry_types]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return shapely.union_all(parts)


def _change(before: BaseGeometry, after: BaseGeometry) -> str:
    if before.geom_type == "Point":
        return "point kept"
    # Relative change only: the geometry is in degrees here, and a ratio needs no metric CRS.
    ratio = after.area / before.area if before.area else float("nan")
    return f"{before.geom_type} → {after.geom_type}, area × {ratio:.4f}"


def _as_multipolygon(geom: BaseGeometry | None) -> BaseGeometry | None:
    if isinstance(geom, shapely.Polygon):
        return shapely.MultiPolygon([geom])
    return geom


def _check_unique_codes(result: Validation, codes: list[str | None]) -> None:
    first: dict[str, int] = {}
    for index, code in enumerate(codes):
        if code is None:
            continue
        if code in first:
            result.errors.append(
                FeatureError(index, code, f"duplicate code: also used by feature {first[code]}")
            )
        else:
            first[code] = index


# --- per-layer checks -----------------------------------------------------------------------------
def _check_regions(result: Validation, codes: list[str | None], refs: References) -> None:
    frame = result.frame
    levels_in_file = dict(zip(frame["code"], frame["level"], strict=True))
    known = {**refs.regions, **levels_in_file}
    for index, row in enumerate(frame.itertuples()):
        code, level, parent = row.code, row.level, str(row.parent_code).strip()
        if code and not re.fullmatch(r"\d{12}", code):
            result.errors.append(FeatureError(index, code, "region codes have 12 digits (统计用区划代码)"))
        if level not in REGION_LEVELS:
            result.errors.append(
                FeatureError(index, code, f"level {level!r} is not one of {', '.join(REGION_LEVELS)}")
            )
            continue
        if level == "city":
            if parent:
                result.errors.append(FeatureError(index, code, "the city has no parent_code"))
            continue
        if not parent:
            result.errors.append(FeatureError(index, code, f"a {level} needs a parent_code"))
        elif parent not in known:
            result.errors.append(
                FeatureError(index, code, f"parent_code {parent} is neither in the file nor loaded")
            )
        elif known[parent] != PARENT_LEVEL[level]:
            result.errors.append(
                FeatureError(
                    index,
                    code,
                    f"a {level}'s parent must be a {PARENT_LEVEL[level]}, {parent} is a {known[parent]}",
                )
            )


def _check_grids(result: Validation, codes: list[str | None], refs: References) -> None:
    frame = result.frame
    communities = {c for c, level in refs.regions.items() if level == "community"}
    for index, row in enumerate(frame.itertuples()):
        code, community = row.code, row.community_code
        if code and not re.fullmatch(r"\d{15}", code):
            result.errors.append(
                FeatureError(index, code, "grid codes have 15 digits (community code + serial)")
            )
        elif code and community and not code.startswith(community):
            result.errors.append(
                FeatureError(index, code, f"grid code does not start with its community_code {community}")
            )
        if community and community not in communities:
            result.errors.append(
                FeatureError(
                    index, code, f"community_code {community} is not a community of this boundary version"
                )
            )
    if result.errors:
        return  # coverage checks need valid, well-coded polygons to say anything useful
    _check_grid_coverage(result, refs)


def _check_grid_coverage(result: Validation, refs: References) -> None:
    """Overlaps anywhere in the layer; gaps inside each community (against its polygon if loaded)."""
    frame = result.frame
    codes = frame["code"].tolist()
    index_of = {code: i for i, code in enumerate(codes)}
    area_m2 = metric_area(refs.metric_epsg)
    for problem in coverage_problems(frame.geometry.values, codes, area_m2=area_m2):
        if problem.kind != "gap":  # gaps between communities are judged per community below
            result.errors.append(_topology_error(problem, index_of))
    for community, members in frame.groupby("community_code"):
        parent = refs.community_geoms.get(str(community))
        found = coverage_problems(
            members.geometry.values, members["code"].tolist(), area_m2=area_m2, parent=parent
        )
        for problem in found:
            if problem.kind == "gap":
                result.errors.append(_topology_error(problem, index_of, community=str(community)))


def _topology_error(
    problem: TopologyProblem, index_of: dict[str, int], community: str | None = None
) -> FeatureError:
    where = problem.location.representative_point()
    near = f"near lon {where.x:.6f}, lat {where.y:.6f}"
    first = problem.codes[0] if problem.codes else None
    index = index_of.get(first) if first else None
    if problem.kind == "overlap":
        message = f"overlaps grid {problem.codes[1]} by {problem.area_m2:,.1f} m² {near}"
    elif problem.kind == "gap":
        message = f"grids of community {community} leave a gap of {problem.area_m2:,.1f} m² {near}"
        if not problem.codes:
            return FeatureError(None, None, message)
    else:
        message = f"an edge does not match its neighbour's vertex for vertex {near}"
    return FeatureError(index, first, message)


def _check_posts(result: Validation, codes: list[str | None], refs: References) -> None:
    for index, level in enumerate(result.frame["level"]):
        if level and level not in POST_LEVELS:
            result.errors.append(
                FeatureError(index, codes[index], f"level {level!r} is not one of {', '.join(POST_LEVELS)}")
            )


def _check_station_areas(result: Validation, codes: list[str | None], refs: References) -> None:
    for index, code in enumerate(codes):
        if code and code not in refs.station_codes:
            result.errors.append(
                FeatureError(index, code, "is not the code of a loaded police station (import posts first)")
            )


def _check_places(result: Validation, codes: list[str | None], refs: References) -> None:
    """A risk level from the known ones; an inspection cycle in whole days (both optional)."""
    frame = result.frame
    for index, (risk, cycle) in enumerate(zip(frame["risk_level"], frame["inspection_cycle_days"], strict=True)):
        risk, cycle = str(risk).strip(), str(cycle).strip()
        if risk and risk not in RISK_LEVELS:
            result.errors.append(
                FeatureError(index, codes[index], f"risk_level {risk!r} is not one of {', '.join(RISK_LEVELS)}")
            )
        if cycle and not (cycle.isdigit() and int(cycle) > 0):
            result.errors.append(
                FeatureError(index, codes[index], f"inspection_cycle_days {cycle!r} is not a whole number of days")
            )


def _check_events(result: Validation, codes: list[str | None], refs: References) -> None:
    frame = result.frame
    times = parse_times(frame["occurred_at"])
    for index, (raw, parsed) in enumerate(zip(frame["occurred_at"], times, strict=True)):
        if raw and pd.isna(parsed):
            result.errors.append(FeatureError(index, None, f"occurred_at {raw!r} is not an ISO 8601 time"))
    for index, category in enumerate(frame["category"]):
        if category and category not in refs.category_codes:
            result.errors.append(FeatureError(index, None, f"category {category!r} is not a known category"))
    for index, status in enumerate(frame["status"]):
        if status and status not in EVENT_STATUSES:
            result.errors.append(
                FeatureError(index, None, f"status {status!r} is not one of {', '.join(EVENT_STATUSES)}")
            )
    ids = frame["id"].astype(str).str.strip()
    duplicated = ids.ne("") & ids.duplicated(keep="first")
    for index in np.flatnonzero(duplicated.to_numpy()):
        result.errors.append(FeatureError(int(index), None, f"duplicate id {ids.iat[index]}"))


def parse_times(values: pd.Series) -> pd.Series:
    """ISO 8601 strings to UTC timestamps (NaT where unreadable); times without a zone are China's."""

    def one(value: str) -> pd.Timestamp:
        try:
            moment = pd.Timestamp(value)
        except (ValueError, TypeError):
            return pd.NaT
        if pd.isna(moment):
            return pd.NaT
        return (moment.tz_localize(CHINA_TZ) if moment.tzinfo is None else moment).tz_convert("UTC")

    return pd.Series([one(v) for v in values], index=values.index, dtype="datetime64[ns, UTC]")


LAYER_CHECKS = {
    "regions": _check_regions,
    "grids": _check_grids,
    "posts": _check_posts,
    "station_areas": _check_station_areas,
    "places": _check_places,
    "events": _check_events,
}
