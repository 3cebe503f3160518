"""The scale suite: history routed on Dask against the single-process router and the PostGIS join.

* **points**: ``--scale-points`` (default 10,000,000) seeded points of the county as Parquet, 20
  partitions (``lon``, ``lat``, ``category``), in a temporary directory.
* **single process**: what one process does with the same files — read each partition, route it
  with the router's vectorised path (grid, community, town, station, department), write GeoParquet.
* **dask, 1 and 2 workers**: ``geoservice.routing.distributed.route_parquet`` on a LocalCluster of
  1 and of 2 worker processes (the cluster's start is not timed; shipping the router to the
  workers, reading, routing and writing are). The ratio to the single process is the speed-up.
* **PostGIS**: the same points COPYed into a table with a GIST index (setup timed apart), then the
  ``ST_Covers`` join with the smallest-code tie-break, server side (grid only: less work than the
  others do).
* **agreement** (correctness): the Dask answers equal the single process's on every point.
* **extrapolation**: 10^8 points on n machines from the measured per-worker rate of the 2-worker
  run, assuming the linear scaling the 1 → 2 step shows (written out, not measured).

``python -m bench.scale`` runs it alone on the demo city.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from rich.console import Console
from sqlalchemy.orm import Session

from bench.cities import City, bench_cluster, build_cities, county_boundary
from bench.points import random_points
from bench.report import Table, print_table, verdict
from bench.router import postgis_join
from geoservice.infra.database import make_engine
from geoservice.routing.bulk import route_points
from geoservice.routing.distributed import TEXT, dask_client, route_parquet
from geoservice.routing.loader import load_router
from geoservice.routing.router import Router
from geoservice.settings import RoutingSettings

PARTITIONS = 20
CATEGORIES = np.array(["public_order.fight", "environment.noise", "livelihood", "city_management"], dtype=object)
HISTORY = 100_000_000  # a province's history: the extrapolation's target
MACHINES = (1, 4, 16)  # of this machine's size (2 cores, so 2 workers each)


def run(cities: list[City], args: argparse.Namespace | None, console: Console) -> tuple[list[Table], bool]:
    """Benchmark on the demo city (the largest of the bench cities by grids and places)."""
    city = next((c for c in cities if c.key == "demo"), cities[0])
    n = getattr(args, "scale_points", None) or 10_000_000
    engine = make_engine(city.url)
    with Session(engine) as session:
        router = load_router(session, city.version_id, RoutingSettings())
    engine.dispose()
    console.log(f"scale: {n:,} points of {city.key} as {PARTITIONS} Parquet partitions")
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        folder = Path(tmp)
        points = random_points(county_boundary(), n)
        _write_partitions(points.lon, points.lat, folder / "in")
        console.log("scale: single process")
        single_s, single = _single_process(router, folder / "in", folder / "single")
        dask_s: dict[int, float] = {}
        agree = True
        for workers in (1, 2):
            console.log(f"scale: dask, {workers} worker(s)")
            with dask_client(None, workers) as client:
                started = time.perf_counter()
                route_parquet(client, router, folder / "in", folder / f"dask{workers}")
                dask_s[workers] = time.perf_counter() - started
            agree &= _same(single, folder / f"dask{workers}")
        console.log("scale: PostGIS join")
        join_s, setup_s, _, _ = postgis_join(city, points.lon, points.lat, repeats=1)
    return [_table(city, n, single_s, dask_s, join_s, setup_s, agree)], agree


def _write_partitions(lon: np.ndarray, lat: np.ndarray, folder: Path) -> None:
    folder.mkdir()
    rng = np.random.default_rng(7)
    categories = CATEGORIES[rng.integers(0, len(CATEGORIES), len(lon))]
    bounds = np.linspace(0, len(lon), PARTITIONS + 1).astype(int)
    for k in range(PARTITIONS):
        part = slice(bounds[k], bounds[k + 1])
        frame = pd.DataFrame({"id": np.arange(bounds[k], bounds[k + 1]), "lon": lon[part], "lat": lat[part],
                              "category": pd.array(categories[part], dtype=TEXT)})  # fmt: skip
        frame.to_parquet(folder / f"part-{k:03d}.parquet", index=False)


def _single_process(router: Router, source: Path, target: Path) -> tuple[float, pd.DataFrame]:
    """Read, route and write every partition in this process; the time and the grid codes by id."""
    target.mkdir()
    started = time.perf_counter()
    answers = []
    for path in sorted(source.glob("*.parquet")):
        frame = pd.read_parquet(path)
        lon, lat = frame["lon"].to_numpy(), frame["lat"].to_numpy()
        routed = route_points(router, lon, lat, frame["category"].to_numpy(dtype=object))
        out = gpd.GeoDataFrame(pd.concat([frame, routed], axis=1), geometry=shapely.points(lon, lat), crs=4326)
        out.to_parquet(target / path.name, index=False)
        answers.append(out[["id", "grid_code", "department"]])
    return time.perf_counter() - started, pd.concat(answers, ignore_index=True)


def _same(single: pd.DataFrame, folder: Path) -> bool:
    theirs = pd.read_parquet(folder, columns=["id", "grid_code", "department"]).sort_values("id")
    ours = single.sort_values("id")
    return bool(
        (theirs["id"].to_numpy() == ours["id"].to_numpy()).all()
        and (theirs["grid_code"].astype(object).to_numpy() == ours["grid_code"].to_numpy()).all()
        and (theirs["department"].astype(object).to_numpy() == ours["department"].to_numpy()).all()
    )


def _table(
    city: City, n: int, single_s: float, dask_s: dict[int, float], join_s: float, setup_s: float, agree: bool
) -> Table:
    table = Table(f"scale: {n:,} points on Dask ({city.title}, {PARTITIONS} Parquet partitions)")
    rate = n / single_s
    table.add("read + route + write", "single process (route_points per partition)", f"{single_s:.1f} s",
              f"{rate / 1e6:.2f} M points/s")  # fmt: skip
    for workers, seconds in dask_s.items():
        table.add("", f"dask LocalCluster, {workers} worker(s)", f"{seconds:.1f} s",
                  f"{single_s / seconds:.2f}× the single process")  # fmt: skip
    table.add("grid only, server side", "PostGIS ST_Covers join (GIST)", f"{join_s:.1f} s (+ {setup_s:.1f} s COPY)",
              f"dask 2 workers {join_s / dask_s[2]:.2f}× faster")  # fmt: skip
    table.add("agreement", "dask answers = single process, every point", "yes" if agree else "NO", "", "0 differences",
              verdict(agree))  # fmt: skip
    per_worker = n / dask_s[2] / 2
    scaling = dask_s[1] / dask_s[2]
    for machines in MACHINES:
        seconds = HISTORY / (per_worker * 2 * machines)
        shown = f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"
        table.add("extrapolated" if machines == MACHINES[0] else "", f"10^8 points, {machines} machine(s) × 2 workers",
                  shown, "")  # fmt: skip
    table.notes.append(
        f"Per worker {per_worker / 1e6:.2f} M points/s in the 2-worker run; 1 → 2 workers ran {scaling:.2f}× as fast "
        "(2.00 would be linear). The extrapolation assumes each further worker adds the same rate: true while the "
        "partitions outnumber the workers and the file system keeps up; a real cluster adds network reads."
    )
    table.notes.append("The Dask times include shipping the router to the workers and writing GeoParquet; not the "
                       "LocalCluster's start (~2 s), which a long-lived cluster pays once.")  # fmt: skip
    return table


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--scale-points", type=int, default=10_000_000)
    args = parser.parse_args(argv)
    console = Console(width=160)
    cluster = bench_cluster()
    cluster.up("bench")
    cities = build_cities(cluster, ("demo",), step=console.log)
    tables, ok = run(cities, args, console)
    for table in tables:
        print_table(console, table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
