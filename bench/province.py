"""A province-sized synthetic city for ``python -m bench.prefecture_db --city province`` (issue 23).

Issue 23 asks that a whole province (200,000 km², 10^5 grids) build in one worker's memory. The
county's generator (``bench.cities``) models towns, an urban density and Lloyd-relaxed seeds, which
at 10^5 grids would take longer than the measurement; here the grids are, as in ``bench.index_build``,
Voronoi cells over a 450 × 450 km square with a vertex every 25 m (23 M vertices, as digitised
grids have), grouped into regions by where their seeds fall:

* 100 towns, a 10 × 10 lattice of 45 km squares; 10,000 communities, a 100 × 100 lattice of 4.5 km
  squares (about 10 grids each); a town or community is the union of its grids, so they nest exactly;
* 1,000 police stations, their jurisdictions Voronoi cells of their own seeds (a vertex every 25 m),
  2,000 central and 10,000 village rooms at random points.

Codes follow the project's pattern (town ``adcode6 + nnn + 000``, community ``town9 + nnn``, grid
``community + nnn``), so the pack passes ``city load``'s checks like a real city's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from bench.cities import ADCODE, _Layers, _wgs84
from bench.index_build import CITIES, CRS, FALSE_EASTING, NORTHING

SIDE_M = CITIES["province"][1] * 1000
GRIDS = CITIES["province"][0]
TOWNS_PER_SIDE, COMMUNITIES_PER_TOWN_SIDE = 10, 10
VERTEX_M = 25.0
STATIONS, CENTRAL_ROOMS, VILLAGE_ROOMS = 1_000, 2_000, 10_000
SEED = 2026


def province_layers() -> _Layers:
    """The province's regions, grids, posts and station areas (WGS84), ready for ``write_pack``."""
    rng = np.random.default_rng(SEED)
    seeds = rng.uniform(0, SIDE_M, (GRIDS, 2))
    grids = _cells(seeds, VERTEX_M)
    keep = ~shapely.is_empty(grids)
    grids, seeds = grids[keep], seeds[keep]

    side = TOWNS_PER_SIDE * COMMUNITIES_PER_TOWN_SIDE
    col, row = (np.minimum((seeds / (SIDE_M / side)).astype(int), side - 1)).T
    community_cell = row * side + col
    used, community = np.unique(community_cell, return_inverse=True)
    per = COMMUNITIES_PER_TOWN_SIDE
    town_cell = (used // side) // per * TOWNS_PER_SIDE + (used % side) // per
    towns_used, town_of_community = np.unique(town_cell, return_inverse=True)

    town_codes = [f"{ADCODE[:6]}{k + 1:03d}000" for k in range(len(towns_used))]
    community_codes = [""] * len(used)
    for t in range(len(towns_used)):
        for k, c in enumerate(np.flatnonzero(town_of_community == t).tolist()):
            community_codes[c] = f"{town_codes[t][:9]}{k + 1:03d}"
    grid_codes = [""] * len(grids)
    for c in range(len(used)):
        for k, g in enumerate(np.flatnonzero(community == c).tolist()):
            grid_codes[g] = f"{community_codes[c]}{k + 1:03d}"

    community_polygons = _dissolve(grids, community, len(used))
    town_polygons = _dissolve(community_polygons, town_of_community, len(towns_used))
    city = shapely.coverage_union_all(town_polygons)
    city_code = ADCODE + "000000"
    regions = [(city_code, "示范省", "city", "", city)]
    regions += [(code, f"第{t + 1}镇", "town", city_code, town_polygons[t]) for t, code in enumerate(town_codes)]
    regions += [(code, f"第{c + 1}社区", "community", town_codes[town_of_community[c]], community_polygons[c])
                for c, code in enumerate(community_codes)]  # fmt: skip

    station_seeds = rng.uniform(0, SIDE_M, (STATIONS, 2))
    station_codes = [f"PS{k + 1:04d}" for k in range(STATIONS)]
    posts = [(code, f"第{k + 1}派出所", "station", shapely.Point(*xy))
             for k, (code, xy) in enumerate(zip(station_codes, station_seeds, strict=True))]  # fmt: skip
    for level, count, prefix in (("central_room", CENTRAL_ROOMS, "CR"), ("village_room", VILLAGE_ROOMS, "VR")):
        posts += [(f"{prefix}{k + 1:04d}", f"{level}岗{k + 1}", level, shapely.Point(*xy))
                  for k, xy in enumerate(rng.uniform(0, SIDE_M, (count, 2)))]  # fmt: skip

    frame = pd.DataFrame
    return _Layers(
        regions=_to_wgs84(frame(regions, columns=["code", "name", "level", "parent_code", "geometry"])),
        grids=_to_wgs84(frame({"code": grid_codes, "name": [f"网格{code[-6:]}" for code in grid_codes],
                               "community_code": [community_codes[c] for c in community.tolist()],
                               "workers": "", "officer": "", "geometry": grids})).sort_values("code"),  # fmt: skip
        posts=_to_wgs84(frame(posts, columns=["code", "name", "level", "geometry"])),
        station_areas=_to_wgs84(frame({"code": station_codes, "geometry": _cells(station_seeds, VERTEX_M)})),
        metric_epsg=CRS,
    )


def _cells(seeds: np.ndarray, vertex_m: float) -> np.ndarray:
    """Voronoi cells of ``seeds`` clipped to the square, in seed order, densified every ``vertex_m``."""
    square = shapely.box(0, 0, SIDE_M, SIDE_M)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=square, ordered=True))
    dense = shapely.segmentize(shapely.intersection(cells, square), vertex_m)
    # Neighbours densify their shared edge from opposite ends, so the added vertices differ in the last
    # bits; on a 1 mm grid they coincide again and the cells are a valid coverage (as city load checks).
    return shapely.set_precision(dense, 0.001)


def _dissolve(parts: np.ndarray, group: np.ndarray, groups: int) -> np.ndarray:
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(groups + 1))
    unions = [shapely.coverage_union_all(parts[order[a:b]]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return np.array(unions, dtype=object)


def square_wgs84(side_m: float) -> shapely.Geometry:
    """The province's outline, WGS84."""
    return _to_wgs84(pd.DataFrame({"geometry": [shapely.box(0, 0, side_m, side_m)]})).geometry.iloc[0]


def _to_wgs84(frame: pd.DataFrame) -> object:
    """The square sits where ``bench.index_build`` puts it (about 如皋's latitude, CM 120°E), in EPSG:4549."""
    offset = np.array([FALSE_EASTING - SIDE_M / 2, NORTHING])
    geoms = shapely.transform(np.asarray(frame["geometry"].to_numpy(), dtype=object), lambda xy: xy + offset)
    return _wgs84(frame.assign(geometry=geoms), CRS)
