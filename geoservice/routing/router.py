"""The in-process router: everything "where is this point" needs, for one boundary version.

Built from PostGIS by ``geoservice.routing.loader`` and immutable afterwards, so a worker swaps a
whole router at once when a version is published and no request ever sees half of one.

* grid: ``RasterIndex`` over the grids (covers + smallest code), else the nearest grid within
  the snap tolerance (``snapped_m``), measured in the city's metric CRS;
* community, town, city: by the grid's codes;
* station: the one whose jurisdiction covers the point (same index kind), else the nearest;
* for each post level: the nearest post (k-d tree on metric coordinates), its distance in metres
  and whether the point is inside that level's ring.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import shapely
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from geoservice.routing.raster_index import NO_POLYGON, RasterIndex
from geoservice.routing.rules import EventFacts, Rule, Verdict, decide, explain
from layers.crs import metric_transformer, project
from layers.models import POST_LEVELS

BRUTE_FORCE_POSTS = 2_000


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
    """Posts of one level (or the stations), with a k-d tree over their metric coordinates."""

    codes: NDArray[np.str_]
    names: NDArray[np.str_]
    xy: NDArray[np.float64]  # metric
    tree: cKDTree | None = field(init=False)

    def __post_init__(self) -> None:
        self.tree = cKDTree(self.xy) if len(self.codes) else None
        self._x, self._y = self.xy[:, 0].copy(), self.xy[:, 1].copy()

    def nearest_one(self, x: float, y: float) -> tuple[int, float]:
        """Index and distance (m) of the nearest post to one metric point; (-1, inf) when none.

        A k-d tree query costs ~25 µs of call overhead for one point; scanning a few hundred posts
        with numpy costs ~6 µs, so small sets are scanned and only large ones use the tree.
        """
        if not len(self.codes):
            return -1, float("inf")
        if len(self.codes) > BRUTE_FORCE_POSTS:
            distance, index = self.tree.query((x, y))
            return int(index), float(distance)
        squared = (self._x - x) ** 2 + (self._y - y) ** 2
        k = int(squared.argmin())
        return k, float(squared[k]) ** 0.5

    def nearest(self, xy: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
        """Distance (m) and index of the nearest post for each metric point; (inf, -1) when none."""
        if self.tree is None:
            return np.full(len(xy), np.inf), np.full(len(xy), -1, dtype=np.intp)
        distance, index = self.tree.query(xy)
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
    ) -> None:
        order = np.argsort([g.code for g in grids], kind="stable")  # rank 0 = smallest code
        self.version_id, self.version_name = version_id, version_name
        self.grids = [grids[i] for i in order]
        self.grid_codes = np.array([g.code for g in self.grids])
        self.grid_index = RasterIndex(
            np.asarray(grid_geoms, dtype=object)[order], cell_m=cell_m, cache_dir=index_cache_dir
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
            )
            if self._station_of_area.size
            else None
        )
        self.posts = posts
        self.places = places or {}
        self.rules = rules or []
        self.metric_epsg = metric_epsg
        self.snap_tolerance_m = snap_tolerance_m
        self.rings_m = rings_m
        self._to_metric = metric_transformer(metric_epsg)
        self._metric_tree = shapely.STRtree(project(self.grid_index.polygons, metric_epsg))
        self._code_columns = self._tabulate_codes()

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
            # Bounded search first (cheap); only a point beyond the tolerance, whose 404 must still
            # name the nearest grid, pays for the unbounded one.
            here = np.array([[x, y]])
            near_rank, distance = self._nearest_grid(here, within_m=self.snap_tolerance_m)
            if near_rank[0] >= 0:
                rank, snapped = int(near_rank[0]), float(distance[0])
            else:
                near_rank, distance = self._nearest_grid(here)
                if near_rank[0] >= 0:
                    nearest, nearest_m = self.grids[near_rank[0]], float(distance[0])
        grid = self.grids[rank] if rank != NO_POLYGON else None
        community = self.regions.get(grid.community_code) if grid else None
        town = self.regions.get(community.parent_code) if community and community.parent_code else None
        city = self.regions.get(town.parent_code) if town and town.parent_code else None
        return Location(
            grid=grid, snapped_m=snapped, nearest_grid=nearest, nearest_grid_m=nearest_m,
            community=community, town=town, city=city,
            station=self._station(lon, lat, x, y), posts=self._posts(x, y),
        )  # fmt: skip

    def _station(self, lon: float, lat: float, x: float, y: float) -> StationAnswer | None:
        if not len(self.stations.codes):
            return None
        by_area = self.station_index.locate(lon, lat) if self.station_index else NO_POLYGON
        if by_area != NO_POLYGON:
            k = int(self._station_of_area[by_area])
            sx, sy = self.stations.xy[k]
            distance, by = float(np.hypot(sx - x, sy - y)), "jurisdiction"
        else:
            (k, distance), by = self.stations.nearest_one(x, y), "nearest"
        return StationAnswer(str(self.stations.codes[k]), str(self.stations.names[k]), by, distance)

    def _posts(self, x: float, y: float) -> dict[str, PostAnswer | None]:
        answers: dict[str, PostAnswer | None] = {}
        for level in POST_LEVELS:
            posts = self.posts[level]
            k, d = posts.nearest_one(x, y)
            answers[level] = (
                None if k < 0 else PostAnswer(str(posts.codes[k]), str(posts.names[k]), d, d <= self.rings_m[level])
            )
        return answers

    def _nearest_grid(
        self, xy: NDArray[np.float64], within_m: float | None = None
    ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
        """Nearest grid (smallest code among equally near ones) and its metric distance, per point.

        ``within_m`` bounds the search (much faster for batches, which only need the snap tolerance);
        points with no grid that near get (-1, inf).
        """
        points = shapely.points(xy)
        (point_idx, rank), distance = self._metric_tree.query_nearest(
            points, max_distance=within_m, return_distance=True, all_matches=True
        )
        best_rank = np.full(len(points), np.iinfo(np.int32).max, dtype=np.int64)
        best_distance = np.full(len(points), np.inf)
        np.minimum.at(best_distance, point_idx, distance)
        tied = distance == best_distance[point_idx]
        np.minimum.at(best_rank, point_idx[tied], rank[tied])
        best_rank[best_rank == np.iinfo(np.int32).max] = -1
        return best_rank.astype(np.intp), best_distance

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
        point = shapely.Point(*self._to_metric.transform(lon, lat))
        wanted = {r.place_type for r in self.rules if r.place_type and r.place_type in self.places}
        nearest = {kind: self.places[kind].nearest(point) for kind in sorted(wanted)}
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
            near_rank, distance = self._nearest_grid(xy, within_m=self.snap_tolerance_m)
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
