"""Coverage checks of a set of polygons in a metric CRS: overlaps, gaps, unmatched edges.

Runs in shapely (≥ 2.1, its GEOS has the coverage functions) because Debian's PostGIS 3.3 links
GEOS 3.11, which has no ``ST_Coverage*``. ``coverage_invalid_edges`` finds overlaps and edges that
do not match their neighbour's vertex for vertex; enclosed gaps it does not flag, so they are found
as the holes of the coverage's union (or as what a parent polygon has that its children lack).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry


@dataclass(frozen=True)
class TopologyProblem:
    """One defect; ``location`` is in the metric CRS of the input, ``area_m2`` is 0 for edges."""

    kind: str  # "overlap" | "gap" | "unmatched_edge"
    codes: tuple[str, ...]
    location: BaseGeometry
    area_m2: float


def coverage_problems(
    geoms: Sequence[BaseGeometry] | np.ndarray,
    codes: Sequence[str],
    *,
    parent: BaseGeometry | None = None,
    tolerance_m2: float = 1.0,
) -> list[TopologyProblem]:
    """Overlaps between polygons, gaps among them (or against ``parent``) and unmatched edges.

    Overlaps and gaps smaller than ``tolerance_m2`` are slivers from digitising and are accepted.
    """
    geoms = np.asarray(geoms, dtype=object)
    problems = _overlaps(geoms, codes, tolerance_m2)
    problems += _gaps(geoms, codes, parent, tolerance_m2)
    overlapping = {code for p in problems if p.kind == "overlap" for code in p.codes}
    edges = shapely.coverage_invalid_edges(geoms)
    for code, edge in zip(codes, edges, strict=True):
        if edge is not None and not edge.is_empty and code not in overlapping:
            problems.append(TopologyProblem("unmatched_edge", (code,), edge, 0.0))
    return problems


def _overlaps(geoms: np.ndarray, codes: Sequence[str], tolerance_m2: float) -> list[TopologyProblem]:
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="overlaps")
    problems = []
    for i, j in zip(left, right, strict=True):
        if i >= j:
            continue
        shared = shapely.intersection(geoms[i], geoms[j])
        area = shapely.area(shared)
        if area >= tolerance_m2:
            problems.append(TopologyProblem("overlap", (codes[i], codes[j]), shared, float(area)))
    return problems


def _gaps(
    geoms: np.ndarray, codes: Sequence[str], parent: BaseGeometry | None, tolerance_m2: float
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
        if piece.area < tolerance_m2:
            continue
        near = [codes[k] for k in tree.query(piece, predicate="touches")]
        problems.append(TopologyProblem("gap", tuple(sorted(set(near))), piece, float(piece.area)))
    return problems


def _polygons(geom: BaseGeometry) -> list[shapely.Polygon]:
    return [p for p in shapely.get_parts(geom) if isinstance(p, shapely.Polygon) and not p.is_empty]
