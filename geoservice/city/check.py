"""``city check``: every fault of every file of a pack in one run, and nothing written.

Geo layers go through the same validation as ``geoservice import`` (``etl.validate``), but what a
layer refers to is taken from the pack itself rather than the database: a grid's community from the
pack's regions, a station area's station from its posts, an event's category from its
categories. The tables are checked against each other (a rule naming an unknown department, a user
scoped to an unknown region, a grid worker serving a grid the pack does not have …).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from etl.contracts import contract
from etl.reference import DUPLICATE_COLUMNS, TRUE
from etl.topology import SliverRepair, repair_slivers
from etl.validate import FeatureError, References, Validation, validate
from geoservice.city.pack import Pack, PackFault
from geoservice.field.key_people import KEY_PERSON_LENGTHS
from geoservice.open311.attributes import AttributeProblem, checked_definitions
from layers.crs import metric_area, metric_epsg_for, metric_length
from layers.models import KEY_PERSON_KINDS, Role

FALSE = ("false", "no", "0", "否", "")
ARGON2 = re.compile(r"^\$argon2(id|i|d)\$")
GEOMETRY_WORDS = ("geometry", "coordinates", "overlaps", "gap", "edge", "has no geometry")
SCOPED_BY_REGION = (Role.dispatcher.value, Role.grid_worker.value)


@dataclass
class PackCheck:
    """The outcome: faults (nothing may be loaded if any), repairs ``--fix`` made, validated layers."""

    faults: list[PackFault] = field(default_factory=list)
    repairs: list[PackFault] = field(default_factory=list)
    validated: dict[str, Validation] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.faults


def check_pack(
    pack: Pack, *, fix: bool = False, sliver_max_m2: float = 0.0, sliver_tolerance_m2: float = 1.0
) -> PackCheck:
    """Check every file of ``pack`` against the contracts and against each other.

    With ``fix``, invalid geometries are repaired (make_valid) and every gap or overlap between a
    community's grids (and against the community) smaller than ``sliver_max_m2`` is given to the
    grid with the longest shared edge; each change is listed in ``repairs``.
    """
    result = PackCheck(faults=list(pack.faults))
    refs = _pack_references(pack)
    for layer in ("regions", "grids", "posts", "station_areas", "places", "events"):
        read = pack.layers.get(layer)
        if read is None:
            continue
        frame = read.frame
        if layer == "grids" and fix and sliver_max_m2 > 0 and refs.community_geoms:
            frame, repaired = _repair_slivers(frame, refs, sliver_max_m2, sliver_tolerance_m2)
            result.repairs += [PackFault(pack.file_name(layer), str(r), None, "geometry", r.code) for r in repaired]
        checked = validate(contract(layer), frame, refs, fix=fix, read_problems=read.problems)
        result.validated[layer] = checked
        name = pack.file_name(layer)
        result.faults += [_fault(name, e, checked.frame) for e in checked.errors]
        result.repairs += [_fault(name, e, checked.frame) for e in checked.repairs]
        if layer == "regions" and checked.ok:
            communities = checked.frame[checked.frame["level"] == "community"]
            refs.community_geoms = dict(zip(communities["code"], communities.geometry, strict=True))
    if "population" in pack.layers:
        result.faults += _check_population(pack.file_name("population"), pack.layers["population"].frame)
    result.faults += _check_tables(pack)
    return result


def _repair_slivers(
    frame: gpd.GeoDataFrame, refs: References, max_m2: float, tolerance_m2: float
) -> tuple[gpd.GeoDataFrame, list[SliverRepair]]:
    """Slivers of each community whose grids are all valid polygons (others are reported, not guessed at)."""
    if not {"code", "community_code"} <= set(frame.columns):
        return frame, []
    geoms = np.array(frame.geometry.values, dtype=object)
    area_m2, length_m = metric_area(refs.metric_epsg), metric_length(refs.metric_epsg)
    repairs: list[SliverRepair] = []
    for community, members in frame.groupby(frame["community_code"].astype(str).str.strip()):
        parent = refs.community_geoms.get(str(community))
        part = geoms[members.index.to_numpy()]
        usable = all(g is not None and g.geom_type in ("Polygon", "MultiPolygon") and g.is_valid for g in part)
        if parent is None or not usable:
            continue
        codes = members["code"].astype(str).str.strip().tolist()
        fixed, found = repair_slivers(
            part, codes, area_m2=area_m2, length_m=length_m, parent=parent, tolerance_m2=tolerance_m2, max_m2=max_m2
        )
        geoms[members.index.to_numpy()] = fixed
        repairs += found
    if not repairs:
        return frame, []
    return frame.set_geometry(gpd.GeoSeries(geoms, crs=frame.crs, index=frame.index)), repairs


def _pack_references(pack: Pack) -> References:
    """What the pack's layers may refer to, taken from the pack (the database is not asked)."""
    everything = [r.frame.geometry.values for r in pack.layers.values() if len(r.frame)]
    geoms = [g for values in everything for g in values if g is not None and not g.is_empty]
    lon = shapely.centroid(shapely.union_all(shapely.envelope(geoms))).x if geoms else 120.0
    try:
        epsg = metric_epsg_for(lon)
    except ValueError:
        epsg = metric_epsg_for(120.0)  # the coordinates themselves are reported as out of range
    refs = References(metric_epsg=epsg)
    regions = _frame(pack, "regions")
    if regions is not None:
        refs.regions = dict(zip(regions["code"].astype(str).str.strip(), regions["level"].astype(str).str.strip(),
                                strict=True))  # fmt: skip
    posts = _frame(pack, "posts")
    if posts is not None and {"code", "level"} <= set(posts.columns):
        refs.station_codes = set(posts.loc[posts["level"].astype(str).str.strip() == "station", "code"].str.strip())
    categories = pack.tables.get("categories")
    if categories is not None:
        refs.category_codes = set(categories["code"])
    return refs


def _frame(pack: Pack, layer: str) -> gpd.GeoDataFrame | None:
    read = pack.layers.get(layer)
    return None if read is None or "code" not in read.frame.columns else read.frame


def _fault(file: str, error: FeatureError, frame: gpd.GeoDataFrame) -> PackFault:
    """A validation error as a pack fault, naming the field the message is about where it names one."""
    message = error.message
    columns = [c for c in frame.columns if c != frame.geometry.name]
    found = next(
        (c for c in columns if message.startswith((f"'{c}'", f"{c} ", f"duplicate {c}")) or f" {c} " in message), None
    )
    if found is None and any(word in message for word in GEOMETRY_WORDS):
        found = "geometry"
    return PackFault(file, message, error.index, found, error.code)


def _check_population(file: str, frame: gpd.GeoDataFrame) -> list[PackFault]:
    """Population points: a point each and a count of people (a census grid has no codes)."""
    if "count" not in frame.columns:
        return [PackFault(file, "required field(s) missing: count")]
    faults = []
    counts = pd.to_numeric(frame["count"], errors="coerce")
    for index, (geom, value, raw) in enumerate(zip(frame.geometry, counts, frame["count"], strict=True)):
        if geom is None or geom.is_empty or geom.geom_type != "Point":
            faults.append(PackFault(file, "population is given at points", index, "geometry"))
        if pd.isna(value) or value < 0:
            faults.append(PackFault(file, f"count {raw!r} is not a number of people", index, "count"))
    return faults


# --- tables -----------------------------------------------------------------------------------------
class _Rows:
    """Faults of one CSV table, located by file line (the header is line 1)."""

    def __init__(self, pack: Pack, table: str) -> None:
        self.file = pack.file_name(table)
        self.faults: list[PackFault] = []

    def add(self, index: int, column: str | None, reason: str, code: str | None = None) -> None:
        self.faults.append(PackFault(self.file, reason, index + 2, column, code, is_line=True))

    def required(self, frame: pd.DataFrame, columns: tuple[str, ...], key: str) -> None:
        for column in columns:
            for index in frame.index[frame[column].eq("")]:
                self.add(index, column, f"'{column}' is empty", frame.at[index, key] or None)

    def unique(self, frame: pd.DataFrame, column: str) -> None:
        seen: dict[str, int] = {}
        for index, value in frame[column].items():
            if value and value in seen:
                self.add(index, column, f"duplicate {column}: also on line {seen[value] + 2}", value)
            seen.setdefault(value, index)

    def number(self, frame: pd.DataFrame, index: int, column: str, *, whole: bool = False) -> float | None:
        raw = frame.at[index, column]
        try:
            value = int(raw) if whole else float(raw)
        except ValueError:
            kind = "a whole number" if whole else "a number"
            self.add(index, column, f"{column} {raw!r} is not {kind}", frame.at[index, frame.columns[0]])
            return None
        return value


def _check_tables(pack: Pack) -> list[PackFault]:
    regions = _frame(pack, "regions")
    region_codes = set() if regions is None else set(regions["code"].astype(str).str.strip())
    grids = _frame(pack, "grids")
    grid_codes = set() if grids is None else set(grids["code"].astype(str).str.strip())
    posts = _frame(pack, "posts")
    stations = set() if posts is None or "level" not in posts else set(posts.loc[posts["level"] == "station", "code"])
    departments = pack.tables.get("departments")
    categories = pack.tables.get("categories")
    department_codes = set() if departments is None else set(departments["code"])
    category_codes = set() if categories is None else set(categories["code"])
    faults: list[PackFault] = []
    if departments is not None:
        faults += _check_departments(pack, departments)
    if categories is not None:
        faults += _check_categories(pack, categories)
    if (rules := pack.tables.get("routing_rules")) is not None:
        faults += _check_rules(pack, rules, category_codes, department_codes, region_codes, stations)
    if (users := pack.tables.get("users")) is not None:
        has_parents = regions is not None and "parent_code" in regions.columns
        parents = dict(zip(regions["code"], regions["parent_code"], strict=True)) if has_parents else {}
        faults += _check_users(pack, users, region_codes, department_codes, grid_codes, parents)
    if (duties := pack.tables.get("duties")) is not None:
        faults += _check_duties(pack, duties, region_codes | grid_codes)
    if (people := pack.tables.get("key_people")) is not None:
        workers = set() if users is None else set(users.loc[users["role"] == "grid_worker", "username"])
        faults += _check_key_people(pack, people, grid_codes, workers)
    return faults


def _check_key_people(pack: Pack, frame: pd.DataFrame, grid_codes: set[str], workers: set[str]) -> list[PackFault]:
    """The key people register: a known kind and grid, a whole visit cycle, a grid worker of the pack responsible."""
    rows = _Rows(pack, "key_people")
    rows.required(frame, ("name", "kind", "grid_code", "visit_cycle_days"), "grid_code")
    seen: dict[tuple[str, str, str], int] = {}
    for index, row in frame.iterrows():
        grid = row["grid_code"] or None
        for column, longest in KEY_PERSON_LENGTHS.items():
            if len(row[column]) > longest:
                rows.add(index, column, f"{column} is at most {longest} characters", grid)
        if row["kind"] and row["kind"] not in KEY_PERSON_KINDS:
            rows.add(index, "kind", f"kind {row['kind']!r} is not one of {', '.join(KEY_PERSON_KINDS)}", grid)
        if row["grid_code"] and row["grid_code"] not in grid_codes:
            rows.add(index, "grid_code", f"grid {row['grid_code']!r} is not in the pack's grids", grid)
        if row["visit_cycle_days"] and (days := rows.number(frame, index, "visit_cycle_days", whole=True)) is not None:
            if not 1 <= days <= 3660:
                rows.add(index, "visit_cycle_days", "visit_cycle_days is a whole number of days from 1 to 3660", grid)
        if row["responsible_username"] and row["responsible_username"] not in workers:
            rows.add(index, "responsible_username",
                     f"{row['responsible_username']!r} is not a grid worker in users.csv", grid)  # fmt: skip
        identity = (row["grid_code"], row["name"], row["id_number"])
        if identity in seen:
            again = f"the same person (grid, name, ID number) is also on line {seen[identity] + 2}"
            rows.add(index, "name", again, grid)
        seen.setdefault(identity, index)
    return rows.faults


def _check_duties(pack: Pack, frame: pd.DataFrame, unit_codes: set[str]) -> list[PackFault]:
    """The duty list: codes unique, level grid or community, a whole number of days ≥ 1, a known region."""
    rows = _Rows(pack, "duties")
    rows.required(frame, ("code", "name", "level", "every_days"), "code")
    rows.unique(frame, "code")
    for index, row in frame.iterrows():
        code = row["code"] or None
        if len(row["code"]) > 50 or len(row["name"]) > 200:
            rows.add(index, "code", "code is at most 50 characters, name at most 200", code)
        if row["level"] and row["level"] not in ("grid", "community"):
            rows.add(index, "level", f"level {row['level']!r} is not grid or community", code)
        if row["every_days"] and (days := rows.number(frame, index, "every_days", whole=True)) is not None:
            if not 1 <= days <= 3660:
                rows.add(index, "every_days", "every_days is a whole number of days from 1 to 3660", code)
        if row["region_code"] and row["region_code"] not in unit_codes:
            rows.add(index, "region_code", f"region {row['region_code']!r} is not in the pack's regions or grids", code)
    return rows.faults


def _check_departments(pack: Pack, frame: pd.DataFrame) -> list[PackFault]:
    rows = _Rows(pack, "departments")
    rows.required(frame, ("code", "name"), "code")
    rows.unique(frame, "code")
    parents = dict(zip(frame["code"], frame["parent_code"], strict=True))
    for index, (code, parent) in enumerate(zip(frame["code"], frame["parent_code"], strict=True)):
        if parent and parent not in parents:
            rows.add(index, "parent_code", f"parent department {parent!r} is not in departments.csv", code)
        seen, at = {code}, parent
        while at in parents and at:  # a department may not be its own ancestor
            if at in seen:
                rows.add(index, "parent_code", "departments' parents form a cycle", code)
                break
            seen.add(at)
            at = parents[at]
    return rows.faults


def _check_categories(pack: Pack, frame: pd.DataFrame) -> list[PackFault]:
    rows = _Rows(pack, "categories")
    rows.required(frame, ("code", "name", "accept_hours", "handle_hours"), "code")
    rows.unique(frame, "code")
    parents = dict(zip(frame["code"], frame["parent_code"], strict=True))
    for index, row in frame.iterrows():
        code, parent = row["code"], row["parent_code"]
        if parent and parent not in parents:
            rows.add(index, "parent_code", f"parent category {parent!r} is not in categories.csv", code)
        elif parent and parents[parent]:
            rows.add(index, "parent_code", f"{parent!r} is itself a subcategory; categories have two levels", code)
        for column in ("accept_hours", "handle_hours", "urgent_accept_hours", "urgent_handle_hours",
                       *DUPLICATE_COLUMNS):  # fmt: skip
            if row[column] and (value := rows.number(frame, index, column)) is not None and value <= 0:
                rows.add(index, column, f"{column} must be more than 0", code)
        if bool(row["urgent_accept_hours"]) != bool(row["urgent_handle_hours"]):
            rows.add(index, "urgent_handle_hours", "give both urgent deadlines or neither", code)
        for flag in ("small_matter", "sensitive"):
            if row[flag].strip().lower() not in TRUE + FALSE:
                rows.add(index, flag, f"{row[flag]!r} is not true or false", code)
        if row["attributes"].strip():
            try:
                checked_definitions(json.loads(row["attributes"]))
            except (ValueError, AttributeProblem) as exc:  # JSONDecodeError is a ValueError
                rows.add(index, "attributes", f"not a list of Open311 attribute definitions: {exc}", code)
    return rows.faults


def _check_rules(
    pack: Pack,
    frame: pd.DataFrame,
    categories: set[str],
    departments: set[str],
    regions: set[str],
    stations: set[str],
) -> list[PackFault]:
    rows = _Rows(pack, "routing_rules")
    rows.required(frame, ("id", "category_code", "department_code"), "id")
    rows.unique(frame, "id")
    for index, row in frame.iterrows():
        rule = row["id"] or None
        if row["id"]:
            rows.number(frame, index, "id", whole=True)
        if row["priority"]:
            rows.number(frame, index, "priority", whole=True)
        if row["category_code"] and row["category_code"] not in categories:
            rows.add(index, "category_code", f"unknown category {row['category_code']!r}", rule)
        if row["department_code"] and row["department_code"] not in departments:
            rows.add(index, "department_code", f"unknown department {row['department_code']!r}", rule)
        if row["region_code"] and row["region_code"] not in regions:
            rows.add(index, "region_code", f"region {row['region_code']} is not in the pack's regions", rule)
        if bool(row["place_type"]) != bool(row["place_distance_m"]):
            rows.add(index, "place_distance_m", "a place condition needs both place_type and place_distance_m", rule)
        elif row["place_distance_m"] and (d := rows.number(frame, index, "place_distance_m")) is not None and d <= 0:
            rows.add(index, "place_distance_m", "place_distance_m must be more than 0", rule)
        zone = row["zone_layer"]
        if zone and not (zone.startswith("station_area:") and zone.removeprefix("station_area:") in stations):
            rows.add(index, "zone_layer", f"zone {zone!r} is not station_area:<a station in posts>", rule)
    return rows.faults


def _check_users(
    pack: Pack,
    frame: pd.DataFrame,
    regions: set[str],
    departments: set[str],
    grids: set[str],
    parents: dict[str, str],
) -> list[PackFault]:
    rows = _Rows(pack, "users")
    rows.required(frame, ("username", "role"), "username")
    rows.unique(frame, "username")
    roles = {r.value for r in Role}
    for index, row in frame.iterrows():
        user, role, region = row["username"] or None, row["role"], row["region_code"]
        if role and role not in roles:
            rows.add(index, "role", f"role {role!r} is not one of {', '.join(sorted(roles))}", user)
        if role in SCOPED_BY_REGION and not region:
            rows.add(index, "region_code", f"a {role} is scoped to a region: give region_code", user)
        if region and region not in regions:
            rows.add(index, "region_code", f"region {region} is not in the pack's regions", user)
        if role == Role.handler.value and not row["department_code"]:
            rows.add(index, "department_code", "a handler belongs to a department: give department_code", user)
        if row["department_code"] and row["department_code"] not in departments:
            rows.add(index, "department_code", f"unknown department {row['department_code']!r}", user)
        if row["password_hash"] and not ARGON2.match(row["password_hash"]):
            rows.add(index, "password_hash", "is not an argon2 hash; leave it empty for a one-time password", user)
        if row["must_change_password"].lower() not in TRUE + FALSE:
            rows.add(index, "must_change_password", f"{row['must_change_password']!r} is not true or false", user)
        served = [g.strip() for g in row["grids"].split(";") if g.strip()]
        if served and role != Role.grid_worker.value:
            rows.add(index, "grids", "only grid workers serve grids", user)
        for grid in served:
            if grid not in grids:
                rows.add(index, "grids", f"grid {grid} is not in the pack's grids", user)
            elif region in regions and region not in _ancestors(grid[:12], parents):
                rows.add(index, "grids", f"grid {grid} lies outside the user's region {region}", user)
    return rows.faults


def _ancestors(code: str, parents: dict[str, str]) -> set[str]:
    """A region and every region above it."""
    found: set[str] = set()
    while code and code not in found:
        found.add(code)
        code = parents.get(code, "")
    return found
