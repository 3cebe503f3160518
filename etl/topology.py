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
