"""Coverage reports and siting as the API and the CLI ask for them: load, then compute.

The only module here that both touches the database and calls the pure parts; each function runs
in the caller's session and writes nothing.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer
from sqlalchemy.orm import Session

from geoservice.coverage.inputs import (
    LEVELS,
    CoverageInputs,
    NoDemandLayer,
    Points,
    Sites,
    load_candidate_sites,
    load_inputs,
    sites_from_lonlat,
)
from geoservice.coverage.report import CoverageReport, compute_report, locate_points, place_distances
from geoservice.coverage.rings import RINGS, RingCache, RingSet
from geoservice.coverage.siting import (
    TIME_LIMIT_S,
    Demand,
    Problem,
    SolverRun,
    build_problem,
    exact_gains,
    solve_lscp,
    solve_mclp,
)
from layers.crs import metric_transformer


def ring_sets(
    inputs: CoverageInputs,
    levels: Sequence[str] | None,
    radii_m: dict[str, float],
    cache: RingCache = RINGS,
) -> dict[str, RingSet]:
    """The rings of each requested level (all three by default), from the cache when posts are unchanged.

    ``radii_m`` are the configured ring radii (``RoutingSettings.rings_m``), passed in by the caller.
    """
    return {level: cache.get(level, radii_m[level], inputs.epsg, inputs.posts[level]) for level in (levels or LEVELS)}


def coverage_report(
    session: Session,
    region: str | None = None,
    *,
    levels: Sequence[str] | None = None,
    as_of: datetime | None = None,
    radii_m: dict[str, float],
    metric_crs: str | None = None,
) -> CoverageReport:
    """The report for ``region`` (default: the city) in the boundary version in force.

    ``metric_crs`` is the configured ``GEOSERVICE_METRIC_CRS`` (``RoutingSettings.metric_crs``), passed
    in by the caller; None: the dataset's metric CRS.
    """
    inputs = load_inputs(session, region, as_of or datetime.now(UTC), metric_crs=metric_crs)
    return compute_report(inputs, ring_sets(inputs, levels, radii_m))


DEMANDS = ("population", "places", "events")


@dataclass(frozen=True)
class SuggestedSite:
    """A site for a new post, in WGS84, with the demand it adds."""

    lon: float
    lat: float
    source: str
    code: str
    name: str
    gain: float
    alone: float


@dataclass(frozen=True)
class Suggestion:
    """k new posts of a level for a region: the sites, what they add, and how the answer was found."""

    region_code: str
    region_name: str
    level: str
    radius_m: float
    k: int
    demand: str
    total: float  # demand in the region
    covered_before: float
    sites: list[SuggestedSite]
    problem: Problem
    run: SolverRun
    full: SolverRun | None  # LSCP, when asked
    full_problem: Problem | None
    runtime_s: float
    epsg: int

    @property
    def gain(self) -> float:
        return sum(s.gain for s in self.sites)

    @property
    def covered_after(self) -> float:
        return self.covered_before + self.gain


def suggest_sites(
    session: Session,
    region: str | None,
    level: str,
    k: int,
    *,
    demand: str = "population",
    full: bool = False,
    time_limit_s: float = TIME_LIMIT_S,
    candidates: gpd.GeoDataFrame | None = None,
    as_of: datetime | None = None,
    radii_m: dict[str, float],
    metric_crs: str | None = None,
) -> Suggestion:
    """Where ``k`` new posts of ``level`` would cover the most uncovered ``demand`` in ``region``.

    ``candidates`` (WGS84, any geometry; optional ``code``/``name`` columns) replaces the default
    candidate rule (community and grid centres, key places). ``metric_crs`` as for ``coverage_report``.
    """
    started = time.perf_counter()
    inputs = load_inputs(session, region, as_of or datetime.now(UTC), metric_crs=metric_crs)
    ring = ring_sets(inputs, [level], radii_m)[level]
    points, covered = _demand(inputs, demand, ring)
    uncovered = Demand(points.xy[~covered], points.weight[~covered])
    fwd = metric_transformer(inputs.epsg)
    sites = load_candidate_sites(session, inputs) if candidates is None else _file_sites(candidates, inputs.epsg)
    inside = locate_points(inputs.region, [], sites.xy) >= 0
    pool = np.flatnonzero(inside)
    problem = build_problem(uncovered, sites.xy[pool], ring.radius_m, "mclp")
    problem = dataclasses.replace(problem, candidates=pool[problem.candidates], considered=len(sites.xy))
    run = solve_mclp(problem, k, time_limit_s)
    full_run = full_problem = None
    if full:
        full_problem = build_problem(uncovered, sites.xy[pool], ring.radius_m, "lscp")
        full_problem = dataclasses.replace(
            full_problem, candidates=pool[full_problem.candidates], considered=len(sites.xy)
        )
        full_run = solve_lscp(full_problem, time_limit_s)
    # Gains are measured where the posts will stand once stored: lon/lat projected back again.
    inv = Transformer.from_crs(inputs.epsg, 4326, always_xy=True)
    lon, lat = inv.transform(sites.xy[run.chosen, 0], sites.xy[run.chosen, 1]) if run.chosen else ([], [])
    stored = np.column_stack(fwd.transform(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)))
    suggested = [
        SuggestedSite(float(lon[g.site]), float(lat[g.site]), str(sites.source[run.chosen[g.site]]),
                      str(sites.codes[run.chosen[g.site]]), str(sites.names[run.chosen[g.site]]), g.gain, g.alone)
        for g in exact_gains(stored.reshape(-1, 2), uncovered, ring.radius_m)
    ]  # fmt: skip
    return Suggestion(
        region_code=inputs.region.code,
        region_name=inputs.region.name,
        level=level,
        radius_m=ring.radius_m,
        k=k,
        demand=demand,
        total=points.weight.sum(),
        covered_before=float(points.weight[covered].sum()),
        sites=suggested,
        problem=problem,
        run=run,
        full=full_run,
        full_problem=full_problem,
        runtime_s=time.perf_counter() - started,
        epsg=inputs.epsg,
    )


def _demand(inputs: CoverageInputs, demand: str, ring: RingSet) -> tuple[Points, np.ndarray]:
    """The region's demand as weighted points, and which of them the level's rule already covers.

    Key places stand at their point on surface, but whether one is covered now is decided as the
    report decides it (from its nearest edge), so ``covered_before`` is the report's figure.
    """
    if demand == "population":
        if inputs.people is None:
            raise NoDemandLayer("no population layer is loaded; ask for demand=places or demand=events")
        points, covered = inputs.people, ring.covers(inputs.people.xy)
    elif demand == "events":
        points, covered = inputs.events, ring.covers(inputs.events.xy)
    elif demand == "places":
        xy = shapely.get_coordinates(shapely.point_on_surface(inputs.places.geoms)).reshape(-1, 2)
        points, covered = Points(xy, np.ones(len(xy))), place_distances(inputs.places.geoms, ring)[0] <= ring.radius_m
    else:
        raise ValueError(f"unknown demand {demand!r}; one of {', '.join(DEMANDS)}")
    inside = locate_points(inputs.region, [], points.xy) >= 0
    return Points(points.xy[inside], points.weight[inside]), covered[inside]


def _file_sites(frame: gpd.GeoDataFrame, epsg: int) -> Sites:
    points = shapely.point_on_surface(np.asarray(frame.geometry.values, dtype=object))
    n = len(frame)
    codes = frame["code"].astype(str).tolist() if "code" in frame else [str(i) for i in range(n)]
    names = frame["name"].astype(str).tolist() if "name" in frame else codes
    return sites_from_lonlat(
        shapely.get_x(points).tolist(), shapely.get_y(points).tolist(), ["file"] * n, codes, names, epsg
    )
