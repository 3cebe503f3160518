"""``python -m bench.index_build``: the grid index's build on a prefecture or a province, beside the R-tree.

The router's raster index grows with the square kilometres (issue 23): a county (1,600 km²) builds in
about a second; this measures a prefecture (``--city prefecture``: 6,000 grids over 110 × 110 km,
12,100 km²) and a province (``--city province``: 100,000 grids over 450 × 450 km, 202,500 km²). The
cities are synthetic — Voronoi grids over a square in CGCS2000 / 3-degree GK zone 40, a vertex every
25 m like digitised boundaries — and need no database. Each build runs in a fresh process, as a
worker starts (polygons read from WKB, unprepared), and reports its time and its peak RSS above
what the process held before the build (the peak is reset there: ``/proc/self/clear_refs``):

* the index without a cache; with an empty cache (build, write, map); with the cache filled (a fresh
  process that only reads it, ``np.load(mmap_mode="r")``: private and file-backed RSS are shown, the
  file-backed pages being shared between workers);
* each answers the same 1,000,000 random points as the peer, shapely's STRtree over the same polygons
  (what geopandas' ``sjoin`` builds, ``predicate="intersects"``, smallest rank kept): any
  difference fails the run;
* the whole ``Router`` built from the polygons (grid index, 40 station areas, the metric R-tree, code
  tables) without and with the cache: everything ``load_router`` does after its SQL.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely
from pyproj import Transformer

from geoservice.routing.raster_index import NO_POLYGON, RasterIndex

CRS = 4549  # CGCS2000 / 3-degree Gauss-Kruger CM 120E
FALSE_EASTING, NORTHING = 500_000.0, 3_520_000.0  # about 如皋's latitude
CITIES = {  # grids, side of the square (km)
    "prefecture": (6_000, 110.0),
    "province": (100_000, 450.0),
}
STATION_AREAS = 40


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


def memory() -> dict[str, float]:
    """This process's RSS now (private and file-backed) and its peak since the last reset, in MB."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {key: int(status[key].split()[0]) / 1024 for key in ("VmRSS", "RssAnon", "RssFile", "VmHWM")}


def reset_peak() -> None:
    """Start the peak RSS (VmHWM) again from the current RSS (Linux ≥ 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def sample(polygons: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    minx, miny, maxx, maxy = shapely.total_bounds(polygons)
    return rng.uniform(minx, maxx, points), rng.uniform(miny, maxy, points)


def timed_build(polygons: np.ndarray, cell_m: float, cache_dir: str | None) -> tuple[RasterIndex, dict]:
    before = memory()
    reset_peak()
    started = time.perf_counter()
    index = RasterIndex(polygons, cell_m=cell_m, cache_dir=cache_dir)
    seconds = time.perf_counter() - started
    after = memory()
    figures = {"s": seconds, "before_mb": before["VmRSS"], "peak_mb": after["VmHWM"], "rss_mb": after["VmRSS"],
               "anon_mb": after["RssAnon"], "file_mb": after["RssFile"], "cache": index.cache}  # fmt: skip
    return index, figures


def station_areas(side_m: float, seed: int = 7) -> np.ndarray:
    """Station jurisdictions: ``STATION_AREAS`` Voronoi cells over the same square, a vertex every 25 m."""
    return prefecture(STATION_AREAS, side_m, 25.0, seed=seed)


def build_router(polygons: np.ndarray, areas: np.ndarray, cell_m: float, cache_dir: str | None) -> dict:
    """A whole ``Router`` from these polygons: what ``load_router`` builds once its queries have answered."""
    from geoservice.routing.router import GridRecord, PostSet, Router
    from geoservice.settings import RoutingSettings

    settings = RoutingSettings()
    codes = [f"G{i:06d}" for i in range(len(polygons))]
    grids = [GridRecord(code, code, "C0001", (), None) for code in codes]
    centres = shapely.get_coordinates(shapely.centroid(areas))
    xy = np.column_stack(Transformer.from_crs(4326, CRS, always_xy=True).transform(centres[:, 0], centres[:, 1]))
    station_codes = np.array([f"S{i:03d}" for i in range(len(areas))])
    stations = PostSet(codes=station_codes, names=station_codes, xy=xy)
    before = memory()
    reset_peak()
    started = time.perf_counter()
    router = Router(version_id=1, version_name="bench", grids=grids, grid_geoms=polygons, regions={},
                    stations=stations, jurisdictions=areas, posts={"station": stations}, metric_epsg=CRS,
                    snap_tolerance_m=settings.snap_tolerance_m, rings_m=settings.rings_m, cell_m=cell_m,
                    index_cache_dir=cache_dir)  # fmt: skip
    seconds = time.perf_counter() - started
    after = memory()
    return {"s": seconds, "peak_mb": after["VmHWM"], "before_mb": before["VmRSS"], "rss_mb": after["VmRSS"],
            "cache": router.grid_index.cache, "grids": len(router.grids)}  # fmt: skip


def child(args: argparse.Namespace) -> int:
    """One measurement in a fresh process (as a worker starts): polygons from WKB, then one build."""
    polygons = shapely.from_wkb(np.load(args.wkb, allow_pickle=True))
    if args.child.startswith("router"):
        areas = shapely.from_wkb(np.load(args.areas_wkb, allow_pickle=True))
        cache_dir = args.router_cache_dir if args.child == "router-cache" else None
        figures = build_router(polygons, areas, args.cell_m, cache_dir)
    else:
        index, figures = timed_build(polygons, args.cell_m, args.cache_dir if args.child == "index-cache" else None)
        figures["stats"] = list(index.stats.__dict__.values())
        x, y = sample(polygons, args.points)
        started = time.perf_counter()
        np.save(args.ranks_out, index.locate_many(x, y))
        figures["query_s"] = time.perf_counter() - started
        after = memory()
        figures["after_query"] = {"rss_mb": after["VmRSS"], "anon_mb": after["RssAnon"], "file_mb": after["RssFile"]}
    print(json.dumps(figures))
    return 0


def in_child(kind: str, files: dict[str, str], cell_m: float, points: int) -> dict:
    command = [sys.executable, "-m", "bench.index_build", "--child", kind, "--cell-m", str(cell_m),
               "--points", str(points)] + [f"--{name}={path}" for name, path in files.items()]  # fmt: skip
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run(city: str, grids: int, side_m: float, points: int, cell_m: float, with_router: bool) -> bool:
    started = time.perf_counter()
    polygons = prefecture(grids, side_m, 25.0)
    areas = station_areas(side_m)
    vertices = int(shapely.get_num_coordinates(polygons).sum())
    cpu = platform.processor() or platform.machine()
    print(f"machine: {platform.node()}, {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}, shapely {shapely.__version__} (GEOS {shapely.geos_version_string}); "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"city {city}: {grids:,} grids over {side_m / 1000:.0f} × {side_m / 1000:.0f} km, {vertices:,} vertices "
          f"(made in {time.perf_counter() - started:.0f} s); each build below runs in a fresh process")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="index-bench-") as scratch:
        files = {"wkb": f"{scratch}/grids.npy", "areas-wkb": f"{scratch}/areas.npy",
                 "cache-dir": f"{scratch}/cache", "router-cache-dir": f"{scratch}/router-cache",
                 "ranks-out": f"{scratch}/ranks.npy"}  # fmt: skip
        np.save(files["wkb"], shapely.to_wkb(polygons), allow_pickle=True)
        np.save(files["areas-wkb"], shapely.to_wkb(areas), allow_pickle=True)
        x, y = sample(polygons, points)
        t0 = time.perf_counter()
        tree = shapely.STRtree(polygons)
        tree_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        point_idx, poly_idx = tree.query(shapely.points(x, y), predicate="intersects")
        tree_q = time.perf_counter() - t0
        expected = np.full(points, np.iinfo(np.int32).max, dtype=np.int64)
        np.minimum.at(expected, point_idx, poly_idx)
        expected = np.where(expected == np.iinfo(np.int32).max, NO_POLYGON, expected)
        del tree, point_idx, poly_idx, polygons, areas
        print(f"peer, shapely STRtree: build {tree_s:.2f} s; {points:,} random points, "
              f"query(predicate='intersects') {tree_q:.2f} s ({points / tree_q / 1e6:.2f} M points/s)")  # fmt: skip
        ok = True
        runs = [("index", "no cache"), ("index-cache", "cache empty: build + write + map"),
                ("index-cache", "cache filled: read (map)")]  # fmt: skip
        if with_router:
            runs += [("router", "no cache"), ("router-cache", "cache empty"), ("router-cache", "cache filled")]
        for kind, label in runs:
            f = in_child(kind, files, cell_m, points)
            line = (f"{kind} ({label}): {f['s']:.2f} s [{f['cache']}], peak RSS {f['peak_mb']:,.0f} MB "
                    f"(+{f['peak_mb'] - f['before_mb']:,.0f} MB over {f['before_mb']:,.0f} MB before)")  # fmt: skip
            if kind.startswith("index"):
                cells, boundary, candidates, used_cell_m = f["stats"]
                differences = int((np.load(files["ranks-out"]) != expected).sum())
                ok = ok and differences == 0
                q = f["after_query"]
                line += (f"; {used_cell_m:.0f} m cells, {cells:,} cells, {boundary:,} boundary cells, "
                         f"{candidates:,} candidates; {points:,} points in {f['query_s']:.2f} s "
                         f"({points / f['query_s'] / 1e6:.2f} M points/s), differences {differences}; "
                         f"RSS after {q['rss_mb']:,.0f} MB ({q['anon_mb']:,.0f} private, "
                         f"{q['file_mb']:,.0f} file-backed)")  # fmt: skip
            print(line, flush=True)
        size = sum(f.stat().st_size for f in Path(files["cache-dir"]).rglob("*.npy")) / 1e6
        print(f"cache on disk: {size:,.0f} MB of .npy (the grid index)")
    print("PASS" if ok else "FAIL")
    return ok


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.index_build", description=__doc__.splitlines()[0])
    parser.add_argument("--city", choices=sorted(CITIES), default="prefecture")
    parser.add_argument("--grids", type=int, help="override the city's grid count")
    parser.add_argument("--side-km", type=float, help="override the city's square side")
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--cell-m", type=float, default=30.0, help="GEOSERVICE_INDEX_CELL_M's default")
    parser.add_argument("--no-router", action="store_true", help="skip the whole-Router builds")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one measurement in a fresh process
    for hidden in ("--wkb", "--areas-wkb", "--cache-dir", "--router-cache-dir", "--ranks-out"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    grids, side_km = CITIES[args.city]
    grids, side_km = args.grids or grids, args.side_km or side_km
    return 0 if run(args.city, grids, side_km * 1000, args.points, args.cell_m, not args.no_router) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
