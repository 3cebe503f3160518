"""``python -m bench.index_build``: the grid index's build on a prefecture-sized city, beside the R-tree.

The router's raster index grows with the square kilometres (issue 23): a county (1,600 km²) builds in
about a second, a prefecture (12,000 km², 6,000 digitised grids) is what this measures. The city is
synthetic — Voronoi grids over a 110 × 110 km square in CGCS2000 / 3-degree GK zone 40, a vertex every
25 m like digitised boundaries — and needs no database. The peer is shapely's STRtree over the same
polygons (what geopandas' ``sjoin`` builds), and both answer the same 1,000,000 random points, so the
build is set against what it buys; the answers must be equal (0 differences) or the run fails.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time

import numpy as np
import shapely
from pyproj import Transformer

from geoservice.routing.raster_index import NO_POLYGON, RasterIndex

CRS = 4549  # CGCS2000 / 3-degree Gauss-Kruger CM 120E
FALSE_EASTING, NORTHING = 500_000.0, 3_520_000.0  # about 如皋's latitude


def prefecture(grids: int, side_m: float, vertex_m: float, seed: int = 2026) -> np.ndarray:
    """``grids`` Voronoi cells over a square of ``side_m``, densified every ``vertex_m``, in lon/lat, by code."""
    rng = np.random.default_rng(seed)
    square = shapely.box(0, 0, side_m, side_m)
    seeds = shapely.multipoints(rng.uniform(0, side_m, (grids, 2)))
    cells = shapely.intersection(shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=square)), square)
    cells = shapely.segmentize(cells, vertex_m)
    to_wgs84 = Transformer.from_crs(CRS, 4326, always_xy=True)
    coords, part = shapely.get_coordinates(cells, return_index=True)
    lon, lat = to_wgs84.transform(coords[:, 0] + FALSE_EASTING - side_m / 2, coords[:, 1] + NORTHING)
    return shapely.set_coordinates(cells.copy(), np.column_stack([lon, lat]))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(grids: int, side_m: float, points: int, cell_m: float) -> bool:
    polygons = prefecture(grids, side_m, 25.0)
    vertices = int(shapely.get_num_coordinates(polygons).sum())
    cpu = platform.processor() or platform.machine()
    print(f"machine: {platform.node()}, {cpu}, Python {platform.python_version()}")
    print(f"city: {grids:,} grids over {side_m / 1000:.0f} × {side_m / 1000:.0f} km, {vertices:,} vertices; "
          f"peak before the builds {peak_mb():,.0f} MB")  # fmt: skip
    started = time.perf_counter()
    index = RasterIndex(polygons, cell_m=cell_m)
    build_s = time.perf_counter() - started
    after_index = peak_mb()
    started = time.perf_counter()
    tree = shapely.STRtree(polygons)
    tree_s = time.perf_counter() - started
    rng = np.random.default_rng(1)
    minx, miny, maxx, maxy = shapely.total_bounds(polygons)
    x, y = rng.uniform(minx, maxx, points), rng.uniform(miny, maxy, points)
    started = time.perf_counter()
    ranks = index.locate_many(x, y)
    index_q = time.perf_counter() - started
    started = time.perf_counter()
    point_idx, poly_idx = tree.query(shapely.points(x, y), predicate="intersects")
    tree_q = time.perf_counter() - started
    expected = np.full(points, np.iinfo(np.int32).max, dtype=np.int64)
    np.minimum.at(expected, point_idx, poly_idx)
    expected = np.where(expected == np.iinfo(np.int32).max, NO_POLYGON, expected)
    differences = int((expected != ranks).sum())
    stats = index.stats
    print(f"raster index ({cell_m:.0f} m cells): build {build_s:.2f} s, {stats.cells:,} cells, "
          f"{stats.boundary_cells:,} boundary cells, peak {after_index:,.0f} MB; "
          f"{points:,} points in {index_q:.2f} s")  # fmt: skip
    print(f"STRtree: build {tree_s:.2f} s; {points:,} points (intersects) in {tree_q:.2f} s")
    print(f"differences: {differences}")
    return differences == 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.index_build", description=__doc__.splitlines()[0])
    parser.add_argument("--grids", type=int, default=6_000)
    parser.add_argument("--side-km", type=float, default=110.0, help="the square's side (110 km: 12,100 km²)")
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--cell-m", type=float, default=30.0, help="GEOSERVICE_INDEX_CELL_M's default")
    args = parser.parse_args(argv)
    return 0 if run(args.grids, args.side_km * 1000, args.points, args.cell_m) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
