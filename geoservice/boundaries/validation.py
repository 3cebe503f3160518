"""Is a boundary version fit to publish? Every problem, located, in words a planner understands.

``check_grids`` is pure (grids, community polygons and an area function in, findings out) so each
rule can be tried on crafted shapes; ``validate_version`` reads a version from PostGIS and runs it.
Overlaps, gaps and unmatched edges come from ``etl.topology.coverage_problems``, the same checks an
import runs, with the same sliver tolerance: overlaps anywhere, gaps inside each community (against
its polygon) and gaps between communities (holes in the union of all grids that no community
check already reported).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from etl.topology import TopologyProblem, coverage_problems
from geoservice.boundaries.geometry import geojson_of, polygonal, union_of
from geoservice.boundaries.settings import BoundarySettings
from layers.crs import M2_PER_SQUARE_DEGREE_AT_MOST, AreaFunction, city_metric_epsg, metric_area

GRID_CODE = re.compile(r"\d{15}")
REASON_AT = re.compile(r"\[\s*(-?[\d.eE+-]+)\s+(-?[\d.eE+-]+)\s*\]")


@dataclass(frozen=True)
class GridShape:
    """What validation needs of a grid."""

    code: str
    community_code: str
    geom: BaseGeometry | None


@dataclass(frozen=True)
class Finding:
    """One error: what kind, which grids, a sentence, and where (lon/lat) to look on the map."""

    kind: str
    codes: tuple[str, ...]
    message: str
    location: BaseGeometry | None = None
    area_m2: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "codes": list(self.codes),
            "message": self.message,
            "area_m2": None if self.area_m2 is None else round(self.area_m2, 2),
            "location": geojson_of(self.location),
        }


@dataclass(frozen=True)
class ValidationReport:
    """The outcome for one version; publishable when there is no finding."""

    version_id: int
    grids: int
    findings: list[Finding]
    sliver_tolerance_m2: float
    tiny_grid_m2: float

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_json(self) -> dict[str, Any]:
        return {
            "version_id": self.version_id,
            "valid": self.ok,
            "grids": self.grids,
            "errors": [f.as_json() for f in self.findings],
            "counts": dict(Counter(f.kind for f in self.findings)),
            "sliver_tolerance_m2": self.sliver_tolerance_m2,
            "tiny_grid_m2": self.tiny_grid_m2,
        }

    def as_geojson(self) -> dict[str, Any]:
        """The located errors as a FeatureCollection, for the map."""
        features = [
            {"type": "Feature", "geometry": geojson_of(f.location),
             "properties": {k: v for k, v in f.as_json().items() if k != "location"}}
            for f in self.findings
        ]  # fmt: skip
        return {"type": "FeatureCollection", "features": features}


def validate_version(
    session: Session, version_id: int, settings: BoundarySettings, *, metric_crs: str | None
) -> ValidationReport:
    """Read the version's grids and communities and check them.

    Areas (tiny grids, slivers) are measured in the city's metric CRS: ``metric_crs`` is the configured
    ``GEOSERVICE_METRIC_CRS`` (``RoutingSettings.metric_crs``) the caller passes in; None: the dataset's.
    """
    rows = session.execute(
        text("SELECT code, community_code, ST_AsBinary(geom) AS wkb FROM grids WHERE version_id = :v ORDER BY code"),
        {"v": version_id},
    ).all()
    grids = [GridShape(r.code, r.community_code, shapely.from_wkb(bytes(r.wkb)) if r.wkb else None) for r in rows]
    communities = {
        r.code: shapely.from_wkb(bytes(r.wkb))
        for r in session.execute(
            text("SELECT code, ST_AsBinary(geom) AS wkb FROM regions WHERE version_id = :v AND level = 'community'"),
            {"v": version_id},
        )
    }
    city = session.execute(
        text("SELECT ST_AsBinary(ST_Union(geom)) FROM regions WHERE version_id = :v AND level = 'city'"),
        {"v": version_id},
    ).scalar()
    area_m2 = metric_area(city_metric_epsg(session, metric_crs)) if grids else (lambda g: 0.0)
    findings = check_grids(
        grids, communities, area_m2, outline=shapely.from_wkb(bytes(city)) if city else None,
        sliver_m2=settings.sliver_tolerance_m2, tiny_m2=settings.tiny_grid_m2,
    )  # fmt: skip
    if not grids:
        findings.insert(0, Finding("no_grids", (), "this version has no grids: import or add some first"))
    return ValidationReport(version_id, len(grids), findings, settings.sliver_tolerance_m2, settings.tiny_grid_m2)


def check_grids(
    grids: Sequence[GridShape],
    communities: Mapping[str, BaseGeometry],
    area_m2: AreaFunction,
    *,
    outline: BaseGeometry | None = None,
    sliver_m2: float = 1.0,
    tiny_m2: float = 100.0,
) -> list[Finding]:
    """Every error in a set of grids; see the module docstring for the rules.

    ``outline`` is the city's polygon: ground inside it that no grid covers is a gap even where it
    is not enclosed by grids (at the city's edge, between two communities).
    """
    findings = _code_findings(grids, communities)
    usable: list[GridShape] = []
    for grid in grids:
        problem = _shape_finding(grid, area_m2, tiny_m2)
        if problem is not None:
            findings.append(problem)
        if grid.geom is not None and polygonal(grid.geom):
            # Coverage checks need valid polygons: an invalid grid takes part as make_valid sees it,
            # so its neighbours' overlaps and gaps are still reported where they are.
            geom = grid.geom if grid.geom.is_valid else shapely.make_valid(grid.geom)
            usable.append(GridShape(grid.code, grid.community_code, _polygonal_part(geom)))
    if usable:
        nesting = _nesting_findings(usable, communities, area_m2, sliver_m2)
        findings += nesting
        outside = {code for f in nesting for code in f.codes}
        findings += _coverage_findings(usable, communities, outline, area_m2, sliver_m2, outside)
    return findings


# --- codes ---------------------------------------------------------------------------------------
def _code_findings(grids: Sequence[GridShape], communities: Mapping[str, BaseGeometry]) -> list[Finding]:
    findings = []
    for code, times in Counter(g.code for g in grids).items():
        if times > 1:
            findings.append(Finding("duplicate_code", (code,), f"grid code {code} is used by {times} grids"))
    for grid in grids:
        if not GRID_CODE.fullmatch(grid.code):
            findings.append(Finding(
                "malformed_code", (grid.code,),
                f"grid code {grid.code!r} is not 15 digits (its community's 12-digit code + a 3-digit serial)",
                grid.geom,
            ))  # fmt: skip
        elif not grid.code.startswith(grid.community_code):
            findings.append(Finding(
                "malformed_code", (grid.code,),
                f"grid code {grid.code} does not start with its community's code {grid.community_code}", grid.geom,
            ))  # fmt: skip
        if grid.community_code not in communities:
            findings.append(Finding(
                "unknown_community", (grid.code,),
                f"grid {grid.code} belongs to community {grid.community_code}, which is not in this version",
                grid.geom,
            ))  # fmt: skip
    return findings


# --- single shapes -------------------------------------------------------------------------------
def _shape_finding(grid: GridShape, area_m2: AreaFunction, tiny_m2: float) -> Finding | None:
    geom = grid.geom
    if geom is None or geom.is_empty:
        return Finding("empty_grid", (grid.code,), f"grid {grid.code} has no geometry: draw it or remove the grid")
    if not polygonal(geom):
        return Finding("invalid_geometry", (grid.code,), f"grid {grid.code} is a {geom.geom_type}, not a polygon", geom)
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        where = _invalid_location(geom, reason)
        return Finding(
            "invalid_geometry", (grid.code,),
            f"grid {grid.code}'s outline is not a valid polygon ({reason.split('[')[0].strip()}): "
            "redraw the edges marked on the map so they do not cross",
            where,
        )  # fmt: skip
    area = area_m2(geom)
    if area < tiny_m2:
        return Finding(
            "tiny_grid", (grid.code,),
            f"grid {grid.code} covers only {area:,.1f} m² (less than {tiny_m2:,.0f} m²): "
            "merge it into a neighbour or remove it",
            geom, area,
        )  # fmt: skip
    return None


def _invalid_location(geom: BaseGeometry, reason: str) -> BaseGeometry:
    """The edges that meet at the point GEOS names (or the point itself when no edge passes there)."""
    match = REASON_AT.search(reason)
    if not match:
        return geom.boundary
    point = shapely.Point(float(match.group(1)), float(match.group(2)))
    coords = [c for ring in _rings(geom) for c in zip(ring.coords[:-1], ring.coords[1:], strict=True)]
    edges = [shapely.LineString(pair) for pair in coords]
    near = [e for e in edges if e.distance(point) < 1e-9]
    return shapely.MultiLineString(near) if near else point


def _rings(geom: BaseGeometry) -> list[shapely.LinearRing]:
    return [ring for poly in shapely.get_parts(geom) for ring in (poly.exterior, *poly.interiors)]


def _polygonal_part(geom: BaseGeometry) -> BaseGeometry:
    parts = [p for p in shapely.get_parts(geom) if isinstance(p, shapely.Polygon) and not p.is_empty]
    return shapely.union_all(parts) if len(parts) > 1 else parts[0]


# --- nesting -------------------------------------------------------------------------------------
def _nesting_findings(
    grids: list[GridShape], communities: Mapping[str, BaseGeometry], area_m2: AreaFunction, sliver_m2: float
) -> list[Finding]:
    findings = []
    for grid in grids:
        community = communities.get(grid.community_code)
        if community is None:
            continue  # reported as unknown_community
        outside = shapely.difference(grid.geom, community)
        area = area_m2(outside)
        if area >= sliver_m2:
            findings.append(Finding(
                "not_nested", (grid.code,),
                f"grid {grid.code} reaches {area:,.1f} m² outside its community {grid.community_code}: "
                "a grid must lie inside its community",
                outside, area,
            ))  # fmt: skip
    return findings


# --- coverage ------------------------------------------------------------------------------------
def _coverage_findings(
    grids: list[GridShape],
    communities: Mapping[str, BaseGeometry],
    outline: BaseGeometry | None,
    area_m2: AreaFunction,
    sliver_m2: float,
    outside: set[str],
) -> list[Finding]:
    geoms = [g.geom for g in grids]
    codes = [g.code for g in grids]
    findings = []
    everywhere = coverage_problems(geoms, codes, area_m2=area_m2, tolerance_m2=sliver_m2)
    for problem in everywhere:
        if problem.kind == "overlap":
            findings.append(_overlap(problem))
        elif problem.kind == "unmatched_edge":
            findings.append(_unmatched(problem))
    inside: list[BaseGeometry] = []
    by_community: dict[str, list[GridShape]] = defaultdict(list)
    for grid in grids:
        by_community[grid.community_code].append(grid)
    suspects = {c for p in everywhere for c in p.codes} | {g.code for g in grids if g.code in outside}
    for community, members in sorted(by_community.items()):
        if _surely_filled(communities.get(community), members, suspects, sliver_m2):
            continue
        found = coverage_problems(
            [g.geom for g in members], [g.code for g in members], area_m2=area_m2,
            parent=communities.get(community), tolerance_m2=sliver_m2,
        )  # fmt: skip
        for problem in found:
            if problem.kind == "gap":
                inside.append(problem.location)
                findings.append(Finding(
                    "gap", problem.codes,
                    f"a gap of {problem.area_m2:,.1f} m² inside community {community} belongs to no grid"
                    + (f" (next to {', '.join(problem.codes)})" if problem.codes else "")
                    + ": give it to a neighbouring grid",
                    problem.location, problem.area_m2,
                ))  # fmt: skip
    if outline is not None:
        overlapping = any(p.kind == "overlap" for p in everywhere)
        union = shapely.union_all(geoms) if overlapping else union_of(geoms)
        missing = [shapely.difference(outline, union)]
    else:
        missing = [p.location for p in everywhere if p.kind == "gap"]
    reported = shapely.union_all(inside) if inside else None
    for gap in missing:
        rest = gap if reported is None else shapely.difference(gap, reported)
        for piece in shapely.get_parts(rest):
            area = area_m2(piece)
            if area < sliver_m2 or not isinstance(piece, shapely.Polygon):
                continue
            near = tuple(c for c, g in zip(codes, geoms, strict=True) if shapely.intersects(g, piece))
            between = sorted({c[:12] for c in near})
            findings.append(Finding(
                "gap", near,
                f"a gap of {area:,.1f} m² between communities {', '.join(between) or '(none)'} belongs to no grid: "
                "give it to a neighbouring grid",
                piece, area,
            ))  # fmt: skip
    return findings


def _surely_filled(
    community: BaseGeometry | None, members: list[GridShape], suspects: set[str], sliver_m2: float
) -> bool:
    """Whether the community's grids surely leave no gap of ``sliver_m2``, without computing any.

    When its grids neither overlap nor leave it, the uncovered part of a community has exactly the
    area of the community minus theirs; bounded from above in m², that settles most communities
    without a polygon difference (the slow part of validating a whole city).
    """
    if community is None or any(g.code in suspects for g in members):
        return False
    planar = shapely.area(community) - sum(shapely.area(g.geom) for g in members)
    return planar * M2_PER_SQUARE_DEGREE_AT_MOST < sliver_m2


def _overlap(problem: TopologyProblem) -> Finding:
    a, b = problem.codes
    return Finding(
        "overlap", problem.codes,
        f"grids {a} and {b} overlap by {problem.area_m2:,.1f} m²: the marked area must belong to one of them",
        problem.location, problem.area_m2,
    )  # fmt: skip


def _unmatched(problem: TopologyProblem) -> Finding:
    (code,) = problem.codes
    return Finding(
        "unmatched_edge", problem.codes,
        f"an edge of grid {code} does not meet its neighbour vertex for vertex (a hairline gap or overlap): "
        "snap the marked edge to the neighbour's",
        problem.location, 0.0,
    )  # fmt: skip
