"""Coverage checks of a set of polygons: overlaps, gaps, unmatched edges.

Topology is judged on the coordinates as stored (lon/lat): reprojecting first would bend straight
edges into curves and report slivers that are not in the data. Only areas are measured in metres,
through the ``area_m2`` function the caller passes (a projection to the city's metric CRS).

It runs in shapely (≥ 2.1, its GEOS has the coverage functions) because Debian's PostGIS 3.3 links
GEOS 3.11, which has no ``ST_Coverage*``. ``coverage_invalid_edges`` finds overlaps and edges that
do not match their neighbour's vertex for vertex; enclosed gaps it does not flag, so they are found
as the holes of the coverage's union (or as what a parent polygon has that its children lack).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

AreaFunction = Callable[[BaseGeometry], float]


@dataclass(frozen=True)
class TopologyProblem:
    """One defect; ``location`` is in the input's coordinates, ``area_m2`` is 0 for edges."""

    kind: str  # "overlap" | "gap" | "unmatched_edge"
    codes: tuple[str, ...]
    location: BaseGeometry
    area_m2: float


def coverage_problems(
    geoms: Sequence[BaseGeometry] | np.ndarray,
    codes: Sequence[str],
    *,
    area_m2: AreaFunction,
    parent: BaseGeometry | None = None,
    tolerance_m2: float = 1.0,
) -> list[TopologyProblem]:
    """Overlaps between polygons, gaps among them (or against ``parent``) and unmatched edges.

    Overlaps and gaps smaller than ``tolerance_m2`` are slivers from digitising and are accepted.
    """
    geoms = np.asarray(geoms, dtype=object)
    problems = _overlaps(geoms, codes, area_m2, tolerance_m2)
    problems += _gaps(geoms, codes, parent, area_m2, tolerance_m2)
    overlapping = {code for p in problems if p.kind == "overlap" for code in p.codes}
    edges = shapely.coverage_invalid_edges(geoms)
    for code, edge in zip(codes, edges, strict=True):
        if edge is not None and not edge.is_empty and code not in overlapping:
            problems.append(TopologyProblem("unmatched_edge", (code,), edge, 0.0))
    return problems


def _overlaps(
    geoms: np.ndarray, codes: Sequence[str], area_m2: AreaFunction, tolerance_m2: float
) -> list[TopologyProblem]:
    left, right = shapely.STRtree(geoms).query(geoms, predicate="overlaps")
    problems = []
    for i, j in zip(left, right, strict=True):
        if i >= j:
            continue
        shared = shapely.intersection(geoms[i], geoms[j])
        area = area_m2(shared)
        if area >= tolerance_m2:
            problems.append(TopologyProblem("overlap", (codes[i], codes[j]), shared, float(area)))
    return problems


def _gaps(
    geoms: np.ndarray,
    codes: Sequence[str],
    parent: BaseGeometry | None,
    area_m2: AreaFunction,
    tolerance_m2: float,
) -> list[TopologyProblem]:
    union = shapely.union_all(geoms)
    if parent is not None:
        missing = shapely.difference(parent, union)
    else:
        holes = [shapely.Polygon(ring) for poly in _polygons(union) for ring in poly.interiors]
        missing = shapely.union_all(holes) if holes else shapely.Polygon()
    tree = shapely.STRtree(geoms)
    problems = []
    for piece in _polygons(missing):
        area = area_m2(piece)
        if area < tolerance_m2:
            continue
        near = [codes[k] for k in tree.query(piece, predicate="touches")]
        problems.append(TopologyProblem("gap", tuple(sorted(set(near))), piece, float(area)))
    return problems


def _polygons(geom: BaseGeometry) -> list[shapely.Polygon]:
    return [p for p in shapely.get_parts(geom) if isinstance(p, shapely.Polygon) and not p.is_empty]


@dataclass(frozen=True)
class SliverRepair:
    """A gap or overlap that was given to one neighbour: the one with the longest shared edge."""

    kind: str  # "gap" | "overlap"
    code: str  # the polygon that now holds the piece
    others: tuple[str, ...]  # the other neighbours (for an overlap: the one that gave it up)
    location: BaseGeometry
    area_m2: float
    shared_m: float

    def __str__(self) -> str:
        where = self.location.representative_point()
        taken = f", taken from {', '.join(self.others)}" if self.kind == "overlap" else ""
        return (
            f"{self.kind} of {self.area_m2:,.1f} m² near lon {where.x:.6f}, lat {where.y:.6f} given to {self.code} "
            f"(longest shared edge, {self.shared_m:,.1f} m){taken}"
        )


def repair_slivers(
    geoms: Sequence[BaseGeometry] | np.ndarray,
    codes: Sequence[str],
    *,
    area_m2: AreaFunction,
    length_m: AreaFunction,
    parent: BaseGeometry | None = None,
    tolerance_m2: float = 1.0,
    max_m2: float,
) -> tuple[np.ndarray, list[SliverRepair]]:
    """Give each overlap and gap from ``tolerance_m2`` up to ``max_m2`` to the neighbour sharing the longest edge.

    Digitised layers never meet exactly; a person fixing them by hand would hand each sliver to the
    grid it mostly borders, and so does this. Larger pieces are left alone (validation still
    reports them, located). An overlap stays with the winner and is cut from the other polygon.
    """
    geoms = np.array(geoms, dtype=object)
    repairs: list[SliverRepair] = []
    index_of = {code: i for i, code in enumerate(codes)}
    for problem in _overlaps(geoms, codes, area_m2, tolerance_m2):
        if problem.area_m2 >= max_m2:
            continue
        i, j = (index_of[c] for c in problem.codes)
        shared = {k: length_m(shapely.intersection(problem.location.boundary, geoms[k].boundary)) for k in (i, j)}
        winner, loser = (i, j) if shared[i] >= shared[j] else (j, i)
        geoms[loser] = shapely.difference(geoms[loser], geoms[winner])
        repairs.append(SliverRepair("overlap", codes[winner], (codes[loser],), problem.location, problem.area_m2,
                                    shared[winner]))  # fmt: skip
    for problem in _gaps(geoms, codes, parent, area_m2, tolerance_m2):
        if problem.area_m2 >= max_m2 or not problem.codes:
            continue
        shared = {
            index_of[c]: length_m(shapely.intersection(problem.location.boundary, geoms[index_of[c]].boundary))
            for c in problem.codes
        }
        winner = max(shared, key=lambda k: (shared[k], -k))
        geoms[winner] = shapely.union(geoms[winner], problem.location)
        others = tuple(codes[k] for k in shared if k != winner)
        repairs.append(SliverRepair("gap", codes[winner], others, problem.location, problem.area_m2, shared[winner]))
    return geoms, repairs
