"""The nearest grid to a point outside every grid, in metres, without a metric copy of the city.

Snapping (a point within the tolerance of a grid) and the 404 that names the nearest grid both measure
from the point to grid polygons in the city's metric CRS. Until issue 23 the router kept every grid
projected for that: on the prefecture (6,000 grids, 1.2 M vertices) the copy was ~57 MB of a worker's
~350 MB, to answer the few points that fall outside every grid, always near the city's edge.

Here the router keeps only a metric envelope of each grid (32 bytes a grid: a box that holds the grid,
made without projecting its vertices, ``metric_envelopes``) in an R-tree, and projects a grid when a
query first needs it, keeping it for the next query (up to ``KEPT_GRIDS``). Exact, since a polygon is
never nearer than a box that holds it:

* within ``r`` metres: the grids whose envelope is within ``r``, measured exactly, those within ``r``;
* unbounded: the nearest envelope's grid gives an upper bound ``D`` on the answer, then as above
  with ``r = D``.

The grids a point outside every grid can be nearest to touch the edge of the coverage (the city's
outline, or a gap between grids), so the router hands over those the raster index finds next to its
empty cells (``RasterIndex.edge_ranks``) to be projected at once: then even the first such point pays
no projection, and the city's interior is never projected at all.

The distances are GEOS's point-to-polygon distances on the same projected polygons as before (pyproj
projects each vertex alone, so one grid projected by itself equals that grid projected with the rest),
and ties go to the smallest rank (smallest code), as PostGIS ``ORDER BY distance, code``.

A single point first looks in ``index_area``'s cells (as the router's posts do): each cell of a square
grid over the city and its surroundings lists the grids that can be nearest to a point in it, so the
answer is one GEOS distance per candidate (a few). The R-tree search above took four shapely calls
and ~70 µs a point (issue 22); points off the cells still take it, and so do those that come while the
cells are being built (in a thread the first of them starts: 1-3 s that most routers never need).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

import numpy as np
import shapely
from numpy.typing import NDArray

from layers.crs import metric_transformer, project

log = logging.getLogger(__name__)
CellIndex = tuple[tuple[float, float, float, int, int], NDArray[np.int64], NDArray[np.int32]]
Covered = Callable[[NDArray[np.float64], NDArray[np.float64]], NDArray[np.bool_]]  # metric x, y: inside a grid?

NONE = -1
SLACK = 1e-9  # relative: an envelope as near as its grid may measure a hair farther (other segments, other rounding)
KEPT_GRIDS = 4_096  # grids projected by queries and kept, beyond those kept from the start
BOX_SEGMENT_DEG = 0.02  # a lon/lat box's outline is projected through a point this often (~2 km): see metric_envelopes
ENVELOPE_MARGIN_M = 1.0  # each projected box widened by this: far more than its outline's sampling can miss
CELLS_PER_GRID = 32  # candidate cells per grid over the area, within these bounds:
MIN_CELLS, MAX_CELLS = 2_000, 50_000  # 1.3-2.8 s of build, in a thread, on the bench cities (bench/RESULTS.md)
BLOCK_CELLS = 5_000  # cells whose candidates are found at a time (bounds the grids projected at once)
CELL_SLACK_M = 1.0  # a point that rounding puts a hair outside its cell


class NearestGrid:
    """Nearest grid (rank, metres) to metric points; the grids are lon/lat polygons in rank order."""

    def __init__(
        self,
        polygons: NDArray[np.object_],
        metric_epsg: int,
        keep: NDArray[np.intp] | None = None,
        index_later: Callable[[], None] | None = None,
    ) -> None:
        """``keep``: grids to project now and keep, those a point outside every grid is nearest to (the edges).

        ``index_later``: what builds the cells (the router's ``index_outside_points``), started in a
        thread by the first point that ``one`` answers without them.
        """
        self._polygons = polygons
        self._epsg = metric_epsg
        envelopes = metric_envelopes(polygons, metric_epsg)
        self.envelopes = envelopes
        self._tree = shapely.STRtree(shapely.box(*envelopes.T)) if len(polygons) else None
        kept = [] if keep is None else np.unique(keep).tolist()
        self._kept: dict[int, shapely.Geometry] = dict(zip(kept, project(polygons[kept], metric_epsg), strict=True))
        self._room = len(self._kept) + KEPT_GRIDS
        # ((x0, y0, side, nx, ny), starts, ranks): cell c's candidates are ranks[starts[c] : starts[c + 1]].
        # Set once whole: a thread reading it never pairs one build's cells with another's layout. Arrays,
        # not lists: a province's 1.4 million candidates would be ~50 MB of Python ints a worker.
        self._cell_index: CellIndex | None = None
        self._index_later = index_later
        self._indexing = threading.Lock()  # held by the one thread building the cells

    def __getstate__(self) -> dict[str, object]:
        """All but the lock: Dask sends the router to its workers pickled (``geoservice.routing.distributed``)."""
        state = self.__dict__.copy()
        del state["_indexing"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._indexing = threading.Lock()

    def index_area(self, bounds: tuple[float, float, float, float], covered: Covered | None = None) -> None:
        """Cells over ``bounds`` (metric), each with the grids that can be nearest to a point in it.

        A cell of side ``s`` (half-diagonal ``h``) whose centre ``c`` is ``d`` from its nearest grid:
        a point ``x`` in the cell is within ``d + h`` of that grid, so its nearest grid ``G`` (and every
        grid tied with it) is within ``d + h`` of ``x`` and within ``d + 2h`` of ``c``. Those grids are
        the cell's candidates, in rank order, so the first least is the smallest rank, as before.

        ``covered`` (the router's raster index) says which centres a grid covers: ``d`` is 0 there,
        and the candidates are the grids whose envelope is within ``2h`` (a few more than needed;
        only a point in a gap between grids ever asks; ``CELL_SLACK_M`` also covers the raster
        answering for the centre's lon/lat rather than its metric position). Elsewhere ``d`` is
        measured (GEOS, the grids projected for the block and dropped) and the candidates are
        exactly those within ``d + 2h``.
        """
        if self._tree is None:
            return
        minx, miny, maxx, maxy = bounds
        width, height = max(maxx - minx, 1.0), max(maxy - miny, 1.0)
        n_cells = min(max(CELLS_PER_GRID * len(self._polygons), MIN_CELLS), MAX_CELLS)
        side = max(math.sqrt(width * height / n_cells), 1.0)
        nx, ny = int(width // side) + 1, int(height // side) + 1
        reach = side * math.sqrt(2) + CELL_SLACK_M  # 2h, and the slack
        counts, ranks = [], []
        for start in range(0, nx * ny, BLOCK_CELLS):
            k = np.arange(start, min(start + BLOCK_CELLS, nx * ny))
            x, y = minx + (k % nx + 0.5) * side, miny + (k // nx + 0.5) * side
            inside = covered(x, y) if covered is not None else np.zeros(len(k), dtype=bool)
            count, rank = self._candidates(shapely.points(x, y), inside, reach)
            counts.append(count)
            ranks.append(rank)
        starts = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
        self._cell_index = (float(minx), float(miny), float(side), nx, ny), starts, np.concatenate(ranks)

    def _candidates(
        self, centres: NDArray[np.object_], inside: NDArray[np.bool_], reach: float
    ) -> tuple[NDArray[np.intp], NDArray[np.int32]]:
        """For each centre, the grids within ``reach`` of its nearest grid's distance: how many, then their ranks."""
        assert self._tree is not None
        metric: dict[int, shapely.Geometry] = dict(self._kept)

        def measured(cell: NDArray[np.intp], rank: NDArray[np.intp]) -> NDArray[np.float64]:
            missing = [r for r in np.unique(rank).tolist() if r not in metric]
            metric.update(zip(missing, project(self._polygons[missing], self._epsg), strict=True))
            grids = np.empty(len(rank), dtype=object)
            grids[:] = [metric[r] for r in rank.tolist()]
            return shapely.distance(grids, centres[cell])

        outside = np.flatnonzero(~inside)
        bound = np.zeros(len(centres))  # any grid's distance bounds the nearest one's: 0 for a covered centre
        cell, rank = self._tree.query_nearest(centres[outside], all_matches=False)
        bound[outside] = np.inf
        bound[outside[cell]] = measured(outside[cell], rank)
        cell, rank = self._tree.query(centres, predicate="dwithin", distance=_widened(bound + reach))
        measure = ~inside[cell]
        distance = np.zeros(len(cell))
        distance[measure] = measured(cell[measure], rank[measure])
        nearest = np.full(len(centres), np.inf)
        np.minimum.at(nearest, cell, distance)
        close = distance <= nearest[cell] + reach
        cell, rank = cell[close], rank[close]
        order = np.lexsort((rank, cell))  # by cell, then in rank order
        return np.bincount(cell, minlength=len(centres)), rank[order].astype(np.int32)

    def one(self, x: float, y: float) -> tuple[int, float]:
        """(rank, metres) of the nearest grid to one metric point; (-1, inf) when there is none (or a NaN point).

        Unbounded, so that one search serves both a snap (the caller compares the metres with its
        tolerance) and the 404 that names the nearest grid: a bounded search first cost the second a
        search of its own.
        """
        if self._tree is None:
            return NONE, math.inf
        point = shapely.points((x, y))  # not shapely.Point(x, y): 4.8 against 6.7 µs
        candidates = self._cell_of(x, y)
        if candidates:
            return self._nearest_of(candidates, x, y, point)
        if self._cell_index is None:
            self._start_indexing()
        nearest_box = self._tree.query_nearest(point, all_matches=False)
        if not nearest_box.size:  # a NaN point
            return NONE, math.inf
        bound = float(shapely.distance(self._metric([int(nearest_box[0])])[0], point))
        ranks = self._tree.query(point, predicate="dwithin", distance=_widened(bound))
        ranks.sort()  # the first least below is then the smallest rank
        distances = shapely.distance(self._metric(ranks.tolist()), point)
        k = int(distances.argmin())
        return int(ranks[k]), float(distances[k])

    def _nearest_of(self, candidates: list[int], x: float, y: float, point: shapely.Point) -> tuple[int, float]:
        """The nearest of a cell's candidates (in rank order), measuring the kept grids first.

        A grid nobody kept (inside the city, listed for the gaps between grids) is projected only if
        its envelope is as near as the kept ones: never, for a point outside the city's outline.
        """
        kept = self._kept
        ranks = [r for r in candidates if r in kept]
        distances: list[float] = []
        if ranks:
            grids = np.empty(len(ranks), dtype=object)
            grids[:] = [kept[r] for r in ranks]
            distances = shapely.distance(grids, point).tolist()
        best = min(distances, default=math.inf)
        others = [r for r in candidates if r not in kept and _box_distance(self.envelopes[r], x, y) <= _widened(best)]
        if others:
            ranks += others
            distances += shapely.distance(self._metric(others), point).tolist()
            best = min(distances)
        return min(r for r, d in zip(ranks, distances, strict=True) if d == best), best  # the smallest rank on a tie

    def _start_indexing(self) -> None:
        """Build the cells in a thread of their own, once: this point, and those until then, search the R-tree."""
        index = self._index_later
        if index is None or not self._indexing.acquire(blocking=False):
            return  # nothing to build with, or under way, or done

        def build() -> None:  # the lock stays held: a failed build is not retried by every later point
            try:
                index()
            except Exception:  # such points keep the R-tree search: slower, the same answers
                log.exception("could not build the cells for points outside every grid")

        threading.Thread(target=build, name="outside-cells", daemon=True).start()

    def _cell_of(self, x: float, y: float) -> list[int]:
        """The candidates of the point's cell, in rank order; none off the cells (or for NaN)."""
        if self._cell_index is None:
            return []
        (x0, y0, side, nx, ny), starts, ranks = self._cell_index
        fx, fy = (x - x0) / side, (y - y0) / side
        if not (0.0 <= fx < nx and 0.0 <= fy < ny):  # NaN fails too
            return []
        cell = int(fy) * nx + int(fx)
        return ranks[starts[cell] : starts[cell + 1]].tolist()

    def many(self, xy: NDArray[np.float64], within_m: float) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
        """Rank and metres of the nearest grid within ``within_m`` for each metric point; (-1, inf) where none."""
        points = shapely.points(xy)
        best_rank = np.full(len(points), NONE, dtype=np.intp)
        best_distance = np.full(len(points), np.inf)
        if self._tree is None or not len(points):
            return best_rank, best_distance
        point_idx, rank = self._tree.query(points, predicate="dwithin", distance=_widened(within_m))
        if not rank.size:
            return best_rank, best_distance
        unique, position = np.unique(rank, return_inverse=True)
        distance = shapely.distance(self._metric(unique.tolist())[position], points[point_idx])
        close = distance <= within_m
        point_idx, rank, distance = point_idx[close], rank[close], distance[close]
        order = np.lexsort((rank, distance, point_idx))  # per point: least, then smallest rank
        first = order[np.r_[True, point_idx[order][1:] != point_idx[order][:-1]]] if order.size else order
        best_rank[point_idx[first]] = rank[first]
        best_distance[point_idx[first]] = distance[first]
        return best_rank, best_distance

    def _metric(self, ranks: list[int]) -> NDArray[np.object_]:
        """These grids in the metric CRS, projecting (and keeping, while there is room) those not kept yet."""
        kept = self._kept
        missing = [r for r in dict.fromkeys(ranks) if r not in kept]
        fresh = dict(zip(missing, project(self._polygons[missing], self._epsg), strict=True)) if missing else {}
        if len(kept) + len(fresh) <= self._room:
            kept.update(fresh)  # one dict update: threads sharing the router see a grid whole or not at all
        out = np.empty(len(ranks), dtype=object)
        out[:] = [kept[r] if r in kept else fresh[r] for r in ranks]
        return out


def metric_envelopes(polygons: NDArray[np.object_], metric_epsg: int) -> NDArray[np.float64]:
    """A metric box holding each grid (NaN rows for a missing or empty one): its lon/lat box, projected.

    Every use of an envelope (the R-tree's searches, ``_box_distance``) needs only that it holds its
    grid, never that it is tight: the exact distances come after. Projecting every vertex for the
    tight bounds was a quarter of a prefecture's router build (1.2 million vertices, 0.24 s of 1 s,
    issue 23), paid at every start. A grid lies in its lon/lat box, so its projection lies in the
    box's projection, whose bounds lie on the box's projected outline: that outline is sampled every
    ``BOX_SEGMENT_DEG``, where a projected parallel or meridian departs from its chord by under 0.2 m
    (in a 3-degree zone their radius of curvature is over 4,500 km, even at 53°N: a 2.2 km chord's
    sagitta is 0.13 m), and ``ENVELOPE_MARGIN_M`` covers that several times over.
    """
    bounds = shapely.bounds(polygons).reshape(-1, 4)
    envelopes = np.full(bounds.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(bounds).all(axis=1))
    if not valid.size:
        return envelopes
    # Each box's outline as points, box after box: its south and north edges at every step of its
    # longitudes, then its west and east edges at every step of its latitudes (corners included), in
    # plain arrays (shapely boxes, segmentized and projected, took 1.1 s for a province's 100,000,
    # these 0.4 s, most of it PROJ's).
    minx, miny, maxx, maxy = bounds[valid].T
    # Points along a parallel and along a meridian: both ends, and at least every BOX_SEGMENT_DEG.
    steps_x = np.maximum(np.ceil((maxx - minx) / BOX_SEGMENT_DEG).astype(np.int64) + 1, 2)
    steps_y = np.maximum(np.ceil((maxy - miny) / BOX_SEGMENT_DEG).astype(np.int64) + 1, 2)
    per_box = 2 * (steps_x + steps_y)
    starts = np.cumsum(per_box) - per_box
    box = np.repeat(np.arange(valid.size), per_box)
    k = np.arange(box.size) - starts[box]  # the point's place in its box's outline
    sx, sy = steps_x[box], steps_y[box]
    on_parallel = k < 2 * sx
    along = np.where(on_parallel, k % sx, (k - 2 * sx) % sy)
    fraction = along / (np.where(on_parallel, sx, sy) - 1)  # steps are at least 2: never 0 / 0
    second = np.where(on_parallel, k >= sx, k - 2 * sx >= sy)  # the north edge, or the east edge
    lon = np.where(on_parallel, minx[box] + fraction * (maxx - minx)[box], np.where(second, maxx[box], minx[box]))
    lat = np.where(on_parallel, np.where(second, maxy[box], miny[box]), miny[box] + fraction * (maxy - miny)[box])
    x, y = metric_transformer(metric_epsg).transform(lon, lat)
    envelopes[valid] = np.column_stack([
        np.minimum.reduceat(x, starts), np.minimum.reduceat(y, starts),
        np.maximum.reduceat(x, starts), np.maximum.reduceat(y, starts),
    ]) + np.array([-1.0, -1.0, 1.0, 1.0]) * ENVELOPE_MARGIN_M  # fmt: skip
    return envelopes


def _box_distance(envelope: NDArray[np.float64], x: float, y: float) -> float:
    """Metres from a point to an envelope (minx, miny, maxx, maxy): never more than to the grid inside it."""
    minx, miny, maxx, maxy = envelope.tolist()
    return math.hypot(max(minx - x, 0.0, x - maxx), max(miny - y, 0.0, y - maxy))


def _widened(metres: float | NDArray[np.float64]) -> float | NDArray[np.float64]:
    """The envelope search radius: a little wider than ``metres``, whose exact test comes after."""
    return metres * (1 + SLACK) + SLACK
