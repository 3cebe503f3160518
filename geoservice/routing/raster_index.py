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

The raster holds two bytes a cell (four past 65,533 polygons): a rank, or one of two codes, "no
polygon" and "boundary cell"; a boundary cell's number, which finds its candidates, is its place in
the sorted list of boundary cells (a binary search, paid only next to the exact tests). Until issue 23
it held four bytes a cell, the boundary cell's number itself: on the prefecture that was 87 of a
worker's 327 MB (the mapped cache's pages), now 44.

Which R-tree: shapely's STRtree, used to build the index and to snap points outside every grid.
Measured here on 6,000 Voronoi grids and 1,000,000 points: the ``rtree`` package's vectorised bbox
query (``intersection_v``) took 11.5 s, the STRtree bbox query 1.2 s (1.5 s with the exact
``intersects`` predicate), and this raster index 0.09 s for the exact answer (bench/RESULTS.md). The cell
size is an index parameter in degrees, chosen to be about ``cell_m`` metres; no distance is ever
measured with it.

The candidate lists are complete as long as polygons overlap by less than a cell's width (import
validation refuses larger overlaps): a polygon that covers part of a boundary cell either has its
boundary in the cell, or covers the whole cell and so its centre, which is tested against every
polygon whose box holds it and whose boundary is not in the cell (the one of smallest rank that
covers it joins the candidates). Until issue 23 only the centre's smallest-rank cover was added,
which missed a polygon covering the whole cell when the centre also lay in a smaller-coded polygon
whose boundary crossed the cell (an overlap wider than half a cell): ``tests/geoservice/
test_index_cache.py`` has the case.

Build cost (issue 23). The build holds one int32 raster (the components are labelled into it, and
each label replaced by its owner block by block), a one-byte mask while labelling, and the
(cell, polygon) keys of the boundary cells, made ``CHUNK_COORDS`` vertices at a time. The result
depends only on the polygons and the cell size, so ``cache_dir`` keeps it on disk for the next
process (``geoservice.routing.index_cache``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import cc3d
import numpy as np
import shapely
from numpy.typing import NDArray

from geoservice.routing.index_cache import IndexCache, index_key
from geoservice.routing.index_store import DatabaseIndexStore

NO_POLYGON = -1
MAX_CELLS = 60_000_000  # 5 bytes a cell at build time (300 MB); a 30 m raster reaches it at 54,000 km² of box
EPS_CELLS = 1e-6  # widen each boundary segment's box by this fraction of a cell: edges on cell lines count
CHUNK_COORDS = 500_000  # boundary vertices turned into (cell, polygon) pairs at a time (~90 MB of temporaries)
CHUNK_PAIRS = 1_000_000  # (boundary cell, polygon) pairs tested at a time for the cells' centres
BLOCK_CELLS = 4_000_000  # raster cells scanned at a time after labelling
WINDOWS_AT_A_TIME = 4_096  # polygons whose windows' rows are searched at once (a few MB of run arrays)
UINT16_RANKS = 65_534  # fewer polygons than this: two bytes a cell (the two largest values are codes)


@dataclass(frozen=True)
class IndexStats:
    """How the raster came out; the benchmark prints it."""

    cells: int
    boundary_cells: int
    candidates: int
    cell_m: float


class RasterIndex:
    """Point → rank of the covering polygon (``NO_POLYGON`` when none covers it)."""

    def __init__(
        self,
        polygons: NDArray[np.object_] | list,
        cell_m: float = 20.0,
        cache_dir: str | os.PathLike | None = None,
        shared: DatabaseIndexStore | None = None,
    ) -> None:
        """``polygons`` are (Multi)Polygons in lon/lat, in rank order (rank 0 wins ties).

        With ``cache_dir`` the arrays are read from there when these polygons were indexed before
        (by any process), else built and written there (``geoservice.routing.index_cache``); with
        ``shared`` too, a directory's miss is asked of the database before a build.
        """
        asked_cell_m = cell_m
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
        self.cache = "off"  # or how the cache served: "hit", "shared", "built", "uncached" (IndexCache.fill)
        if cache_dir is None:
            self._build()
        else:
            key = index_key(self.polygons, asked_cell_m, {"max_cells": MAX_CELLS, "eps_cells": EPS_CELLS})
            self.cache = IndexCache(cache_dir, shared=shared).fill(self, key)
        self._empty, self._edge = cell_codes(self.cells.dtype)
        # Searched with keys of its own type: numpy would otherwise copy the whole list to int64 per search.
        self._cell_number = self.boundary_cells.dtype.type

    def forget_build_caches(self) -> None:
        """Drop the per-polygon indexes GEOS made for the build's exact tests, if this process built it.

        Why: a build tests cells along every polygon's edges, so GEOS indexes every polygon for its
        prepared predicates, and a server would hold them for life: 53 MB on the prefecture, which a
        worker that mapped a stored index never holds. Prepared anew, a polygon is indexed again
        only when a query near its edge tests it.
        """
        if self.cache in ("off", "built", "uncached"):
            shapely.destroy_prepared(self.polygons)
            shapely.prepare(self.polygons)

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
        if value < self._edge:
            return value
        if value == self._empty:
            return NO_POLYGON
        cell = int(self.boundary_cells.searchsorted(self._cell_number(j * self.nx + i)))
        ranks = self.candidates[self.offsets[cell] : self.offsets[cell + 1]]  # never empty: a boundary touches it
        # One call for all the cell's candidates, in rank order, the first cover wins: a Point and a
        # call per candidate took ~1 µs more per point here (issue 22's p99, measured on the dense city).
        hit = shapely.intersects_xy(self.polygons[ranks], x, y)
        first = int(hit.argmax())
        return int(ranks[first]) if hit[first] else NO_POLYGON

    def locate_many(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.int32]:
        """Ranks for arrays of points; NaN or out-of-raster points get ``NO_POLYGON``."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        fi = np.floor((x - self.x0) / self.dx)
        fj = np.floor((y - self.y0) / self.dy)
        inside = (fi >= 0) & (fi < self.nx) & (fj >= 0) & (fj < self.ny)  # False for NaN too
        result = np.full(x.shape, NO_POLYGON, dtype=np.int32)
        where = np.flatnonzero(inside)
        flat = fj[where].astype(np.intp) * self.nx + fi[where].astype(np.intp)
        values = self.cells.ravel()[flat]
        result[where] = np.where(values < self._edge, values.astype(np.int32), NO_POLYGON)
        on_boundary = values == self._edge
        points = where[on_boundary]
        if points.size:
            numbers = self.boundary_cells.searchsorted(flat[on_boundary].astype(self.boundary_cells.dtype))
            result[points] = self._exact(points, numbers, x, y)
        return result

    def _exact(self, points: NDArray, cells: NDArray, x: NDArray, y: NDArray) -> NDArray[np.int32]:
        """First covering candidate of each point's cell (candidates are in rank order).

        Candidate by candidate: the k-th is tested only for the points none of the first k-1
        covered, so a point inside its cell's first candidate costs one test, not one per
        candidate (on the county's 1 M points, 0.07 instead of 0.09 s for 148,000 boundary points).
        """
        starts = self.offsets[cells]
        counts = self.offsets[cells + 1] - starts
        found = np.full(points.size, NO_POLYGON, dtype=np.int32)
        left = np.arange(points.size)  # the points no candidate has covered yet
        k = 0
        while left.size:
            ranks = self.candidates[starts[left] + k]
            at = points[left]
            hit = shapely.intersects_xy(self.polygons[ranks], x[at], y[at])
            found[left[hit]] = ranks[hit]
            k += 1
            left = left[~hit]
            left = left[counts[left] > k]
        return found

    def edge_ranks(self) -> NDArray[np.intp]:
        """Ranks of the polygons in boundary cells beside a cell that no polygon covers (8 neighbours).

        Those are the polygons along the coverage's outline and its gaps: where a point outside
        every polygon finds its nearest (``geoservice.routing.nearest_grid``). A gap narrower than a
        cell has no empty cell and is missed; that costs its nearest-grid query a projection, not
        an answer. Scanned ``BLOCK_CELLS`` at a time, with a row of overlap each side.
        """
        found: list[NDArray] = []
        for rows in self._row_blocks():
            row = rows.start
            lo, hi = max(row - 1, 0), min(rows.stop + 1, self.ny)
            # Beyond the raster counts as empty (a polygon's edge can lie in the outermost cells); the
            # padding beside an overlap row reaches only that row, which is its neighbour block's.
            empty = np.pad(np.asarray(self.cells[lo:hi]) == self._empty, 1, constant_values=True)
            near = empty.copy()  # dilated by one cell: rows, then columns of the result
            near[1:] |= empty[:-1]
            near[:-1] |= empty[1:]
            wide = near.copy()
            wide[:, 1:] |= near[:, :-1]
            wide[:, :-1] |= near[:, 1:]
            block = np.asarray(self.cells[rows])
            mine = wide[1 + row - lo : 1 + row - lo + block.shape[0], 1:-1] & (block == self._edge)
            flat = (np.flatnonzero(mine) + row * self.nx).astype(self.boundary_cells.dtype)
            found.append(self.boundary_cells.searchsorted(flat))
        boundary = np.unique(np.concatenate(found)) if found else np.empty(0, dtype=np.intp)
        if not boundary.size:
            return boundary
        starts, ends = self.offsets[boundary], self.offsets[boundary + 1]
        counts = ends - starts
        positions = np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))
        return np.unique(self.candidates[positions]).astype(np.intp)

    @property
    def stats(self) -> IndexStats:
        boundary = int(self.boundary_cells.size)
        return IndexStats(int(self.cells.size), boundary, int(self.candidates.size), self.cell_m)

    # --- build -----------------------------------------------------------------------------------
    def _build(self) -> None:
        """Fill ``cells``, ``offsets`` and ``candidates``: the build holds one int32 raster and no other.

        Peak memory is the raster (4 bytes a cell), a one-byte mask while labelling, and the
        (cell, polygon) pairs of the boundary cells; the temporaries of each step are bounded by
        ``CHUNK_COORDS`` boundary vertices or ``BLOCK_CELLS`` raster cells at a time.
        """
        keys = self._boundary_keys()
        cell_ids = keys // len(self.polygons)
        boundary_ids = cell_ids[np.concatenate(([True], cell_ids[1:] != cell_ids[:-1]))] if cell_ids.size else cell_ids
        del cell_ids  # freed before the labelling, the build's peak (12 MB on the prefecture)
        cells = self._label_interiors(boundary_ids)
        cells.flat[boundary_ids] = NO_POLYGON - 1  # a boundary cell while building: _compact makes it the edge code
        self._store_candidates(boundary_ids, keys)
        self.cells = self._compact(cells)
        self.boundary_cells = boundary_ids.astype(np.int32 if cells.size < 2**31 else np.int64)

    def _compact(self, cells: NDArray[np.int32]) -> NDArray[np.unsignedinteger]:
        """The raster as kept: ranks, and two codes for "empty" and "boundary" (``cell_codes``), block by block."""
        compact = np.empty(cells.shape, dtype=np.uint16 if len(self.polygons) < UINT16_RANKS else np.uint32)
        empty, edge = cell_codes(compact.dtype)
        for rows in self._row_blocks():
            block, out = cells[rows], compact[rows]
            np.copyto(out, block, casting="unsafe")  # ranks as they are; the codes' cells are set next
            out[block == NO_POLYGON] = empty
            out[block < NO_POLYGON] = edge
        return compact

    def _boundary_keys(self) -> NDArray[np.int64]:
        """Sorted unique (cell, rank) keys: every cell each polygon's boundary passes through or touches."""
        # Polygons in chunks of about CHUNK_COORDS vertices: the rings are copied (get_rings,
        # segmentize) a chunk at a time, not a province's 23 million vertices at once (+1 GB, measured).
        keys = []
        for chunk in _spans(shapely.get_num_coordinates(self.polygons), CHUNK_COORDS):
            parts, part_of = shapely.get_parts(self.polygons[chunk], return_index=True)
            rings, ring_of = shapely.get_rings(parts, return_index=True)
            # Segments no longer than a cell: each one's box then spans at most 3 × 3 cells.
            dense = shapely.segmentize(rings, min(self.dx, self.dy))
            keys.append(self._segment_keys(dense, chunk.start + part_of[ring_of]))
        return sorted_unique(np.concatenate(keys)) if keys else np.empty(0, dtype=np.int64)

    def _segment_keys(self, rings: NDArray[np.object_], ring_rank: NDArray) -> NDArray[np.int64]:
        coords, ring_of = shapely.get_coordinates(rings, return_index=True)
        same_ring = np.flatnonzero(ring_of[1:] == ring_of[:-1])
        seg_rank = ring_rank[ring_of[same_ring]]
        ax, ay, bx, by = coords[same_ring, 0], coords[same_ring, 1], coords[same_ring + 1, 0], coords[same_ring + 1, 1]
        del coords, ring_of, same_ring
        pad_x, pad_y = self.dx * EPS_CELLS, self.dy * EPS_CELLS
        i0 = np.floor((np.minimum(ax, bx) - pad_x - self.x0) / self.dx).astype(np.int64)
        i1 = np.floor((np.maximum(ax, bx) + pad_x - self.x0) / self.dx).astype(np.int64)
        j0 = np.floor((np.minimum(ay, by) - pad_y - self.y0) / self.dy).astype(np.int64)
        j1 = np.floor((np.maximum(ay, by) + pad_y - self.y0) / self.dy).astype(np.int64)
        del ax, ay, bx, by
        # Every cell of each segment's box, as one flat list: segment s owns counts[s] entries.
        ni = i1 - i0 + 1
        counts = ni * (j1 - j0 + 1)
        seg = np.repeat(np.arange(counts.size), counts)
        within = np.arange(seg.size) - np.repeat(np.cumsum(counts) - counts, counts)
        dj, di = np.divmod(within, ni[seg])
        cell = (j0[seg] + dj) * self.nx + (i0[seg] + di)
        return sorted_unique(cell * len(self.polygons) + seg_rank[seg])

    def _pair_key(self, cell: NDArray, rank: NDArray) -> NDArray[np.int64]:
        """(cell, rank) as one integer, so that sorting pairs is a plain integer sort."""
        return cell.astype(np.int64) * len(self.polygons) + rank

    def _row_blocks(self) -> list[slice]:
        """The raster's rows in blocks of about ``BLOCK_CELLS`` cells (the last may be shorter)."""
        step = max(1, BLOCK_CELLS // self.nx)
        return [slice(row, row + step) for row in range(0, self.ny, step)]

    def _label_interiors(self, boundary_ids: NDArray) -> NDArray[np.int32]:
        """The raster: every non-boundary cell holds its component's owner; boundary cells are the caller's.

        The components are labelled into the raster itself, then each label is replaced by its
        owner, block by block.
        """
        free = np.ones(self.ny * self.nx, dtype=bool)
        free[boundary_ids] = False
        cells, count = label_components(free.reshape(self.ny, self.nx))
        del free
        if count == 0:
            return cells
        lookup = np.empty(count + 1, dtype=np.int32)
        lookup[0] = NO_POLYGON  # boundary cells: overwritten by the caller
        lookup[1:] = self._cover_rank(self._a_cell_of_each(cells, count)[1:])
        for rows in self._row_blocks():
            cells[rows] = lookup[cells[rows]]
        return cells

    def _a_cell_of_each(self, cells: NDArray[np.int32], count: int) -> NDArray[np.intp]:
        """One cell of each labelled component (entry 0, the boundary's label, unused).

        Any cell will do: a component's cells touch no boundary, so they all lie in the same polygon
        (or in none), and one exact test of any of their centres labels them all. Only the cells
        whose left and upper neighbours carry another label are written to the table (each
        component has one: its first in row order); scattering every labelled cell into it was a
        quarter of a prefecture's build (0.25 of 1 s, issue 23).
        """
        found = np.zeros(count + 1, dtype=np.intp)
        for rows in self._row_blocks():
            block = cells[rows]
            corner = block != 0
            corner[:, 1:] &= block[:, 1:] != block[:, :-1]
            corner[1:] &= block[1:] != block[:-1]
            if rows.start:  # the block's first row against the row above it
                corner[0] &= block[0] != cells[rows.start - 1]
            ids = np.flatnonzero(corner)
            found[block.ravel()[ids]] = ids + rows.start * self.nx
        return found

    def _cover_rank(self, cell_ids: NDArray[np.intp]) -> NDArray[np.int32]:
        """Exact covering rank of each cell's centre (one cell per component), by an R-tree over the polygons."""
        j, i = np.divmod(cell_ids, self.nx)
        cx, cy = self.x0 + (i + 0.5) * self.dx, self.y0 + (j + 0.5) * self.dy
        # Boxes from the R-tree, then the exact test on the prepared polygons: the tree's own
        # ``predicate="intersects"`` tests each point against an unprepared polygon, vertex by vertex.
        point_idx, rank = shapely.STRtree(self.polygons).query(shapely.points(cx, cy))
        return self._first_cover(len(cell_ids), point_idx, rank, cx, cy)

    def _first_cover(self, n: int, point_idx: NDArray, rank: NDArray, cx: NDArray, cy: NDArray) -> NDArray[np.int32]:
        """Smallest rank among (point, rank) pairs whose polygon covers the point; NO_POLYGON if none."""
        hit = shapely.intersects_xy(self.polygons[rank], cx[point_idx], cy[point_idx])
        point_idx, rank = point_idx[hit], rank[hit]
        owner = np.full(n, np.iinfo(np.int32).max, dtype=np.int64)
        np.minimum.at(owner, point_idx, rank)
        return np.where(owner == np.iinfo(np.int32).max, NO_POLYGON, owner).astype(np.int32)

    def _boundary_centre_cover(self, boundary_ids: NDArray, keys: NDArray[np.int64]) -> NDArray[np.int32]:
        """Covering rank of each boundary cell's centre, where it adds to the cell's candidates.

        A polygon can cover a whole boundary cell only where polygons overlap, and is then missing
        from the cell's candidates (``keys``: its boundary is not in the cell). The R-tree's part is
        done on the raster: each polygon's bounding box is a window of cells, and the boundary cells
        in it whose candidates lack the polygon are tested: no point objects, no tree query (those
        took 2 of the 4.3 s of a prefecture's build), and about one pair in eight left to test.
        Each row of a window holds a run of the sorted ``boundary_ids``, found by two binary
        searches, so the windows are never cut out of the raster one polygon at a time (that Python
        loop over the polygons took 0.18 s of a prefecture's build, this 0.14 s; the county's 0.08,
        this 0.05 s: issue 23).
        """
        owner = np.full(boundary_ids.size, np.iinfo(np.int32).max, dtype=np.int64)
        minx, miny, maxx, maxy = shapely.bounds(self.polygons).T
        valid = np.flatnonzero(~np.isnan(minx))
        # Cells whose centre lies in the box, widened by one cell: extra pairs only cost a test.
        i0 = np.clip(np.floor((minx[valid] - self.x0) / self.dx - 0.5), 0, self.nx - 1).astype(np.int64)
        i1 = np.clip(np.floor((maxx[valid] - self.x0) / self.dx - 0.5) + 1, 0, self.nx - 1).astype(np.int64)
        j0 = np.clip(np.floor((miny[valid] - self.y0) / self.dy - 0.5), 0, self.ny - 1).astype(np.int64)
        j1 = np.clip(np.floor((maxy[valid] - self.y0) / self.dy - 0.5) + 1, 0, self.ny - 1).astype(np.int64)
        for first in range(0, valid.size, WINDOWS_AT_A_TIME):
            part = slice(first, first + WINDOWS_AT_A_TIME)
            rows = j1[part] - j0[part] + 1  # one run per row of each window
            run_of = np.repeat(np.arange(rows.size), rows)
            row = j0[part][run_of] + np.arange(run_of.size) - np.repeat(np.cumsum(rows) - rows, rows)
            lo = np.searchsorted(boundary_ids, row * self.nx + i0[part][run_of])
            hi = np.searchsorted(boundary_ids, row * self.nx + i1[part][run_of], side="right")
            rank = valid[part][run_of]
            for runs in _spans(hi - lo, CHUNK_PAIRS):  # runs holding about CHUNK_PAIRS boundary cells
                counts = hi[runs] - lo[runs]
                slots = np.repeat(lo[runs] - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))
                self._centre_pairs(owner, slots, np.repeat(rank[runs], counts), boundary_ids, keys)
        return np.where(owner == np.iinfo(np.int32).max, NO_POLYGON, owner).astype(np.int32)

    def _centre_pairs(self, owner: NDArray, slot: NDArray, rank: NDArray, boundary_ids: NDArray, keys: NDArray) -> None:
        """Test (boundary cell, polygon) pairs not already candidates; keep each cell's smallest cover."""
        cell = boundary_ids[slot]
        pair = self._pair_key(cell, rank)
        at = np.minimum(np.searchsorted(keys, pair), max(keys.size - 1, 0))
        new = keys[at] != pair if keys.size else np.ones(pair.size, dtype=bool)
        slot, rank, cell = slot[new], rank[new], cell[new]
        j, i = np.divmod(cell, self.nx)
        hit = shapely.intersects_xy(self.polygons[rank], self.x0 + (i + 0.5) * self.dx, self.y0 + (j + 0.5) * self.dy)
        np.minimum.at(owner, slot[hit], rank[hit])

    def _store_candidates(self, boundary_ids: NDArray, keys: NDArray[np.int64]) -> None:
        """Each boundary cell's candidates: polygons whose boundary touches it, and one covering it whole."""
        centre_owner = self._boundary_centre_cover(boundary_ids, keys)
        has_owner = centre_owner != NO_POLYGON
        if has_owner.any():
            extra = self._pair_key(boundary_ids[has_owner], centre_owner[has_owner])
            keys = sorted_unique(np.concatenate([keys, extra]))
        # Keys are sorted by cell, then rank: a cell's candidates start where its first key would.
        # (No cell or slot array as long as the keys: 13.5 million keys each on a province.)
        starts = np.searchsorted(keys, boundary_ids.astype(np.int64) * len(self.polygons))
        self.offsets = np.append(starts, keys.size).astype(np.int64)
        self.candidates = (keys % len(self.polygons)).astype(np.int32)


def label_components(mask: NDArray[np.bool_]) -> tuple[NDArray[np.int32], int]:
    """The 4-connected components of ``mask``: labels 1…n where it is True, 0 elsewhere (int32), and n.

    cc3d, not ``scipy.ndimage.label`` (the same labelling, as fast): importing ``scipy.ndimage``
    cost every build 0.11–0.13 s, as it parses its functions' docstrings, a quarter of a county's
    build (issue 23; bench/RESULTS.md, "The route command's input read while its router is made").
    """
    labels, count = cc3d.connected_components(mask, connectivity=4, return_N=True, out_dtype=np.uint32)
    return labels.view(np.int32), int(count)  # count < cells < 2**31 (MAX_CELLS)


def _spans(counts: NDArray[np.int64], most: int) -> list[slice]:
    """Consecutive slices of ``counts`` summing to about ``most`` each (a single count may exceed it)."""
    ends = np.cumsum(counts)
    spans, first = [], 0
    while first < counts.size:
        done = int(ends[first - 1]) if first else 0
        last = max(int(np.searchsorted(ends, done + most, side="right")), first + 1)
        spans.append(slice(first, last))
        first = last
    return spans


def cell_codes(dtype: np.dtype) -> tuple[int, int]:
    """The raster's codes for a cell no polygon touches and for a boundary cell: the two largest values."""
    top = int(np.iinfo(dtype).max)
    return top, top - 1


def sorted_unique(keys: NDArray[np.int64]) -> NDArray[np.int64]:
    """``np.unique`` of integer keys by one sort: numpy 2.3's hash-based unique took 3 s for 5 million keys."""
    keys = np.sort(keys)
    return keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if keys.size else keys
