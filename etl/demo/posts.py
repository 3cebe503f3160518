"""Police posts at three levels and the stations' jurisdictions.

"百米见村级警务室、千米见中心警务室、万米见派出所": village rooms sit in most communities, central
rooms blanket the built-up areas at about 1.5 km spacing, and one station serves each town (several
share the urban streets). Gaps are left on purpose, as in any real county, so coverage analyses have
something to find.

Codes: stations ``PS`` + 3 digits, central rooms ``CR`` + 4, village rooms ``VR`` + 4, each series
numbered in map reading order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from etl.codes import grid_serial_order
from etl.demo.density import UrbanModel, jitter_within, kmeans, nearest_index
from etl.demo.graph import make_contiguous
from etl.demo.hierarchy import Hierarchy, grid_at
from etl.demo.names import short_name

CENTRAL_SHARE = 0.20
VILLAGE_SHARE = 0.90  # of communities that get a room at their centre
CENTRAL_SPACING = 1_500.0  # metres: 1 km rings just overlap, small gaps remain


@dataclass(frozen=True)
class Posts:
    """Post points and station jurisdictions, metric."""

    codes: list[str]
    names: list[str]
    levels: list[str]
    points: np.ndarray  # (n, 2)
    station_codes: list[str]
    station_areas: np.ndarray  # polygons, tiling the city


def build_posts(h: Hierarchy, model: UrbanModel, n_posts: int, rng: np.random.Generator) -> Posts:
    """Stations first (they fix the jurisdictions), then central rooms, then village rooms."""
    st_points, st_names, st_areas = _stations(h, rng)
    n_central = max(0, min(round(CENTRAL_SHARE * n_posts), n_posts - len(st_points)))
    n_village = max(0, n_posts - len(st_points) - n_central)
    cr_points = _central_points(h, model, n_central, rng)
    cr_names = _central_names(h, cr_points)
    vr_points, vr_names = _village_rooms(h, n_village, rng)
    codes: list[str] = []
    names: list[str] = []
    levels: list[str] = []
    points: list[np.ndarray] = []
    station_codes: list[str] = []
    areas: list[shapely.Geometry] = []
    row = float(np.sqrt(shapely.area(h.community_polygons).mean()))
    for prefix, digits, level, xy, labels in (
        ("PS", 3, "station", st_points, st_names),
        ("CR", 4, "central_room", cr_points, cr_names),
        ("VR", 4, "village_room", vr_points, vr_names),
    ):
        order = grid_serial_order(xy, row).tolist() if len(xy) else []
        for k, i in enumerate(order):
            code = f"{prefix}{k + 1:0{digits}d}"
            codes.append(code)
            names.append(labels[i])
            levels.append(level)
            points.append(xy[i])
            if level == "station":
                station_codes.append(code)
                areas.append(st_areas[i])
    return Posts(
        codes, names, levels, np.array(points).reshape(-1, 2), station_codes, np.array(areas, dtype=object)
    )


def _stations(h: Hierarchy, rng: np.random.Generator) -> tuple[np.ndarray, list[str], list[shapely.Geometry]]:
    """One station per town, the streets' communities split among a few more urban stations."""
    n_towns = len(h.town_codes)
    street_comms = np.flatnonzero(h.town_is_street[h.community_town])
    n_urban = min(len(street_comms), int(h.town_is_street.sum()) + min(3, round(0.2 * n_towns)))
    points, names, areas = [], [], []
    used: set[str] = set()
    for t in np.flatnonzero(~h.town_is_street).tolist():
        points.append(h.town_seats[t])
        names.append(short_name(h.town_names[t]) + "派出所")
        areas.append(h.town_polygons[t])
    if n_urban:
        groups = _urban_groups(h, street_comms, n_urban, rng)
        comm_points = shapely.get_coordinates(shapely.point_on_surface(h.community_polygons))
        centre_group = int(groups[np.flatnonzero(street_comms == _community_at(h, h.town_seats[0]))[0]])
        for g in sorted(set(groups.tolist()), key=lambda g: (g != centre_group, g)):
            members = street_comms[groups == g]
            area = h.community_polygons[members[0]]
            if len(members) > 1:
                area = shapely.coverage_union_all(h.community_polygons[members])
            if g == centre_group:
                point = h.town_seats[0]
            else:
                middle = shapely.get_coordinates(shapely.centroid(area))[0]
                point = comm_points[members[((comm_points[members] - middle) ** 2).sum(axis=1).argmin()]]
            points.append(point)
            areas.append(area)
            street = h.town_names[int(h.community_town[_community_at(h, point)])]
            stem = short_name(street)
            if stem in used:
                stem = short_name(h.community_names[_community_at(h, point)])
            used.add(stem)
            names.append(stem + "派出所")
    xy = np.array(points, dtype=float).reshape(-1, 2)
    polygons = np.array(areas, dtype=object)
    return jitter_within(polygons, xy, 150.0, rng), names, areas


def _urban_groups(h: Hierarchy, street_comms: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Contiguous groups of the streets' communities, one per urban station (k-means, then fixed)."""
    comm_points = shapely.get_coordinates(shapely.centroid(h.community_polygons[street_comms]))
    labels = nearest_index(comm_points, kmeans(comm_points, n, rng))
    sub = h.community_adjacency.subset(street_comms)
    return make_contiguous(labels, sub, weights=shapely.area(h.community_polygons[street_comms]))


def _community_at(h: Hierarchy, xy: np.ndarray) -> int:
    return int(h.grid_community[grid_at(h, np.asarray(xy).reshape(1, 2))[0]])


def _central_points(h: Hierarchy, model: UrbanModel, n: int, rng: np.random.Generator) -> np.ndarray:
    """A room at each town seat, then greedy fill of the densest places at ~1.5 km spacing.

    Candidates are drawn from the urban model and taken densest first (with some noise), skipping
    any closer than the spacing to a taken one; built-up areas fill first, and what is left goes to
    the busier parts of the countryside, where it leaves the realistic gaps.
    """
    if n == 0:
        return np.zeros((0, 2))
    seats = h.town_seats[: min(n, len(h.town_seats))]
    towns = np.arange(len(seats))
    chosen = list(jitter_within(h.town_polygons[towns], seats, 300.0, rng))
    candidates = model.sample(max(40 * n, 2000), rng, background=0.35)
    priority = model.density(candidates) * rng.uniform(0.6, 1.0, len(candidates))
    candidates = candidates[np.argsort(-priority, kind="stable")]
    spacing = CENTRAL_SPACING
    while len(chosen) < n:
        taken = np.array(chosen)
        for xy in candidates:
            if len(chosen) >= n:
                break
            if ((taken - xy) ** 2).sum(axis=1).min() >= spacing**2:
                chosen.append(xy)
                taken = np.vstack([taken, xy])
        spacing *= 0.8  # a small county with many rooms: pack them closer
    return np.array(chosen[:n])


def _central_names(h: Hierarchy, points: np.ndarray) -> list[str]:
    """如城中心警务室 for the room at a town seat, 如城海阳中心警务室 for the others."""
    names = []
    seen: set[str] = set()
    for xy in points:
        comm = _community_at(h, xy)
        town = short_name(h.town_names[int(h.community_town[comm])])
        name = f"{town}中心警务室"
        if name in seen:
            name = f"{town}{short_name(h.community_names[comm])}中心警务室"
        k = 2
        while name in seen:
            name = f"{town}{short_name(h.community_names[comm])}第{k}中心警务室"
            k += 1
        seen.add(name)
        names.append(name)
    return names


def _village_rooms(h: Hierarchy, n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """A room near the centre of most communities; any rooms left over go to the largest villages."""
    n_comm = len(h.community_codes)
    polygons = h.community_polygons
    centres = shapely.centroid(polygons)
    inside = shapely.contains(polygons, centres)
    base = np.where(inside[:, None], shapely.get_coordinates(centres), _surface_points(polygons))
    first = rng.permutation(n_comm)[: min(n, round(VILLAGE_SHARE * n_comm))]
    first = np.sort(first)
    extra = max(0, n - len(first))
    by_size = np.argsort(-shapely.area(polygons), kind="stable")
    second = by_size[np.arange(extra) % n_comm]
    xy = jitter_within(polygons[first], base[first], 80.0, rng)
    names = [f"{h.community_names[c]}警务室" for c in first.tolist()]
    if extra:
        spread = np.sqrt(shapely.area(polygons[second])) / 4
        more = jitter_within(polygons[second], base[second], float(np.median(spread)), rng)
        xy = np.vstack([xy, more])
        names += [f"{h.community_names[c]}第二警务室" for c in second.tolist()]
    return xy, names


def _surface_points(polygons: np.ndarray) -> np.ndarray:
    return shapely.get_coordinates(shapely.point_on_surface(polygons))
