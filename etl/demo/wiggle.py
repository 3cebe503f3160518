"""Make straight tessellation edges look hand-digitised: gentle wiggles, a vertex every 20–30 m.

Real grid boundaries follow field ridges, ditches and lanes and were traced at a fixed zoom, so
they carry many vertices and never run dead straight. Benchmarks of point-in-polygon and overlay
speed are only meaningful on such boundaries.
"""

from __future__ import annotations

import numpy as np
import shapely

SPACING = (20.0, 30.0)  # metres between vertices along internal edges
OUTER_SPACING = 28.0  # the real outer boundary is only densified (≤ 30 m), never moved
PRECISION = 0.01  # wiggled vertices are rounded to 1 cm, as digitised coordinates are


def wiggle(coords: np.ndarray, rng: np.random.Generator, *, amplitude: float = 1.0) -> np.ndarray:
    """Densify a polyline and offset it sideways by a tapered sum of sines.

    End nodes stay exactly where they are and the offset fades to zero over the first and last
    stretch, so edges meeting at a junction cannot be pushed across each other. ``amplitude`` 0
    gives the densified but straight edge (the fallback where a wiggle would cross a neighbour).
    """
    coords = np.asarray(coords, dtype=float)
    steps = np.diff(coords, axis=0)
    seg = np.hypot(steps[:, 0], steps[:, 1])
    total = float(seg.sum())
    n = max(1, int(round(total / np.mean(SPACING))))
    gaps = rng.uniform(*SPACING, n)
    s = np.cumsum(gaps)[:-1] * (total / gaps.sum())
    phases = rng.uniform(0, 2 * np.pi, 3)
    waves = rng.uniform(70.0, 450.0, 3)
    amps = rng.dirichlet(np.ones(3)) * rng.uniform(1.5, 4.5)
    jitter = rng.normal(0.0, 0.3, len(s)).clip(-0.8, 0.8)
    if n < 2 or total <= 0:
        return coords
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    k = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
    unit = steps / np.where(seg > 0, seg, 1.0)[:, None]
    base = coords[k] + (s - cum[k])[:, None] * unit[k]
    normal = np.column_stack([-unit[k, 1], unit[k, 0]])
    offset = (amps[:, None] * np.sin(2 * np.pi * s[None, :] / waves[:, None] + phases[:, None])).sum(axis=0)
    offset = (offset + jitter) * _taper(s, total) * amplitude
    offset = np.clip(offset, -0.04 * total, 0.04 * total)  # short edges stay nearly straight
    inner = np.round((base + offset[:, None] * normal) / PRECISION) * PRECISION
    if len(coords) > 2:  # keep the corners of a polyline edge
        corners = cum[1:-1]
        at = np.searchsorted(s, corners)
        inner = np.insert(inner, at, coords[1:-1], axis=0)
    return np.vstack([coords[:1], inner, coords[-1:]])


def _taper(s: np.ndarray, total: float) -> np.ndarray:
    """0 at both ends, 1 in the middle; smooth, so the wiggle does not kink where it starts."""
    ramp = min(90.0, total / 3)
    t = np.clip(np.minimum(s, total - s) / ramp, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def densify_outer(edge: shapely.LineString) -> shapely.LineString:
    """The outer boundary with extra vertices only (its shape, hence the city's area, is kept).

    The new vertices are not rounded: on long straight stretches rounding would shave slivers off
    the real boundary.
    """
    return shapely.segmentize(edge, OUTER_SPACING)


def crossing_edges(edges: np.ndarray) -> np.ndarray:
    """Indices of edges that cross another edge or themselves anywhere but at their end nodes.

    ``touches`` settles almost every pair; only pairs where a closed ring is involved (a ring has no
    end nodes in GEOS' sense) need a look at the actual intersection.
    """
    bad = set(np.flatnonzero(~shapely.is_simple(edges)).tolist())
    tree = shapely.STRtree(edges)
    left, right = tree.query(edges, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    suspicious = ~shapely.touches(edges[left], edges[right])
    for a, b in zip(left[suspicious].tolist(), right[suspicious].tolist(), strict=True):
        if not _meet_at_nodes_only(edges[a], edges[b]):
            bad.update((a, b))
    return np.array(sorted(bad), dtype=np.intp)


def _meet_at_nodes_only(a: shapely.LineString, b: shapely.LineString) -> bool:
    shared = shapely.intersection(a, b)
    if shared.is_empty:
        return True
    if shared.geom_type not in ("Point", "MultiPoint"):
        return False
    nodes = np.vstack([shapely.get_coordinates(a)[[0, -1]], shapely.get_coordinates(b)[[0, -1]]])
    points = shapely.get_coordinates(shared)
    d = np.abs(points[:, None, :] - nodes[None, :, :]).max(axis=2).min(axis=1)
    return bool((d < PRECISION / 2).all())
