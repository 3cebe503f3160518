"""A coverage report (and a siting suggestion) as JSON, GeoJSON and CSV; pure functions of the report.

Geometries leave in WGS84 (RFC 7946), coordinates rounded to 7 decimals (about 1 cm). Areas are in
km², shares are fractions (0–1), distances in metres: the units are in the field names.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from geoservice.coverage.report import CoverageReport, LevelFigures, UnitFigures
from geoservice.coverage.service import Suggestion
from geoservice.coverage.siting import Problem, SolverRun

FIGURE_COLUMNS = (
    "code", "name", "unit_level", "role", "level", "radius_m", "area_km2", "covered_km2", "area_share",
    "population", "population_covered", "population_share", "places", "places_outside", "events",
    "events_outside", "events_outside_share",
)  # fmt: skip
PLACE_COLUMNS = ("level", "code", "name", "type", "unit_code", "distance_m", "nearest_post", "nearest_post_name",
                 "lon", "lat")  # fmt: skip


def to_wgs84(geoms: list[BaseGeometry] | np.ndarray, epsg: int) -> np.ndarray:
    """Metric geometries back to lon/lat."""
    inv = Transformer.from_crs(epsg, 4326, always_xy=True)
    return shapely.transform(
        np.asarray(geoms, dtype=object), lambda xy: np.column_stack(inv.transform(xy[:, 0], xy[:, 1]))
    )


def figures_dict(f: LevelFigures) -> dict[str, Any]:
    return {
        "radius_m": f.radius_m,
        "area_km2": round(f.area_km2, 6),
        "covered_km2": round(f.covered_km2, 6),
        "area_share": _r(f.area_share),
        "population": f.population,
        "population_covered": f.population_covered,
        "population_share": _r(f.population_share),
        "places": f.places,
        "places_outside": f.places_outside,
        "events": f.events,
        "events_outside": f.events_outside,
        "events_outside_share": _r(f.events_outside_share),
    }


def unit_dict(u: UnitFigures, role: str) -> dict[str, Any]:
    return {
        "code": u.code,
        "name": u.name,
        "level": u.level,
        "role": role,
        "levels": {lv: figures_dict(f) for lv, f in u.levels.items()},
    }


def report_json(report: CoverageReport) -> dict[str, Any]:
    """The whole report but the gap polygons (``report_geojson`` has those)."""
    lonlat = _place_lonlat(report)
    return {
        "region": {"code": report.region.code, "name": report.region.name, "level": report.region.level},
        "child_level": report.child_level,
        "version": report.version_name,
        "as_of": report.as_of.isoformat(),
        "events_since": report.since.isoformat(),
        "metric_crs": f"EPSG:{report.epsg}",
        "distances": f"straight lines in EPSG:{report.epsg}",
        "rings_m": report.radii_m,
        "population_loaded": report.population_loaded,
        "region_figures": unit_dict(report.region, "region"),
        "children": [unit_dict(c, "child") for c in report.children],
        "places_outside": [
            {
                "level": p.level,
                "code": p.code,
                "name": p.name,
                "type": p.type,
                "unit_code": p.unit_code,
                "distance_m": _metres(p.distance_m),
                "nearest_post": p.post_code,
                "nearest_post_name": p.post_name,
                "lon": lon,
                "lat": lat,
            }  # fmt: skip
            for p, (lon, lat) in zip(report.places_outside, lonlat, strict=True)
        ],
    }


def report_geojson(report: CoverageReport) -> dict[str, Any]:
    """The gap polygons, one feature per child region (or the region) and level; empty gaps left out."""
    gaps = [g for g in report.gaps if not g.geom.is_empty]
    geoms = shapely.set_precision(to_wgs84([g.geom for g in gaps], report.epsg), 1e-7) if gaps else []
    features = []
    for gap, geom in zip(gaps, geoms, strict=True):
        figures = next(u for u in [report.region, *report.children] if u.code == gap.unit_code).levels[gap.level]
        features.append(
            {
                "type": "Feature",
                "geometry": shapely.geometry.mapping(geom),
                "properties": {
                    "level": gap.level,
                    "radius_m": figures.radius_m,
                    "unit_code": gap.unit_code,
                    "unit_name": gap.unit_name,
                    "gap_km2": round(gap.area_km2, 6),
                    "area_share_covered": _r(figures.area_share),
                },
            }
        )
    return {
        "type": "FeatureCollection",
        "name": f"coverage gaps {report.region.code}",
        "region": report.region.code,
        "version": report.version_name,
        "features": features,
    }


def report_csv(report: CoverageReport) -> str:
    """One row per unit and level: the region first, then its children by code."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIGURE_COLUMNS)
    for role, unit in [("region", report.region), *(("child", c) for c in report.children)]:
        for level, f in unit.levels.items():
            d = figures_dict(f)
            writer.writerow(
                [unit.code, unit.name, unit.level, role, level] + [_cell(d[c]) for c in FIGURE_COLUMNS[5:]]  # fmt: skip
            )
    return out.getvalue()


def places_csv(report: CoverageReport) -> str:
    """Key places outside each rule, farthest first within each level."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(PLACE_COLUMNS)
    for p, (lon, lat) in zip(report.places_outside, _place_lonlat(report), strict=True):
        writer.writerow(
            [p.level, p.code, p.name, p.type, p.unit_code, _cell(_metres(p.distance_m)), p.post_code or "",
             p.post_name or "", lon, lat]
        )  # fmt: skip
    return out.getvalue()


def suggestion_json(s: Suggestion) -> dict[str, Any]:
    """A siting suggestion with the solver's own account of how it got there."""
    return {
        "region": {"code": s.region_code, "name": s.region_name},
        "level": s.level,
        "radius_m": s.radius_m,
        "k": s.k,
        "demand": s.demand,
        "method": f"spopt MCLP solved by PuLP/CBC; straight-line distances in EPSG:{s.epsg}",
        "total": s.total,
        "covered_before": s.covered_before,
        "covered_after": s.covered_after,
        "share_before": _r(s.covered_before / s.total) if s.total else None,
        "share_after": _r(s.covered_after / s.total) if s.total else None,
        "gain": s.gain,
        "sites": [
            {
                "rank": n,
                "lon": round(t.lon, 7),
                "lat": round(t.lat, 7),
                "source": t.source,
                "code": t.code,
                "name": t.name,
                "gain": t.gain,
                "alone": t.alone,
            }
            for n, t in enumerate(s.sites, 1)
        ],  # fmt: skip
        "model": _problem(s.problem),
        "solver": _run(s.run),
        "full_coverage": None
        if s.full is None
        else {
            "posts_needed": len(s.full.chosen) if s.full.chosen or s.full.status == "Trivial" else None,
            "model": _problem(s.full_problem) if s.full_problem else None,
            "solver": _run(s.full),
            "note": "LSCP: the fewest candidate sites that reach all the demand some candidate reaches; "
            "'unreachable' demand is beyond every candidate kept",
        },  # fmt: skip
        "runtime_s": round(s.runtime_s, 3),
    }


def suggestion_geojson(s: Suggestion) -> dict[str, Any]:
    """The suggested sites as points (WGS84), with their gains."""
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [round(t.lon, 7), round(t.lat, 7)]},
                "properties": {
                    "rank": n,
                    "level": s.level,
                    "source": t.source,
                    "code": t.code,
                    "name": t.name,
                    "gain": t.gain,
                    "alone": t.alone,
                },  # fmt: skip
            }
            for n, t in enumerate(s.sites, 1)
        ],
    }


def _problem(p: Problem) -> dict[str, Any]:
    return {
        "candidates_considered": p.considered,
        "candidates_used": int(len(p.candidates)),
        "demand_classes": len(p.covers),
        "demand_cell_m": p.cell_m,
        "unreachable": p.unreachable,
    }


def _run(r: SolverRun) -> dict[str, Any]:
    return {
        "model": r.model,
        "status": r.status,
        "solution": r.solution,
        "objective": r.objective,
        "runtime_s": round(r.runtime_s, 3),
        "time_limit_s": r.time_limit_s,
    }


def _place_lonlat(report: CoverageReport) -> list[tuple[float, float]]:
    if not report.places_outside:
        return []
    points = to_wgs84(shapely.points([p.xy for p in report.places_outside]), report.epsg)
    return [(round(float(x), 7), round(float(y), 7)) for x, y in shapely.get_coordinates(points)]


def _r(share: float | None) -> float | None:
    return None if share is None else round(share, 6)


def _metres(d: float) -> float | None:
    return None if not np.isfinite(d) else round(d, 1)


def _cell(value: Any) -> Any:
    return "" if value is None else value
