"""Group grids into communities and communities into towns; give everything codes and names.

Codes follow 统计用区划代码 (6-digit county + 3-digit town + 3-digit village): streets 001–003, towns
100+, and within a town 社区 001+ and 村 200+, every series in map reading order (``etl.codes``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from etl.codes import grid_serial_order, serials
from etl.demo.density import UrbanModel, kmeans, nearest_index
from etl.demo.graph import Adjacency, make_contiguous
from etl.demo.names import person_names, short_name, town_names, two_char_stems
from etl.demo.tessellation import Tessellation

N_STREETS = 3
URBAN_RADIUS = 1.2  # communities within this many sigmas of a town seat are 社区, not 村


@dataclass(frozen=True)
class Hierarchy:
    """Grids, communities and towns (metric), with their codes, names and who contains whom.

    Towns are indexed like the model's centres (town 0 holds the city centre); ``town_seats`` are
    the centres after moving any that had to yield its community to another town.
    """

    grid_polygons: np.ndarray
    grid_codes: list[str]
    grid_names: list[str]
    grid_workers: list[str]
    grid_officers: list[str]
    grid_community: np.ndarray
    grid_adjacency: Adjacency
    community_polygons: np.ndarray
    community_codes: list[str]
    community_names: list[str]
    community_town: np.ndarray
    community_adjacency: Adjacency
    town_polygons: np.ndarray
    town_codes: list[str]
    town_names: list[str]
    town_is_street: np.ndarray
    town_seats: np.ndarray
    city_polygon: shapely.Geometry
    city_code: str


def build_hierarchy(
    tess: Tessellation, model: UrbanModel, n_communities: int, adcode: str, rng: np.random.Generator
) -> Hierarchy:
    """Communities by k-means of grid centroids, towns around the town seats, both contiguous."""
    grids, adjacency = tess.polygons, tess.adjacency
    areas = shapely.area(grids)
    centroids = shapely.get_coordinates(shapely.centroid(grids))
    community = _communities(centroids, areas, adjacency, n_communities, rng)
    n_comm = int(community.max()) + 1
    comm_polygons = dissolve(grids, community, n_comm)
    comm_adjacency = adjacency.between(community, n_comm)
    comm_points = shapely.get_coordinates(shapely.point_on_surface(comm_polygons))
    town, seats, anchors = _towns(
        grids, community, comm_points, comm_adjacency, shapely.area(comm_polygons), model
    )
    n_towns = len(seats)
    town_polygons = dissolve(comm_polygons, town, n_towns)
    city = shapely.coverage_union_all(town_polygons)
    streets = _streets(seats, min(N_STREETS, n_towns))
    town_codes, town_names_ = _town_codes_and_names(town_polygons, streets, adcode, rng)
    urban = _urban_communities(comm_points, town, seats, anchors, model, streets)
    comm_codes, comm_names = _community_codes_and_names(
        comm_polygons, comm_points, town, town_codes, urban, town_names_, rng
    )
    grid_codes, grid_names = _grid_codes_and_names(grids, community, comm_codes, comm_names)
    workers, officers = _staff(len(grids), rng)
    return Hierarchy(
        grid_polygons=grids,
        grid_codes=grid_codes,
        grid_names=grid_names,
        grid_workers=workers,
        grid_officers=officers,
        grid_community=community,
        grid_adjacency=adjacency,
        community_polygons=comm_polygons,
        community_codes=comm_codes,
        community_names=comm_names,
        community_town=town,
        community_adjacency=comm_adjacency,
        town_polygons=town_polygons,
        town_codes=town_codes,
        town_names=town_names_,
        town_is_street=streets,
        town_seats=seats,
        city_polygon=city,
        city_code=adcode[:6] + "000000",
    )


def _communities(
    centroids: np.ndarray, areas: np.ndarray, adjacency: Adjacency, n: int, rng: np.random.Generator
) -> np.ndarray:
    """k-means over grid centroids: urban grids are small, so urban communities come out small."""
    centres = kmeans(centroids, n, rng, iterations=30)
    labels = make_contiguous(nearest_index(centroids, centres), adjacency, weights=areas)
    return _compact(labels)


def _compact(labels: np.ndarray) -> np.ndarray:
    """Renumber labels 0..k-1 in order of first appearance, dropping groups that emptied."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))
    return rank[inverse]


def dissolve(polygons: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Exact union of each group of a coverage (shared vertices kept, so nesting stays exact)."""
    out = np.empty(n, dtype=object)
    for k in range(n):
        members = polygons[labels == k]
        out[k] = members[0] if len(members) == 1 else shapely.coverage_union_all(members)
    return out


def _towns(
    grids: np.ndarray,
    community: np.ndarray,
    comm_points: np.ndarray,
    comm_adjacency: Adjacency,
    comm_areas: np.ndarray,
    model: UrbanModel,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each community joins the nearest town seat; the community under each seat anchors its town."""
    seats = model.seats.copy()
    anchor: dict[int, int] = {}
    grid_tree = shapely.STRtree(grids)
    for t, seat in enumerate(seats):
        hit = grid_tree.query(shapely.Point(seat), predicate="intersects")
        comm = int(community[hit.min()]) if len(hit) else -1
        if comm < 0 or comm in anchor.values():  # a seat shared with another town: nearest free one
            free = np.setdiff1d(np.arange(len(comm_points)), list(anchor.values()))
            comm = int(free[((comm_points[free] - seat) ** 2).sum(axis=1).argmin()])
            seats[t] = comm_points[comm]
        anchor[t] = comm
    labels = nearest_index(comm_points, seats)
    for t, comm in anchor.items():
        labels[comm] = t
    labels = make_contiguous(labels, comm_adjacency, anchors=anchor, weights=comm_areas)
    return labels, seats, np.array([anchor[t] for t in range(len(seats))])


def _streets(seats: np.ndarray, n_streets: int) -> np.ndarray:
    """The town of the city centre and its nearest neighbours are urban streets (街道)."""
    d = ((seats - seats[0]) ** 2).sum(axis=1)
    streets = np.zeros(len(seats), dtype=bool)
    streets[np.argsort(d, kind="stable")[:n_streets]] = True
    return streets


def _town_codes_and_names(
    town_polygons: np.ndarray, streets: np.ndarray, adcode: str, rng: np.random.Generator
) -> tuple[list[str], list[str]]:
    """Streets 001.. (the city centre's first, then north to south), towns 100.. in reading order."""
    n = len(town_polygons)
    points = shapely.get_coordinates(shapely.centroid(town_polygons))
    street_ids = np.flatnonzero(streets)
    others = street_ids[street_ids != 0]
    street_order = [0, *others[grid_serial_order(points[others], _row(town_polygons))].tolist()]
    town_ids = np.flatnonzero(~streets)
    town_order = town_ids[grid_serial_order(points[town_ids], _row(town_polygons))].tolist()
    street_names, plain_names = town_names(len(street_order), len(town_order), adcode, rng)
    codes, names = [""] * n, [""] * n
    for k, t in enumerate(street_order):
        codes[t], names[t] = f"{adcode[:6]}{k + 1:03d}000", street_names[k]
    for k, t in enumerate(town_order):
        codes[t], names[t] = f"{adcode[:6]}{100 + k:03d}000", plain_names[k]
    return codes, names


def _row(polygons: np.ndarray) -> float:
    """Row height for reading order: about the side of an average unit."""
    return float(np.sqrt(shapely.area(polygons).mean()))


def _urban_communities(
    comm_points: np.ndarray,
    town: np.ndarray,
    seats: np.ndarray,
    anchors: np.ndarray,
    model: UrbanModel,
    streets: np.ndarray,
) -> np.ndarray:
    """社区 rather than 村: everything in a street, and in a town the seat's community and its ring."""
    d = np.hypot(*(comm_points - seats[town]).T)
    urban = streets[town] | (d <= URBAN_RADIUS * model.seat_sigmas[town])
    urban[anchors] = True
    return urban


def _community_codes_and_names(
    comm_polygons: np.ndarray,
    comm_points: np.ndarray,
    town: np.ndarray,
    town_codes: list[str],
    urban: np.ndarray,
    town_names_: list[str],
    rng: np.random.Generator,
) -> tuple[list[str], list[str]]:
    """社区 numbered 001.. and 村 200.. within each town, both series in reading order."""
    n = len(comm_polygons)
    row = _row(comm_polygons)
    codes = [""] * n
    for t, town_code in enumerate(town_codes):
        for first, kind in ((1, True), (200, False)):
            members = np.flatnonzero((town == t) & (urban == kind))
            order = members[grid_serial_order(comm_points[members], row)]
            for k, c in enumerate(order.tolist()):
                codes[c] = f"{town_code[:9]}{first + k:03d}"
    stems = two_char_stems(n, rng, taken={short_name(x) for x in town_names_})
    names = [
        stem + ("社区" if is_urban else "村") for stem, is_urban in zip(stems, urban.tolist(), strict=True)
    ]
    return codes, names


def _grid_codes_and_names(
    grids: np.ndarray, community: np.ndarray, comm_codes: list[str], comm_names: list[str]
) -> tuple[list[str], list[str]]:
    """Community code + 3-digit serial, numbered in reading order within the community."""
    points = shapely.get_coordinates(shapely.point_on_surface(grids))
    areas = shapely.area(grids)
    codes, names = [""] * len(grids), [""] * len(grids)
    for c in range(len(comm_codes)):
        members = np.flatnonzero(community == c)
        serial = serials(points[members], float(np.sqrt(areas[members].mean())))
        for g, s in zip(members.tolist(), serial.tolist(), strict=True):
            codes[g] = f"{comm_codes[c]}{s:03d}"
            names[g] = f"{comm_names[c]}第{s}网格"
    return codes, names


def _staff(n: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """1–3 grid workers (网格员) and one community police officer (网格警) per grid."""
    counts = rng.choice([1, 2, 3], size=n, p=[0.3, 0.5, 0.2])
    people = person_names(int(counts.sum()) + n, rng)
    starts = np.concatenate([[0], np.cumsum(counts)])
    workers = [";".join(people[starts[k] : starts[k + 1]]) for k in range(n)]
    return workers, people[int(counts.sum()) :]


def grid_at(hierarchy: Hierarchy, xy: np.ndarray) -> np.ndarray:
    """Index of the grid holding each point (the nearest grid for a point on no grid)."""
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    points = shapely.points(xy)
    tree = shapely.STRtree(hierarchy.grid_polygons)
    point_idx, grid_idx = tree.query(points, predicate="intersects")
    out = np.full(len(xy), -1, dtype=np.intp)
    found, first = np.unique(point_idx, return_index=True)  # a point on a shared edge: first match
    out[found] = grid_idx[first]
    missing = np.flatnonzero(out < 0)
    if len(missing):
        out[missing] = tree.query_nearest(points[missing], all_matches=False)[1]
    return out
