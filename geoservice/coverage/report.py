"""The figures of a coverage report, per region and per child region, as pure functions.

For each post level and each unit (the region, then its children one level down: city → towns,
town → communities, community → grids):

* **area**: the unit's area and the part of it inside the level's rings (ring polygons, see
  ``rings``), with the gap (the unit minus the rings) kept as a polygon;
* **population**: people in the unit and those within the level's radius of a post, when a
  population layer is loaded;
* **key places**: those in the unit, and each one farther than the radius from every post of the
  level, listed with its distance to the nearest such post (a polygon place is measured from its
  nearest edge, and belongs to the unit holding its ``point_on_surface``);
* **events** of the twelve months before ``as_of``: in the unit, and outside the rule.

A point on the shared edge of two children counts in the first by code, as ``locate`` places it,
so children's figures add up to the region's. Distances are straight lines in the metric CRS.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geoservice.coverage.inputs import CoverageInputs, Points, Unit
from geoservice.coverage.rings import RingSet


@dataclass(frozen=True)
class LevelFigures:
    """One unit's figures for one post level; population figures are None without a population layer."""

    level: str
    radius_m: float
    area_km2: float
    covered_km2: float
    population: float | None
    population_covered: float | None
    places: int
    places_outside: int
    events: int
    events_outside: int

    @property
    def area_share(self) -> float | None:
        return _share(self.covered_km2, self.area_km2)

    @property
    def population_share(self) -> float | None:
        return None if self.population is None else _share(self.population_covered or 0.0, self.population)

    @property
    def events_outside_share(self) -> float | None:
        return _share(self.events_outside, self.events)


@dataclass(frozen=True)
class UnitFigures:
    """A unit (the region or one child) and its figures per level."""

    code: str
    name: str
    level: str
    levels: dict[str, LevelFigures]


@dataclass(frozen=True)
class PlaceOutside:
    """A key place outside a level's rule, with the nearest post of that level (None if there is none)."""

    level: str
    code: str
    name: str
    type: str
    unit_code: str
    distance_m: float
    post_code: str | None
    post_name: str | None
    xy: tuple[float, float]  # metric point on surface


@dataclass(frozen=True)
class Gap:
    """The part of a unit outside every ring of a level (metric; empty when fully covered)."""

    level: str
    unit_code: str
    unit_name: str
    geom: BaseGeometry

    @property
    def area_km2(self) -> float:
        return self.geom.area / 1e6


@dataclass(frozen=True)
class CoverageReport:
    """Figures for a region and its children, the places outside each rule, and the gap polygons."""

    version_name: str
    epsg: int
    as_of: datetime
    since: datetime
    region: UnitFigures
    children: list[UnitFigures]
    child_level: str | None
    places_outside: list[PlaceOutside]
    gaps: list[Gap]  # per child (or for the region itself when it has no children), per level
    population_loaded: bool
    radii_m: dict[str, float]
    outlines: dict[str, BaseGeometry]  # unit code → metric polygon, for maps
    posts_xy: dict[str, np.ndarray]  # level → metric post points, for maps

    @property
    def levels(self) -> list[str]:
        return list(self.radii_m)


def compute_report(inputs: CoverageInputs, rings: dict[str, RingSet]) -> CoverageReport:
    """Every figure of the report for the levels in ``rings`` (pure: same inputs, same report)."""
    units = [inputs.region, *inputs.children]
    has_children = bool(inputs.children)
    people = inputs.people
    people_at = locate_points(inputs.region, inputs.children, people.xy) if people is not None else None
    events_at = locate_points(inputs.region, inputs.children, inputs.events.xy)
    place_points = (
        shapely.point_on_surface(inputs.places.geoms) if len(inputs.places.geoms) else np.empty(0, dtype=object)
    )
    place_xy = shapely.get_coordinates(place_points).reshape(-1, 2)
    places_at = locate_points(inputs.region, inputs.children, place_xy)

    per_unit: dict[str, dict[str, LevelFigures]] = {u.code: {} for u in units}
    outside: list[PlaceOutside] = []
    gaps: list[Gap] = []
    for level, ring in rings.items():
        unit_gaps = [_gap(u, ring) for u in units]
        pop = _point_figures(people, people_at, ring, len(units)) if people is not None else None
        ev = _point_figures(inputs.events, events_at, ring, len(units))
        distance, nearest = place_distances(inputs.places.geoms, ring)
        in_region = places_at >= 0
        far = in_region & ~(distance <= ring.radius_m)
        place_total = np.bincount(places_at[in_region], minlength=len(units))
        place_far = np.bincount(places_at[far], minlength=len(units))
        for k, unit in enumerate(units):
            per_unit[unit.code][level] = LevelFigures(
                level=level,
                radius_m=ring.radius_m,
                area_km2=unit.geom.area / 1e6,
                covered_km2=max(0.0, unit.geom.area - unit_gaps[k].area) / 1e6,
                population=None if pop is None else float(pop[0][k]),
                population_covered=None if pop is None else float(pop[1][k]),
                places=int(place_total[k] if k else in_region.sum()),
                places_outside=int(place_far[k] if k else far.sum()),
                events=int(ev[0][k]),
                events_outside=int(ev[0][k] - ev[1][k]),
            )
        for i in np.flatnonzero(far):
            unit = units[places_at[i]]
            post = int(nearest[i])
            outside.append(
                PlaceOutside(
                    level=level,
                    code=str(inputs.places.codes[i]),
                    name=str(inputs.places.names[i]),
                    type=str(inputs.places.types[i]),
                    unit_code=unit.code,
                    distance_m=float(distance[i]),
                    post_code=str(ring.posts.codes[post]) if post >= 0 else None,
                    post_name=str(ring.posts.names[post]) if post >= 0 else None,
                    xy=(float(place_xy[i, 0]), float(place_xy[i, 1])),
                )
            )
        shown = range(1, len(units)) if has_children else range(1)
        gaps += [Gap(level, units[k].code, units[k].name, unit_gaps[k]) for k in shown]
    outside.sort(key=lambda p: (p.level, -p.distance_m, p.code))
    figures = [UnitFigures(u.code, u.name, u.level, per_unit[u.code]) for u in units]
    return CoverageReport(
        version_name=inputs.version_name,
        epsg=inputs.epsg,
        as_of=inputs.as_of,
        since=inputs.since,
        region=figures[0],
        children=figures[1:],
        child_level=inputs.children[0].level if has_children else None,
        places_outside=outside,
        gaps=gaps,
        population_loaded=people is not None,
        radii_m={level: ring.radius_m for level, ring in rings.items()},
        outlines={u.code: u.geom for u in units},
        posts_xy={level: ring.posts.xy for level, ring in rings.items()},
    )


def locate_points(region: Unit, children: list[Unit], xy: np.ndarray) -> np.ndarray:
    """Per point: -1 outside the region, 0 inside it but in no child, k ≥ 1 in child k-1 (first by code wins).

    Covers, not contains: a point on the region's boundary is in it, as ``locate`` has it.
    """
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    out = np.full(len(xy), -1, dtype=np.intp)
    if len(xy) == 0:
        return out
    shapely.prepare(region.geom)
    out[shapely.intersects_xy(region.geom, xy[:, 0], xy[:, 1])] = 0
    for k, child in enumerate(children, 1):
        minx, miny, maxx, maxy = child.geom.bounds
        x, y = xy[:, 0], xy[:, 1]
        near = np.flatnonzero((out == 0) & (x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy))
        if len(near) == 0:
            continue
        shapely.prepare(child.geom)
        out[near[shapely.intersects_xy(child.geom, x[near], y[near])]] = k
    return out


def _gap(unit: Unit, ring: RingSet) -> BaseGeometry:
    """The gap: the unit minus the rings near it."""
    near = ring.union_near(unit.geom) if len(ring.polygons) else None
    if near is None or near.is_empty:
        return unit.geom
    return shapely.difference(unit.geom, near)


def _point_figures(points: Points, located: np.ndarray, ring: RingSet, n_units: int) -> tuple[np.ndarray, np.ndarray]:
    """(total weight, weight within the rule) per unit; index 0 is the whole region."""
    inside = located >= 0
    weight = points.weight[inside]
    covered = ring.covers(points.xy[inside])
    where = located[inside]
    total = np.bincount(where, weights=weight, minlength=n_units)
    within = np.bincount(where, weights=weight * covered, minlength=n_units)
    total[0], within[0] = weight.sum(), (weight * covered).sum()
    return total, within


def place_distances(geoms: np.ndarray, ring: RingSet) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each place (its nearest part) to the nearest post of the level, and that post."""
    if len(geoms) == 0 or len(ring.posts.xy) == 0:
        return np.full(len(geoms), np.inf), np.full(len(geoms), -1, dtype=np.intp)
    tree = shapely.STRtree(shapely.points(ring.posts.xy))
    (source, target), distance = tree.query_nearest(geoms, return_distance=True, all_matches=False)
    out_d = np.full(len(geoms), np.inf)
    out_i = np.full(len(geoms), -1, dtype=np.intp)
    out_d[source], out_i[source] = distance, target
    return out_d, out_i


def _share(part: float, whole: float | None) -> float | None:
    return None if not whole else part / whole
