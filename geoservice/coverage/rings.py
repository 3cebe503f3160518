"""Coverage rings: each post buffered by its level's radius, in the city's metric CRS.

"百米见村级警务室、千米见中心警务室、万米见派出所": a place is within a level's rule when a post of
that level is at most the level's radius away (``RoutingSettings.ring_*_m``: 100 m, 1 km, 10 km).

Two representations, each used where it is exact:

* **distances** (a k-d tree over the post points) decide whether a point — a population cell, an
  event, a key place — is within the rule: ``distance ≤ radius``, the same test ``locate`` answers
  with ``within_ring``, with no polygon approximation at all;
* **ring polygons** (``buffer`` with ``QUAD_SEGS`` segments per quarter circle, i.e. a 128-gon)
  measure covered *area* and draw the gaps. A 128-gon inscribed in the circle has 0.04 % less area
  than the circle (1 − sin(2π/128)·128/2π); PostGIS ``ST_Buffer(…, 'quad_segs=32')`` builds the same
  polygon, so the two ways of computing agree far better than that.

Stored or computed? Rings are computed on demand from the posts and kept in a small in-process
cache keyed by a fingerprint of the posts (count, largest id and a hash of every id, code, level and
coordinate) and the radius, so a report after any change to the posts uses fresh rings, without a
table to keep in step or a migration. Building them is cheap (400 posts: a few milliseconds of
buffers and one union per level); the cache saves the union for repeated reports on a busy server.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import shapely
from scipy.spatial import cKDTree
from shapely.geometry.base import BaseGeometry

from geoservice.coverage.inputs import Posts

QUAD_SEGS = 32
CACHE_SIZE = 16


@dataclass(frozen=True)
class RingSet:
    """The rings of one level: post points, their buffers, an R-tree over them and their union."""

    level: str
    radius_m: float
    posts: Posts
    polygons: np.ndarray  # one buffer per post
    tree: shapely.STRtree
    union: BaseGeometry
    kdtree: cKDTree | None  # None when the level has no posts

    def nearest(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance to the nearest post of this level and its index, for each point (inf/-1 if none)."""
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        if self.kdtree is None or len(xy) == 0:
            return np.full(len(xy), np.inf), np.full(len(xy), -1, dtype=np.intp)
        distance, index = self.kdtree.query(xy)
        return distance, index

    def covers(self, xy: np.ndarray) -> np.ndarray:
        """Whether each point is within the rule (some post no farther than the radius)."""
        return self.nearest(xy)[0] <= self.radius_m

    def union_near(self, geom: BaseGeometry) -> BaseGeometry:
        """The union of only the rings that touch ``geom`` (cheaper to overlay than the whole union)."""
        hits = self.tree.query(geom, predicate="intersects")
        if len(hits) == 0:
            return shapely.Polygon()
        if len(hits) == len(self.polygons):
            return self.union
        return shapely.union_all(self.polygons[np.sort(hits)])


def build_rings(level: str, radius_m: float, posts: Posts) -> RingSet:
    """Buffers of every post of ``level`` (pure: same posts, same rings)."""
    if radius_m <= 0:
        raise ValueError(f"the ring radius of {level} must be positive, not {radius_m}")
    polygons = (
        shapely.buffer(shapely.points(posts.xy), radius_m, quad_segs=QUAD_SEGS)
        if len(posts.xy)
        else np.empty(0, dtype=object)
    )
    return RingSet(
        level=level,
        radius_m=float(radius_m),
        posts=posts,
        polygons=np.asarray(polygons, dtype=object),
        tree=shapely.STRtree(polygons),
        union=shapely.union_all(polygons) if len(polygons) else shapely.Polygon(),
        kdtree=cKDTree(posts.xy) if len(posts.xy) else None,
    )


def fingerprint(posts: Posts) -> str:
    """Count, largest id and a hash of every id, code and coordinate: changes whenever the posts do."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(posts.ids, dtype=np.int64).tobytes())
    digest.update("\x1f".join(map(str, posts.codes)).encode())
    digest.update(np.ascontiguousarray(posts.xy, dtype=np.float64).tobytes())
    top = int(posts.ids.max()) if len(posts.ids) else 0
    return f"{len(posts.ids)}:{top}:{digest.hexdigest()[:32]}"


class RingCache:
    """A small LRU of ring sets by (level, radius, metric CRS, posts fingerprint); thread-safe."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._items: OrderedDict[tuple, RingSet] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, level: str, radius_m: float, epsg: int, posts: Posts) -> RingSet:
        key = (level, float(radius_m), epsg, fingerprint(posts))
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        rings = build_rings(level, radius_m, posts)
        with self._lock:
            self._items[key] = rings
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return rings

    def clear(self) -> None:
        """Forget every ring set (benchmarks time a cold start)."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


RINGS = RingCache()
