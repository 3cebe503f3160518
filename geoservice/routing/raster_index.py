"""Which polygon of a coverage covers a point: an index precomputed once per boundary version.

Semantics are the design's: a polygon covers a point in its interior or on its boundary, and where
several do (a shared edge or vertex) the one ranked first — the smallest code — wins. The answer
must equal PostGIS ``ST_Covers`` + that tie-break for every point.

How. An R-tree answers "which bounding boxes hold this point", and for a million points that query
is what costs (geopandas ``sjoin`` spends most of its time there). Here the R-tree's role is taken
by a raster over the coverage, built once per version:

* every cell that some polygon boundary passes through (or touches) is a *boundary cell* and keeps
  the short list of polygons whose boundary touches it, ordered by rank;
* every other cell lies wholly inside one polygon, or wholly outside all of them, so it stores the
  answer itself. Such cells are found as connected components of the non-boundary cells, and one
  exact point-in-polygon test per component labels all of its cells.

A query is then an array lookup for most points, and a handful of exact tests on prepared
geometries (GEOS ``intersects``, i.e. covers for a point) for points in boundary cells.

Which R-tree: shapely's STRtree, used to build the index and to snap points outside every grid.
Measured here on 6,000 Voronoi grids and 1,000,000 points: the ``rtree`` package's vectorised bbox
query (``intersection_v``) took 11.5 s, the STRtree bbox query 1.2 s (1.5 s with the exact
``intersects`` predicate), and this raster index 0.09 s for the exact answer (bench/RESULTS.md). The cell
size is an index parameter in degrees, chosen to be about ``cell_m`` metres; no distance is ever
measured with it.

The candidate lists are complete as long as polygons overlap by less than a cell's width (import
validation refuses larger overlaps): a polygon that covers part of a boundary cell either has its
boundary in the cell, or covers the whole cell and so its centre, which is also tested.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from scipy import ndimage

NO_POLYGON = -1
MAX_CELLS = 60_000_000  # about 1 GB at build time; a 30 m raster reaches it at 54,000 km² of bounding box
EPS_CELLS = 1e-6  # widen each boundary segment's box by this fraction of a cell: edges on cell lines count


@dataclass(frozen=True)
class IndexStats:
    """How the raster came out; the benchmark prints it."""

    cells: int
    boundary_cells: int
    candidates: int
    cell_m: float


class RasterIndex:
    """Point → rank of the covering polygon (``NO_POLYGON`` when none covers it)."""

    def __init__(self, polygons: NDArray[np.object_] | list, cell_m: float = 20.0) -> None:
        """``polygons`` are (Multi)Polygons in lon/lat, in rank order (rank 0 wins ties)."""
        self.polygons = np.asarray(polygons, dtype=object)
        shapely.prepare(self.polygons)
        minx, miny, maxx, maxy = shapely.total_bounds(self.polygons)
        mid_lat = math.radians((miny + maxy) / 2)
        metres_per_x, metres_per_y = 111_320.0 * max(math.cos(mid_lat), 0.01), 110_574.0  # per degree, for sizing
        # Coarser cells rather than an array beyond MAX_CELLS (a draft with a country-sized outline):
        # the answers stay exact, only more points need the exact test.
        extent_m2 = max((maxx - minx) * metres_per_x, 1.0) * max((maxy - miny) * metres_per_y, 1.0)
        cell_m = max(cell_m, math.sqrt(extent_m2 / MAX_CELLS))
        self.dy = cell_m / metres_per_y
        self.dx = cell_m / metres_per_x
        self.x0, self.y0 = minx - self.dx, miny - self.dy
        self.nx = int((maxx - self.x0) / self.dx) + 2
        self.ny = int((maxy - self.y0) / self.dy) + 2
        self.cell_m = cell_m
        self._build()

    def __setstate__(self, state: dict) -> None:
        # A pickled index (shipped to Dask workers) arrives with its polygons unprepared: prepare them
        # again, or every boundary-cell test walks the polygon from scratch (locate_many measured 2.5× slower).
        self.__dict__.update(state)
        shapely.prepare(self.polygons)

    # --- queries ---------------------------------------------------------------------------------
    def locate(self, x: float, y: float) -> int:
        """The covering polygon's rank for one point (the single-request path: no numpy overhead)."""
        i = math.floor((x - self.x0) / self.dx)
        j = math.floor((y - self.y0) / self.dy)
        if not (0 <= i < self.nx and 0 <= j < self.ny):
            return NO_POLYGON
        value = int(self.cells[j, i])
        if value >= NO_POLYGON:
            return value
        cell = -value - 2
        point = shapely.Point(x, y)
        for rank in self.candidates[self.offsets[cell] : self.offsets[cell + 1]]:
            if self.polygons[rank].intersects(point):
                return int(rank)
        return NO_POLYGON

    def locate_many(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.int32]:
        """Ranks for arrays of points; NaN or out-of-raster points get ``NO_POLYGON``."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        fi = np.floor((x - self.x0) / self.dx)
        fj = np.floor((y - self.y0) / self.dy)
        inside = (fi >= 0) & (fi < self.nx) & (fj >= 0) & (fj < self.ny)  # False for NaN too
        result = np.full(x.shape, NO_POLYGON, dtype=np.int32)
        where = np.flatnonzero(inside)
        values = self.cells[fj[where].astype(np.intp), fi[where].astype(np.intp)]
        result[where] = np.maximum(values, NO_POLYGON)
        on_boundary = values < NO_POLYGON
        points = where[on_boundary]
        if points.size:
            result[points] = self._exact(points, -values[on_boundary] - 2, x, y)
        return result

    def _exact(self, points: NDArray, cells: NDArray, x: NDArray, y: NDArray) -> NDArray[np.int32]:
        """First covering candidate of each point's cell (candidates are in rank order)."""
        starts = self.offsets[cells]
        counts = self.offsets[cells + 1] - starts
        group_start = np.concatenate(([0], np.cumsum(counts)[:-1]))
        pair_point = np.repeat(points, counts)
        within_group = np.arange(counts.sum()) - np.repeat(group_start, counts)
        pair_rank = self.candidates[np.repeat(starts, counts) + within_group]
        hit = shapely.intersects_xy(self.polygons[pair_rank], x[pair_point], y[pair_point])
        first = np.minimum.reduceat(np.where(hit, pair_rank, np.iinfo(np.int32).max), group_start)
        return np.where(first == np.iinfo(np.int32).max, NO_POLYGON, first).astype(np.int32)

    @property
    def stats(self) -> IndexStats:
        boundary = int(self.offsets.size - 1)
        return IndexStats(int(self.cells.size), boundary, int(self.candidates.size), self.cell_m)

    # --- build -----------------------------------------------------------------------------------
    def _build(self) -> None:
        cell_ids, ranks = self._boundary_pairs()
        boundary = np.zeros((self.ny, self.nx), dtype=bool)
        boundary.flat[cell_ids] = True
        cells = np.full((self.ny, self.nx), NO_POLYGON, dtype=np.int32)
        self._label_interiors(cells, boundary)
        self._store_candidates(cells, boundary, cell_ids, ranks)
        self.cells = cells

    def _boundary_pairs(self) -> tuple[NDArray[np.intp], NDArray[np.int32]]:
        """(cell, rank) for every cell each polygon's boundary passes through, and the cell's centre cover."""
        rings = shapely.get_rings(shapely.get_parts(self.polygons), return_index=True)
        part_rank = np.repeat(np.arange(len(self.polygons)), shapely.get_num_geometries(self.polygons))
        ring_geoms, ring_part = rings
        # Segments no longer than a cell: each one's box then spans at most 3 × 3 cells.
        dense = shapely.segmentize(ring_geoms, min(self.dx, self.dy))
        coords, ring_of = shapely.get_coordinates(dense, return_index=True)
        same_ring = ring_of[1:] == ring_of[:-1]
        a, b = coords[:-1][same_ring], coords[1:][same_ring]
        seg_rank = part_rank[ring_part[ring_of[:-1][same_ring]]]
        pad_x, pad_y = self.dx * EPS_CELLS, self.dy * EPS_CELLS
        i0 = np.floor((np.minimum(a[:, 0], b[:, 0]) - pad_x - self.x0) / self.dx).astype(np.intp)
        i1 = np.floor((np.maximum(a[:, 0], b[:, 0]) + pad_x - self.x0) / self.dx).astype(np.intp)
        j0 = np.floor((np.minimum(a[:, 1], b[:, 1]) - pad_y - self.y0) / self.dy).astype(np.intp)
        j1 = np.floor((np.maximum(a[:, 1], b[:, 1]) + pad_y - self.y0) / self.dy).astype(np.intp)
        keys = []
        for di in range(3):
            for dj in range(3):
                keep = (i0 + di <= i1) & (j0 + dj <= j1)
                cell = (j0[keep] + dj) * self.nx + (i0[keep] + di)
                keys.append(self._pair_key(cell, seg_rank[keep]))
        keys = sorted_unique(np.concatenate(keys))
        return np.divmod(keys, len(self.polygons))

    def _pair_key(self, cell: NDArray, rank: NDArray) -> NDArray[np.int64]:
        """(cell, rank) as one integer, so that sorting pairs is a plain integer sort."""
        return cell.astype(np.int64) * len(self.polygons) + rank

    def _label_interiors(self, cells: NDArray[np.int32], boundary: NDArray[np.bool_]) -> None:
        labels, count = ndimage.label(~boundary)
        if count == 0:
            return
        flat = labels.ravel()
        # One cell of each component (its first): assigning in reverse order keeps the first write
        # per label. np.unique(return_index=True) sorted 13.5 million cells to find the same (3 s).
        cell_ids = np.flatnonzero(flat)
        first_cell = np.empty(count + 1, dtype=np.intp)
        first_cell[flat[cell_ids[::-1]]] = cell_ids[::-1]
        first_cell = first_cell[1:]  # label 0 is the boundary cells
        owner = self._cover_rank(first_cell)
        lookup = np.full(count + 1, NO_POLYGON, dtype=np.int32)
        lookup[flat[first_cell]] = owner
        interior = labels > 0
        cells[interior] = lookup[labels[interior]]

    def _cover_rank(self, cell_ids: NDArray[np.intp]) -> NDArray[np.int32]:
        """Exact covering rank of each cell's centre, by an R-tree over the polygons (build time only)."""
        j, i = np.divmod(cell_ids, self.nx)
        cx, cy = self.x0 + (i + 0.5) * self.dx, self.y0 + (j + 0.5) * self.dy
        # Boxes from the R-tree, then the exact test on the prepared polygons: the tree's own
        # ``predicate="intersects"`` tests each point against an unprepared polygon, vertex by vertex
        # (5.9 s against 0.x s for the 860,000 boundary cells of a 12,000 km² city, measured).
        point_idx, rank = shapely.STRtree(self.polygons).query(shapely.points(cx, cy))
        hit = shapely.intersects_xy(self.polygons[rank], cx[point_idx], cy[point_idx])
        point_idx, rank = point_idx[hit], rank[hit]
        owner = np.full(len(cell_ids), np.iinfo(np.int32).max, dtype=np.int64)
        np.minimum.at(owner, point_idx, rank)
        return np.where(owner == np.iinfo(np.int32).max, NO_POLYGON, owner).astype(np.int32)

    def _store_candidates(
        self, cells: NDArray[np.int32], boundary: NDArray[np.bool_], cell_ids: NDArray, ranks: NDArray
    ) -> None:
        boundary_ids = np.flatnonzero(boundary.ravel())
        centre_owner = self._cover_rank(boundary_ids)
        has_owner = centre_owner != NO_POLYGON
        keys = sorted_unique(np.concatenate(
            [self._pair_key(cell_ids, ranks), self._pair_key(boundary_ids[has_owner], centre_owner[has_owner])]
        ))  # fmt: skip
        all_cells, all_ranks = np.divmod(keys, len(self.polygons))
        # Boundary cell k (in flat order) stores -(k + 2); its candidates are offsets[k]:offsets[k + 1].
        slot = np.searchsorted(boundary_ids, all_cells)
        self.offsets = np.concatenate(([0], np.cumsum(np.bincount(slot, minlength=boundary_ids.size))))
        self.candidates = all_ranks.astype(np.int32)
        cells.flat[boundary_ids] = -(np.arange(boundary_ids.size, dtype=np.int32) + 2)


def sorted_unique(keys: NDArray[np.int64]) -> NDArray[np.int64]:
    """``np.unique`` of integer keys by one sort: numpy 2.3's hash-based unique took 3 s for 5 million keys."""
    keys = np.sort(keys)
    return keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if keys.size else keys
