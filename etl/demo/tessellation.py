"""An exact, digitised-looking partition of the city into grid polygons.

Voronoi cells give a plausible layout; the trick to exactness is to work on the *linework*: every
boundary between two cells is one edge, wiggled and densified once, so the two grids on either side
share it vertex for vertex, and ``polygonize`` turns the edges back into faces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from etl.demo.graph import Adjacency, shared_boundaries
from etl.demo.wiggle import crossing_edges, densify_outer, wiggle

MIN_FACE_M2 = 5_000.0  # smaller faces are slivers where a cell grazes the boundary
# Noding grid: fine enough that snapping the real boundary changes the city by < 1e-8 of its area,
# coarse enough (1e4 × float64 resolution at 10⁶ m) for GEOS to node robustly.
SNAP = 1e-4
RELAX_STEPS = 2


@dataclass(frozen=True)
class Tessellation:
    """Grid polygons (metric, exact coverage of ``city``) and their shared boundaries."""

    polygons: np.ndarray  # object array of Polygon / MultiPolygon
    adjacency: Adjacency
    n_wiggled: int
    n_straight: int


def tessellate(city: BaseGeometry, seeds: np.ndarray, rng: np.random.Generator) -> Tessellation:
    """Partition ``city`` into roughly one face per seed (the exact count depends on the boundary)."""
    seeds = relax(city, seeds, RELAX_STEPS)
    cells = voronoi_cells(city, seeds)
    edges, outer = cell_edges(city, cells)
    shaped, n_straight = _shape_edges(edges, outer, rng)
    faces = edge_faces(city, shaped)
    adjacency = shared_boundaries(faces)
    polygons, adjacency = merge_small(faces, adjacency, MIN_FACE_M2)
    return Tessellation(polygons, adjacency, int((~outer).sum()) - n_straight, n_straight)


def relax(city: BaseGeometry, seeds: np.ndarray, steps: int) -> np.ndarray:
    """Move each seed halfway to its clipped cell's centroid, ``steps`` times (damped Lloyd).

    Raw random seeds make needle-shaped cells and near-duplicate vertices; two damped steps make
    cells compact like real grids while keeping most of the urban/rural contrast.
    """
    for _ in range(steps):
        cells = shapely.intersection(voronoi_cells(city, seeds), city)
        centroids = shapely.get_coordinates(shapely.centroid(cells))
        has_area = shapely.area(cells) > 0
        if len(centroids) != len(seeds):
            break
        seeds = np.where(has_area[:, None], seeds + 0.5 * (centroids - seeds), seeds)
    return seeds


def voronoi_cells(city: BaseGeometry, seeds: np.ndarray) -> np.ndarray:
    """Voronoi cells of the seeds, extended past the city so that clipping leaves no open border."""
    extent = shapely.buffer(shapely.envelope(city), 0.1 * np.sqrt(city.area))
    cells = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=extent, ordered=True)
    return np.asarray(shapely.get_parts(cells))


def cell_edges(city: BaseGeometry, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Noded linework of cell boundaries and the city boundary, merged between junction nodes.

    Returns the edges and whether each lies on the city boundary (those are densified, not moved).
    """
    inside = shapely.intersection(shapely.boundary(cells), city, grid_size=SNAP)
    lines = [g for g in shapely.get_parts(inside) if g.geom_type == "LineString" and not g.is_empty]
    border = shapely.boundary(city)
    network = shapely.union_all([*lines, border], grid_size=SNAP)
    edges = np.asarray(shapely.get_parts(shapely.line_merge(network)))
    edges = edges[shapely.length(edges) > 0]
    # Snap rounding may shift boundary vertices by up to a grid cell, hence some slack.
    outer = np.ones(len(edges), dtype=bool)
    for at in (0.25, 0.5, 0.75):
        probe = shapely.line_interpolate_point(edges, at, normalized=True)
        outer &= shapely.distance(probe, border) < 10 * SNAP
    return edges, outer


def _shape_edges(edges: np.ndarray, outer: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Wiggle internal edges, densify outer ones; straighten any wiggle that crosses another edge."""
    coords = [shapely.get_coordinates(e) for e in edges]
    shaped = np.empty(len(edges), dtype=object)
    for k, (xy, is_outer) in enumerate(zip(coords, outer.tolist(), strict=True)):
        shaped[k] = densify_outer(edges[k]) if is_outer else shapely.LineString(wiggle(xy, rng))
    straight = np.zeros(len(edges), dtype=bool)
    quiet = np.random.default_rng(0)  # the straight fallback must not shift the main stream
    for _ in range(10):
        bad = [k for k in crossing_edges(shaped).tolist() if not outer[k] and not straight[k]]
        if not bad:
            break
        for k in bad:
            shaped[k] = shapely.LineString(wiggle(coords[k], quiet, amplitude=0.0))
            straight[k] = True
    return shaped, int(straight.sum())


def edge_faces(city: BaseGeometry, edges: np.ndarray) -> np.ndarray:
    """Polygonize the edges and keep the faces inside the city (not its holes or enclaves)."""
    faces = np.asarray(shapely.get_parts(shapely.polygonize(edges)))
    shapely.prepare(city)
    probes = shapely.point_on_surface(faces)
    return faces[shapely.contains(city, probes)]


def merge_small(polygons: np.ndarray, adjacency: Adjacency, min_area: float) -> tuple[np.ndarray, Adjacency]:
    """Merge every face smaller than ``min_area`` into the neighbour sharing its longest edge.

    Faces are merged smallest first and a merged group is judged by its total area; a small face
    with no neighbour (a tiny island) joins the nearest face instead. Groups are dissolved with
    ``coverage_union_all``, which keeps the shared vertices, so the result is still an exact
    coverage.
    """
    n = len(polygons)
    areas = shapely.area(polygons)
    group = np.arange(n)
    members = {k: [k] for k in range(n)}
    tree = shapely.STRtree(polygons)
    for face in np.argsort(areas, kind="stable").tolist():
        g = int(group[face])
        if areas[members[g]].sum() >= min_area or len(members) == 1:
            continue
        target = _longest_neighbour(members[g], group, adjacency)
        if target is None:
            near = tree.query_nearest(polygons[face], exclusive=True, all_matches=False)
            candidates = [int(group[k]) for k in np.atleast_1d(near) if group[k] != g]
            if not candidates:
                continue
            target = candidates[0]
        group[members[g]] = target
        members[target].extend(members.pop(g))
    keep = sorted(members)
    relabel = np.full(n, -1)
    relabel[keep] = np.arange(len(keep))
    labels = relabel[group]
    merged = np.empty(len(keep), dtype=object)
    for new, old in enumerate(keep):
        parts = polygons[members[old]]
        merged[new] = parts[0] if len(parts) == 1 else shapely.coverage_union_all(parts)
    return merged, adjacency.between(labels, len(keep))


def _longest_neighbour(face_members: list[int], group: np.ndarray, adjacency: Adjacency) -> int | None:
    inside = np.zeros(adjacency.n, dtype=bool)
    inside[face_members] = True
    out_j = inside[adjacency.i] & ~inside[adjacency.j]
    out_i = inside[adjacency.j] & ~inside[adjacency.i]
    other = group[np.concatenate([adjacency.j[out_j], adjacency.i[out_i]])]
    length = np.concatenate([adjacency.length[out_j], adjacency.length[out_i]])
    if len(other) == 0:
        return None
    unique, inverse = np.unique(other, return_inverse=True)
    return int(unique[np.argmax(np.bincount(inverse, weights=length))])
