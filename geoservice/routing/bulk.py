"""Route many points at once: the vectorised path behind ``geoservice route`` and event imports.

Grid, community, town and station come from ``Router.locate_many``. Where a category is given,
the department is decided by the same rules as for one event, evaluated rule by rule over arrays:
rules are tried in the order ``explain`` ranks them (specificity, priority, id), and each row takes
the first rule it matches.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import numpy as np
import shapely
from numpy.typing import NDArray

from geoservice.routing.router import BatchLocation, Router
from geoservice.routing.rules import Rule, category_chain

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

# pandas and pyarrow are imported where they are used, not here: every server worker imports this module
# (re-routing on publish) and few route a batch; together they cost a worker ~70 MB of RSS (measured).
# (``geoservice route`` loads both anyway: pyarrow imports pandas at its first conversion of numpy arrays.)


def route_points(
    router: Router, lon: NDArray[np.float64], lat: NDArray[np.float64], categories: NDArray | None = None
) -> pd.DataFrame:
    """Columns grid_code, community_code, town_code, station_code (+ department, rule_id)."""
    import pandas as pd

    batch = router.locate_many(lon, lat)
    codes = router.codes_of(batch)
    columns: dict[str, NDArray] = dict(codes)
    if categories is not None:
        department, rule_id = _departments(router, batch, codes, lon, lat, np.asarray(categories, dtype=object))
        columns["department"] = department
        columns["rule_id"] = rule_id
    return pd.DataFrame(columns)


def route_arrow(
    router: Router, lon: NDArray[np.float64], lat: NDArray[np.float64], categories: NDArray | None = None
) -> dict[str, pa.Array]:
    """``route_points``' columns as Arrow arrays, for writers that take Arrow (``geoservice route``).

    The codes are taken from each table of codes by index in C++ (``Array.take``): building a
    Python string per point and converting it back cost more than locating the point.
    """
    import pyarrow as pa

    batch = router.locate_many(lon, lat)
    tables = _code_tables(router)
    grid = pa.array(batch.grid.astype(np.int64) + 1)  # -1 (none) takes the table's leading ''
    station = pa.array(batch.station.astype(np.int64) + 1)
    columns = {name: table.take(station if name == "station_code" else grid) for name, table in tables.items()}
    if categories is not None:
        codes = router.codes_of(batch)
        department, rule_id = _departments(router, batch, codes, lon, lat, np.asarray(categories, dtype=object))
        columns["department"] = pa.array(department, type=pa.string())
        columns["rule_id"] = pa.array(rule_id, type=pa.int64())
    return columns


_CODE_TABLES: weakref.WeakKeyDictionary[Router, dict[str, pa.Array]] = weakref.WeakKeyDictionary()


def _code_tables(router: Router) -> dict[str, pa.Array]:
    """Per code column, '' then the code of each grid (or station) by the router's index; once per router."""
    import pyarrow as pa

    tables = _CODE_TABLES.get(router)
    if tables is None:
        every = BatchLocation(
            grid=np.arange(-1, len(router.grid_codes), dtype=np.int64),
            snapped_m=np.full(len(router.grid_codes) + 1, np.nan),
            station=np.arange(-1, len(router.stations.codes), dtype=np.int64),
        )  # fmt: skip
        tables = {name: pa.array(codes, type=pa.string()) for name, codes in router.codes_of(every).items()}
        _CODE_TABLES[router] = tables
    return tables


def _departments(
    router: Router,
    batch: BatchLocation,
    codes: dict[str, NDArray],
    lon: NDArray[np.float64],
    lat: NDArray[np.float64],
    categories: NDArray[np.object_],
) -> tuple[NDArray[np.object_], pd.array]:
    import pandas as pd

    department = np.full(len(lon), "", dtype=object)
    rule_id = np.full(len(lon), -1, dtype=np.int64)
    located = batch.grid >= 0
    regions = (codes["community_code"], codes["town_code"], _city_codes(router, codes["town_code"]))
    station_area = _station_area_codes(router, batch, codes, lon, lat)
    metric: list[NDArray] = []  # the points in metres, computed once and only if a place rule needs it
    for category in pd.unique(categories):
        rows = np.flatnonzero((categories == category) & located)
        undecided = np.ones(rows.size, dtype=bool)
        for rule in _ranked(router.rules, str(category)):
            match = undecided.copy()
            if rule.region_code is not None:
                match &= np.logical_or.reduce([r[rows] == rule.region_code for r in regions])
            if rule.zone_layer is not None:
                match &= station_area[rows] == rule.zone_layer.removeprefix("station_area:")
            if rule.place_type is not None and match.any():
                if not metric:
                    metric.append(np.column_stack(router.to_metric(lon, lat)))
                candidates = rows[match]
                near = _near_place(router, rule.place_type, metric[0][candidates], rule.place_distance_m or 0)
                match[np.flatnonzero(match)[~near]] = False
            department[rows[match]] = rule.department_code
            rule_id[rows[match]] = rule.id
            undecided &= ~match
    return department, pd.array(np.where(rule_id < 0, None, rule_id), dtype="Int64")


def _near_place(router: Router, place_type: str, xy: NDArray[np.float64], within_m: float) -> NDArray[np.bool_]:
    """Whether each metric point lies within ``within_m`` of a place of the type (a bounded search)."""
    places = router.places.get(place_type)
    near = np.zeros(len(xy), dtype=bool)
    if places is None or not len(xy):
        return near
    point_idx, _ = places.tree.query_nearest(shapely.points(xy), max_distance=within_m)
    near[point_idx] = True
    return near


def _ranked(rules: list[Rule], category: str) -> list[Rule]:
    chain = category_chain(category)
    return sorted((r for r in rules if r.category_code in chain), key=lambda r: (-r.specificity, -r.priority, r.id))


def _city_codes(router: Router, towns: NDArray[np.object_]) -> NDArray[np.object_]:
    import pandas as pd

    city_of = {t: (router.regions[t].parent_code or "") if t in router.regions else "" for t in pd.unique(towns)}
    return pd.Series(towns).map(city_of).to_numpy(dtype=object)


def _station_area_codes(
    router: Router, batch: BatchLocation, codes: dict[str, NDArray], lon: NDArray, lat: NDArray
) -> NDArray[np.object_]:
    """The station code where the point is inside that station's jurisdiction, else ''."""
    if router.station_index is None:
        return np.full(len(lon), "", dtype=object)
    inside = router.station_index.locate_many(lon, lat) >= 0
    return np.where(inside, codes["station_code"], "")
