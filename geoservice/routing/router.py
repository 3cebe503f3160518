"""The in-process router: everything "where is this point" needs, for one boundary version.

Built from PostGIS by ``geoservice.routing.loader`` and immutable afterwards, so a worker swaps a
whole router at once when a version is published and no request ever sees half of one.

* grid: ``RasterIndex`` over the grids (covers + smallest code), else the nearest grid within
  the snap tolerance (``snapped_m``), measured in the city's metric CRS;
* community, town, city: by the grid's codes;
* station: the one whose jurisdiction covers the point (same index kind), else the nearest;
* for each post level: the nearest post (candidate cells over metric coordinates), its distance in metres
  and whether the point is inside that level's ring.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
import pyproj
import shapely
from numpy.typing import NDArray

from geoservice.infra.memory import give_back_freed_memory
from geoservice.routing.index_store import DatabaseIndexStore
from geoservice.routing.nearest_grid import NearestGrid
from geoservice.routing.raster_index import NO_POLYGON, RasterIndex
from geoservice.routing.rules import EventFacts, Rule, Verdict, decide, explain
from layers.crs import metric_transformer
from layers.enums import POST_LEVELS

MAX_POST_CELLS = 250_000  # per post level: a few MB of candidate lists at most
# Around the grids and posts, the cells reach this far out: a phone just across the city's border
# (the bench's points outside every grid lie up to 16 km out) gets the cells' answers, not scans.
OUTSIDE_MARGIN_M = 20_000.0


@dataclass(frozen=True)
class Region:
    """A city, town or community of the version."""

    code: str
    name: str
    level: str
    parent_code: str | None


@dataclass(frozen=True)
class GridRecord:
    """What a locate answer says about a grid."""

    code: str
    name: str
    community_code: str
    workers: tuple[str, ...]
    officer: str | None


@dataclass
class PostSet:
    """Posts of one level (or the stations), and their candidate cells over the city.

    A point's nearest post is found through ``index_area``'s cells: each cell of a square grid over
    the area keeps every post that can be the nearest to some point in it (a few), so a query is one
    cell lookup and a handful of distances (in plain Python floats for one point, in numpy for many).
    Points off the cells (far outside the city) scan every post. All paths measure the same way
    (``(px - x)² + (py - y)²``, the root of the least) and keep the first least in code order, so they
    give the same post and the same metres, the smallest code on a tie as PostGIS ``ORDER BY
    distance, code``.

    No k-d tree (scipy): the cells answer the many-point queries too, and building them takes shapely's
    R-tree; scipy.spatial alone cost every ``geoservice route`` and every server worker ~0.3 s and
    ~20-40 MB of RSS at start (measured).
    """

    codes: NDArray[np.str_]
    names: NDArray[np.str_]
    xy: NDArray[np.float64]  # metric

    def __post_init__(self) -> None:
        self._x, self._y = self.xy[:, 0].copy(), self.xy[:, 1].copy()
        # Plain Python values for the single-point path: numpy scalars cost ~0.1-1 µs per touch.
        self.size = len(self.codes)
        self.code_list: list[str] = [str(c) for c in self.codes]
        self.name_list: list[str] = [str(n) for n in self.names]
        self.x_list: list[float] = self._x.tolist()
        self.y_list: list[float] = self._y.tolist()
        self._cells: list[tuple[tuple[int, float, float], ...]] | None = None
        # The same candidates as arrays, for many points: cell c's are _cell_posts[_cell_start[c] : _cell_start[c + 1]].
        self._cell_start = np.zeros(1, dtype=np.intp)
        self._cell_posts = np.zeros(0, dtype=np.intp)
        self._grid = (0.0, 0.0, 1.0, 0, 0)  # x0, y0, side, nx, ny

    def index_area(self, bounds: tuple[float, float, float, float]) -> None:
        """Cells over ``bounds`` (metric), each with the posts that can be nearest to a point in it.

        A cell of side ``s`` and centre ``c``, whose nearest post ``q`` is ``d`` away: for a point
        ``x`` in the cell, its nearest post ``p`` is no farther than ``q`` (``d + s/√2`` at most),
        so ``p`` is within ``d + s·√2`` of ``c`` (every post tied for nearest too). Those posts
        are the cell's candidates, found with an R-tree over the posts at build time (1 m of slack
        for a point that rounding puts a hair outside its cell).
        """
        if not self.size:
            return
        minx, miny, maxx, maxy = bounds
        width, height = max(maxx - minx, 1.0), max(maxy - miny, 1.0)
        side = max(math.sqrt(width * height / self.size) / 2, math.sqrt(width * height / MAX_POST_CELLS), 1.0)
        nx, ny = int(width // side) + 1, int(height // side) + 1
        cx, cy = np.meshgrid(minx + (np.arange(nx) + 0.5) * side, miny + (np.arange(ny) + 0.5) * side)
        centres = shapely.points(cx.ravel(), cy.ravel())  # row j, column i at j * nx + i
        tree = shapely.STRtree(shapely.points(self.xy))
        (cell, post), distance = tree.query_nearest(centres, return_distance=True, all_matches=False)
        nearest = np.full(len(centres), np.inf)
        nearest[cell] = distance
        cell, post = tree.query(centres, predicate="dwithin", distance=nearest + side * math.sqrt(2) + 1.0)
        order = np.lexsort((post, cell))  # by cell, then in code order
        cell, post = cell[order], post[order]
        self._cell_start = np.searchsorted(cell, np.arange(len(centres) + 1)).astype(np.intp)
        self._cell_posts = post.astype(np.intp)
        xs, ys, start, ks = self.x_list, self.y_list, self._cell_start.tolist(), self._cell_posts.tolist()
        self._cells = [tuple((k, xs[k], ys[k]) for k in ks[start[c] : start[c + 1]]) for c in range(len(centres))]
        self._grid = (float(minx), float(miny), float(side), nx, ny)

    def nearest_one(self, x: float, y: float) -> tuple[int, float]:
        """Index and distance (m) of the nearest post to one metric point; (-1, inf) when none."""
        if not self.size:
            return -1, float("inf")
        x0, y0, side, nx, ny = self._grid
        fx, fy = (x - x0) / side, (y - y0) / side
        if self._cells is not None and 0.0 <= fx < nx and 0.0 <= fy < ny:  # NaN fails too
            best, found = math.inf, -1
            for k, px, py in self._cells[int(fy) * nx + int(fx)]:
                dx, dy = px - x, py - y
                squared = dx * dx + dy * dy
                if squared < best:
                    best, found = squared, k
            return found, best**0.5
        squared = (self._x - x) ** 2 + (self._y - y) ** 2
        k = int(squared.argmin())
        return k, float(squared[k]) ** 0.5

    def nearest(self, xy: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
        """Distance (m) and index of the nearest post for each metric point; (inf, -1) when none.

        ``nearest_one`` over arrays: the candidates of each point's cell, or every post off the cells
        (and for NaN); the first least in code order, so the same post as one point at a time (the
        metres may differ in the last bit: numpy's square root against Python's ``** 0.5``).
        """
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        distance, index = np.full(len(xy), np.inf), np.full(len(xy), -1, dtype=np.intp)
        if not self.size or not len(xy):
            return distance, index
        x0, y0, side, nx, ny = self._grid
        fx, fy = (xy[:, 0] - x0) / side, (xy[:, 1] - y0) / side
        on_cells = (fx >= 0) & (fx < nx) & (fy >= 0) & (fy < ny)  # NaN fails too
        if self._cells is None:
            on_cells[:] = False
        rows = np.flatnonzero(on_cells)
        if rows.size:
            cell = fy[rows].astype(np.intp) * nx + fx[rows].astype(np.intp)
            first, count = self._cell_start[cell], np.diff(self._cell_start)[cell]
            # One (point, candidate) pair per candidate: pair j of point r is its cell's candidate
            # number j - (pairs before r), i.e. _cell_posts[first[r] - (pairs before r) + j].
            pair_row = np.repeat(np.arange(rows.size), count)
            before = np.cumsum(count) - count
            pair_post = self._cell_posts[np.repeat(first - before, count) + np.arange(int(count.sum()))]
            dx, dy = self._x[pair_post] - xy[rows[pair_row], 0], self._y[pair_post] - xy[rows[pair_row], 1]
            squared = dx * dx + dy * dy
            order = np.lexsort((pair_post, squared, pair_row))  # per point: least, then first in code order
            best = order[np.r_[True, pair_row[order][1:] != pair_row[order][:-1]]]
            index[rows[pair_row[best]]] = pair_post[best]
            distance[rows[pair_row[best]]] = squared[best] ** 0.5
        block = max(1, 4_000_000 // self.size)  # off the cells: every post, a block of points at a time
        for start in range(0, len(xy), block):
            rest = np.flatnonzero(~on_cells[start : start + block]) + start
            if rest.size:
                squared = (self._x[None, :] - xy[rest, :1]) ** 2 + (self._y[None, :] - xy[rest, 1:]) ** 2
                k = squared.argmin(axis=1)  # the first least: code order
                index[rest] = k
                distance[rest] = squared[np.arange(rest.size), k] ** 0.5
        return distance, index


@dataclass(frozen=True)
class PostAnswer:
    """The nearest post of one level."""

    code: str
    name: str
    distance_m: float
    within_ring: bool


@dataclass(frozen=True)
class StationAnswer:
    """The police station responsible for a point."""

    code: str
    name: str
    by: str  # "jurisdiction" | "nearest"
    distance_m: float


@dataclass(frozen=True)
class Location:
    """The router's answer for one point; ``grid`` None means outside every grid beyond tolerance."""

    grid: GridRecord | None
    snapped_m: float | None
    nearest_grid: GridRecord | None
    nearest_grid_m: float | None
    community: Region | None
    town: Region | None
    city: Region | None
    station: StationAnswer | None
    posts: dict[str, PostAnswer | None]


@dataclass
class PlaceSet:
    """Key places of one type, for rules such as "within 200 m of a school" (metric geometries)."""

    names: NDArray[np.str_]
    geoms: NDArray[np.object_]
    tree: shapely.STRtree = field(init=False)

    def __post_init__(self) -> None:
        self.tree = shapely.STRtree(self.geoms)

    def nearest(self, point: shapely.Point) -> tuple[str, float]:
        """Name of the nearest place and its distance in metres (0 inside a polygon)."""
        index, distance = self.tree.query_nearest(point, return_distance=True)
        return str(self.names[index[0]]), float(distance[0])


@dataclass(frozen=True)
class RoutedEvent:
    """Where an event goes: its location, department, the deciding rule and why."""

    location: Location
    department_code: str | None
    rule_id: int | None
    reason: str


@dataclass(frozen=True)
class BatchLocation:
    """Vectorised answers: indexes into the router's tables (-1 for none)."""

    grid: NDArray[np.int32]
    snapped_m: NDArray[np.float64]  # NaN where the grid covers the point (or none is near)
    station: NDArray[np.intp]


class Router:
    """Answers for one boundary version; built once, then only read (safe to share across threads)."""

    def __init__(
        self,
        *,
        version_id: int,
        version_name: str,
        grids: list[GridRecord],
        grid_geoms: NDArray[np.object_],
        regions: dict[str, Region],
        stations: PostSet,
        jurisdictions: NDArray[np.object_],
        posts: dict[str, PostSet],
        metric_epsg: int,
        snap_tolerance_m: float,
        rings_m: dict[str, float],
        places: dict[str, PlaceSet] | None = None,
        rules: list[Rule] | None = None,
        cell_m: float = 30.0,
        index_cache_dir: str | os.PathLike | None = None,
        index_store: DatabaseIndexStore | None = None,
    ) -> None:
        order = np.argsort([g.code for g in grids], kind="stable")  # rank 0 = smallest code
        self.version_id, self.version_name = version_id, version_name
        self.grids = [grids[i] for i in order]
        self.grid_codes = np.array([g.code for g in self.grids])
        self.grid_index = RasterIndex(
            np.asarray(grid_geoms, dtype=object)[order], cell_m=cell_m, cache_dir=index_cache_dir, shared=index_store
        )
        self.regions = regions
        self.stations = stations
        station_order = np.argsort(stations.codes, kind="stable")
        has_area = np.array([g is not None and not g.is_empty for g in jurisdictions], dtype=bool)
        self._station_of_area = station_order[has_area[station_order]]
        self.station_index = (
            RasterIndex(
                np.asarray(jurisdictions, dtype=object)[self._station_of_area],
                cell_m=cell_m * 4,
                cache_dir=index_cache_dir,
                shared=index_store,
            )
            if self._station_of_area.size
            else None
        )
        self.posts = posts
        self.places = places or {}
        self.rules = rules or []
        # The place types some rule asks about (the rules and places are this router's for life).
        self._wanted_places = sorted({r.place_type for r in self.rules if r.place_type and r.place_type in self.places})
        self.metric_epsg = metric_epsg
        self.snap_tolerance_m = snap_tolerance_m
        self.rings_m = rings_m
        self._to_metric = metric_transformer(metric_epsg, remember_in=index_cache_dir)
        self._nearest_grids = NearestGrid(self.grid_index.polygons, metric_epsg, keep=self.grid_index.edge_ranks(),
                                          index_later=self.index_outside_points)  # fmt: skip
        self._code_columns = self._tabulate_codes()
        # Resolved once here, not per answer: each grid's community, town and city; the station
        # areas' station as plain ints; the posts' candidate cells over the grids and the posts.
        self._chain = [self._regions_of(grid) for grid in self.grids]
        self._station_of_area_list: list[int] = self._station_of_area.tolist()
        minx, miny, maxx, maxy = _metric_area(self._nearest_grids.envelopes, [stations, *posts.values()])
        m = OUTSIDE_MARGIN_M
        area = (minx - m, miny - m, maxx + m, maxy + m)
        for post_set in (stations, *posts.values()):
            post_set.index_area(area)
        self._area = area

    def _regions_of(self, grid: GridRecord) -> tuple[GridRecord, Region | None, Region | None, Region | None]:
        community = self.regions.get(grid.community_code)
        town = self.regions.get(community.parent_code) if community and community.parent_code else None
        city = self.regions.get(town.parent_code) if town and town.parent_code else None
        return grid, community, town, city

    def settle_memory(self) -> None:
        """Give back what building its indexes left behind, for a process that keeps this router.

        Not part of the build: ``geoservice route`` tests most polygons again right away, and would
        pay to index them twice for memory it frees at exit anyway.
        """
        for index in (self.grid_index, self.station_index):
            if index is not None:
                index.forget_build_caches()
        give_back_freed_memory()

    def index_outside_points(self) -> None:
        """Candidate cells for single points outside every grid (``NearestGrid.index_area``).

        Not part of the build: 0.1-3 s that ``geoservice route`` (many points at once) never needs and
        that a publish should not wait for. The first single point outside every grid starts it in a
        thread of its own (``NearestGrid.one``); until it is done, such points take the R-tree search,
        which gives the same answers. A router that never meets one never pays it.
        """
        inverse = pyproj.enums.TransformDirection.INVERSE

        def covered(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.bool_]:
            return self.grid_index.locate_many(*self._to_metric.transform(x, y, direction=inverse)) != NO_POLYGON

        self._nearest_grids.index_area(self._area, covered=covered)

    def to_metric(self, lon: NDArray, lat: NDArray) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """WGS84 to the city's metric CRS (for distances)."""
        return self._to_metric.transform(lon, lat)

    # --- one point -------------------------------------------------------------------------------
    def locate(self, lon: float, lat: float) -> Location:
        """Everything the design's locate answer holds, for one WGS84 point."""
        rank = self.grid_index.locate(lon, lat)
        x, y = self._to_metric.transform(lon, lat)
        snapped = nearest = nearest_m = None
        if rank == NO_POLYGON:
            # One search: the nearest grid is the snap when within the tolerance, else the one a 404 names.
            near_rank, distance = self._nearest_grids.one(x, y)
            if near_rank != NO_POLYGON and distance <= self.snap_tolerance_m:
                rank, snapped = near_rank, distance
            elif near_rank != NO_POLYGON:
                nearest, nearest_m = self.grids[near_rank], distance
        grid, community, town, city = self._chain[rank] if rank != NO_POLYGON else (None, None, None, None)
        return Location(
            grid=grid, snapped_m=snapped, nearest_grid=nearest, nearest_grid_m=nearest_m,
            community=community, town=town, city=city,
            station=self._station(lon, lat, x, y), posts=self._posts(x, y),
        )  # fmt: skip

    def _station(self, lon: float, lat: float, x: float, y: float) -> StationAnswer | None:
        stations = self.stations
        if not stations.size:
            return None
        by_area = self.station_index.locate(lon, lat) if self.station_index else NO_POLYGON
        if by_area != NO_POLYGON:
            k = self._station_of_area_list[by_area]
            # np.hypot as before (math.hypot rounds differently in the last bit now and then).
            distance = float(np.hypot(stations.x_list[k] - x, stations.y_list[k] - y))
            return StationAnswer(stations.code_list[k], stations.name_list[k], "jurisdiction", distance)
        k, distance = stations.nearest_one(x, y)
        return StationAnswer(stations.code_list[k], stations.name_list[k], "nearest", distance)

    def _posts(self, x: float, y: float) -> dict[str, PostAnswer | None]:
        answers: dict[str, PostAnswer | None] = {}
        rings = self.rings_m
        for level in POST_LEVELS:
            posts = self.posts[level]
            k, d = posts.nearest_one(x, y)
            answers[level] = None if k < 0 else PostAnswer(posts.code_list[k], posts.name_list[k], d, d <= rings[level])
        return answers

    # --- department routing ----------------------------------------------------------------------
    def route(self, lon: float, lat: float, category_code: str) -> RoutedEvent:
        """Locate the event and pick its department by the routing rules."""
        location = self.locate(lon, lat)
        rule, reason = decide(self.rules, self.facts(location, lon, lat, category_code))
        department = rule.department_code if rule else None
        return RoutedEvent(location, department, rule.id if rule else None, reason)

    def explain(self, lon: float, lat: float, category_code: str) -> tuple[Location, list[Verdict]]:
        """Every candidate rule for this event, and why it won or lost."""
        location = self.locate(lon, lat)
        return location, explain(self.rules, self.facts(location, lon, lat, category_code))

    def facts(self, location: Location, lon: float, lat: float, category_code: str) -> EventFacts:
        """What the rules may ask about this place: regions, nearby place types, station area."""
        regions = frozenset(r.code for r in (location.community, location.town, location.city) if r)
        nearest: dict[str, tuple[str, float]] = {}
        if self._wanted_places:
            point = shapely.Point(*self._to_metric.transform(lon, lat))
            nearest = {kind: self.places[kind].nearest(point) for kind in self._wanted_places}
        area = location.station.code if location.station and location.station.by == "jurisdiction" else None
        return EventFacts(category_code, regions, nearest, area)

    # --- many points -----------------------------------------------------------------------------
    def locate_many(self, lon: NDArray[np.float64], lat: NDArray[np.float64]) -> BatchLocation:
        """Grid (with snapping) and station for arrays of WGS84 points; NaN coordinates get -1."""
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        grid = self.grid_index.locate_many(lon, lat)
        snapped = np.full(lon.shape, np.nan)
        valid = np.isfinite(lon) & np.isfinite(lat)
        missed = np.flatnonzero((grid == NO_POLYGON) & valid)
        if missed.size:
            xy = np.column_stack(self._to_metric.transform(lon[missed], lat[missed]))
            near_rank, distance = self._nearest_grids.many(xy, self.snap_tolerance_m)
            close = (near_rank >= 0) & (distance <= self.snap_tolerance_m)
            grid[missed[close]] = near_rank[close]
            snapped[missed[close]] = distance[close]
        return BatchLocation(grid, snapped, self._stations_many(lon, lat, valid))

    def _stations_many(self, lon: NDArray, lat: NDArray, valid: NDArray[np.bool_]) -> NDArray[np.intp]:
        station = np.full(lon.shape, -1, dtype=np.intp)
        if not len(self.stations.codes):
            return station
        if self.station_index is not None:
            by_area = self.station_index.locate_many(lon, lat)
            covered = by_area != NO_POLYGON
            station[covered] = self._station_of_area[by_area[covered]]
        rest = np.flatnonzero((station < 0) & valid)
        if rest.size:
            xy = np.column_stack(self._to_metric.transform(lon[rest], lat[rest]))
            station[rest] = self.stations.nearest(xy)[1]
        return station

    def codes_of(self, batch: BatchLocation) -> dict[str, NDArray[np.object_]]:
        """grid, community, town and station codes for a batch ('' where none)."""
        # Each table ends with '' so that index -1 (none) reads as an empty code.
        return {
            "grid_code": self._code_columns["grid_code"][batch.grid],
            "community_code": self._code_columns["community_code"][batch.grid],
            "town_code": self._code_columns["town_code"][batch.grid],
            "station_code": self._code_columns["station_code"][batch.station],
        }

    def _tabulate_codes(self) -> dict[str, NDArray[np.object_]]:
        communities = [g.community_code for g in self.grids]
        towns = [self.regions[c].parent_code or "" if c in self.regions else "" for c in communities]
        return {
            "grid_code": np.array([*self.grid_codes, ""], dtype=object),
            "community_code": np.array([*communities, ""], dtype=object),
            "town_code": np.array([*towns, ""], dtype=object),
            "station_code": np.array([*self.stations.codes, ""], dtype=object),
        }


def _metric_area(grid_envelopes: NDArray[np.float64], post_sets: list[PostSet]) -> tuple[float, float, float, float]:
    """Metric bounds of the grids and every post: where single points get the posts' cells."""
    e = grid_envelopes
    boxes = [(e[:, 0].min(), e[:, 1].min(), e[:, 2].max(), e[:, 3].max())] if len(e) else []
    boxes += [(*p.xy.min(axis=0), *p.xy.max(axis=0)) for p in post_sets if p.size]
    if not boxes:
        return 0.0, 0.0, 1.0, 1.0
    b = np.asarray(boxes, dtype=np.float64)
    if not np.isfinite(b).all():
        b = b[np.isfinite(b).all(axis=1)]
    if not len(b):
        return 0.0, 0.0, 1.0, 1.0
    return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())
