"""The nearest grid to a point outside every grid, in metres, without a metric copy of the city.

Snapping (a point within the tolerance of a grid) and the 404 that names the nearest grid both measure
from the point to grid polygons in the city's metric CRS. Until issue 23 the router kept every grid
projected for that: on the prefecture (6,000 grids, 1.2 M vertices) the copy was ~57 MB of a worker's
~350 MB, to answer the few points that fall outside every grid, always near the city's edge.

Here the router keeps only each grid's metric envelope (32 bytes a grid) in an R-tree, and projects a
grid when a query first needs it, keeping it for the next query (up to ``KEPT_GRIDS``). Exact, since
a polygon is never nearer than its envelope:

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
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from numpy.typing import NDArray

from layers.crs import project

NONE = -1
SLACK = 1e-9  # relative: an envelope as near as its grid may measure a hair farther (other segments, other rounding)
KEPT_GRIDS = 4_096  # grids projected by queries and kept, beyond those kept from the start
CHUNK_GRIDS = 2_000  # grids projected at a time while the envelopes are built (bounds the build's peak)


class NearestGrid:
    """Nearest grid (rank, metres) to metric points; the grids are lon/lat polygons in rank order."""

    def __init__(self, polygons: NDArray[np.object_], metric_epsg: int, keep: NDArray[np.intp] | None = None) -> None:
        """``keep``: grids to project now and keep, those a point outside every grid is nearest to (the edges)."""
        self._polygons = polygons
        self._epsg = metric_epsg
        envelopes = np.empty((len(polygons), 4))
        for start in range(0, len(polygons), CHUNK_GRIDS):
            envelopes[start : start + CHUNK_GRIDS] = shapely.bounds(
                project(polygons[start : start + CHUNK_GRIDS], metric_epsg)
            )
        self.envelopes = envelopes
        self._tree = shapely.STRtree(shapely.box(*envelopes.T)) if len(polygons) else None
        kept = [] if keep is None else np.unique(keep).tolist()
        self._kept: dict[int, shapely.Geometry] = dict(zip(kept, project(polygons[kept], metric_epsg), strict=True))
        self._room = len(self._kept) + KEPT_GRIDS

    def one(self, x: float, y: float) -> tuple[int, float]:
        """(rank, metres) of the nearest grid to one metric point; (-1, inf) when there is none (or a NaN point).

        Unbounded, so that one search serves both a snap (the caller compares the metres with its
        tolerance) and the 404 that names the nearest grid: a bounded search first cost the second a
        search of its own.
        """
        if self._tree is None:
            return NONE, math.inf
        point = shapely.Point(x, y)
        nearest_box = self._tree.query_nearest(point, all_matches=False)
        if not nearest_box.size:  # a NaN point
            return NONE, math.inf
        bound = float(shapely.distance(self._metric([int(nearest_box[0])])[0], point))
        ranks = self._tree.query(point, predicate="dwithin", distance=_widened(bound))
        ranks.sort()  # the first least below is then the smallest rank
        distances = shapely.distance(self._metric(ranks.tolist()), point)
        k = int(distances.argmin())
        return int(ranks[k]), float(distances[k])

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


def _widened(metres: float) -> float:
    """The envelope search radius: a little wider than ``metres``, whose exact test comes after."""
    return metres * (1 + SLACK) + SLACK
