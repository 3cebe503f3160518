"""``python -m bench.prefecture_db``: the router, the server and the route command on a prefecture-sized database.

Issue 23's targets are about a prefecture (6,000 digitised grids over 12,000 km²): router build ≤ 3 s
and ≤ 300 MB, ``/readyz`` soon after start, ``geoservice route`` ≥ 2× a geopandas script. The other
benches measure the router on polygons held in memory (``bench.index_build``) or on a county
(``bench.route_command``); this one measures the real thing on a database:

* **the city**: ``bench.cities``' synthetic city (its dense variant: a vertex every 20–30 m on every
  shared edge, as digitised grids have) over the county's outline scaled to 12,000 km², written as a
  city pack and loaded with ``geoservice.city.load.load_pack`` (``city load``: checks, one transaction,
  publish) into the database ``bench_prefecture`` of the bench cluster (``.geoservice/bench``);
* **load_router**: in a fresh process each time, as a worker starts: wall time (its SQL and the
  ``Router`` build apart) and peak RSS, with the router cache off, new (nobody built the index: build
  and write it here and in the database), cold (this machine's directory empty, the database's copy
  there: another machine's first start) and warm (map), interleaved over ``--rounds``;
* **serve**: ``geoservice serve`` (1 and 2 workers, new, cold and warm cache) from the command's start to
  the first 200 from ``/readyz`` and to every worker answering it, then each process's RSS (private
  and file-backed) and PSS (shared pages divided between the processes that map them: the cache's
  file pages count once in the total);
* **route**: ``geoservice route`` on ``--points`` points over this city against the geopandas script
  reading the city's grids from a GeoPackage (``bench.route_command.compare``: interleaved, cold and
  warm cache, 0 differences required).

``--reuse`` keeps the loaded database (building and loading the city takes a few minutes); ``--code DIR``
runs another checkout's load_router, serve and route (e.g. the commit before a change) on the same database;
``--before DIR`` runs another checkout's route beside this one's, in the same rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import psycopg
import shapely
from pyproj import Transformer
from rich.console import Console
from sqlalchemy import text

from bench.cities import ADCODE, TITLES, City, _describe, bench_cluster, county_boundary, synthetic_layers
from bench.machine import REPO, describe
from bench.report import Table, print_machine, print_table, verdict
from bench.route_command import _table as route_table
from bench.route_command import compare, empty_cache

AREA_KM2 = 12_000.0
TITLES["prefecture"] = "synthetic prefecture, 6,000 grids over 12,000 km², a vertex every ~25 m"
TITLES["province"] = "synthetic province, 100,000 grids over 202,500 km², a vertex every 25 m"
GEOSERVICE = str(Path(sys.executable).with_name("geoservice"))


def prefecture_boundary(area_km2: float = AREA_KM2) -> shapely.Geometry:
    """The county's outline (WGS84) scaled about its centre, in metres, to ``area_km2``."""
    county = county_boundary()
    centre = shapely.centroid(county)
    zone = 4488 + int(round(centre.x / 3))  # CGCS2000 3-degree GK zone with false easting (EPSG:4513 = zone 25)
    to_metric = Transformer.from_crs(4326, zone, always_xy=True)
    to_wgs84 = Transformer.from_crs(zone, 4326, always_xy=True)
    metric = shapely.transform(county, lambda xy: np.column_stack(to_metric.transform(xy[:, 0], xy[:, 1])))
    k = float(np.sqrt(area_km2 * 1e6 / metric.area))
    c = shapely.centroid(metric)
    scaled = shapely.transform(metric, lambda xy: (xy - [c.x, c.y]) * k + [c.x, c.y])
    return shapely.transform(scaled, lambda xy: np.column_stack(to_wgs84.transform(xy[:, 0], xy[:, 1])))


def province_boundary() -> shapely.Geometry:
    """The province's square (``bench.province``), WGS84."""
    from bench.province import SIDE_M, square_wgs84

    return square_wgs84(SIDE_M)


def _prefecture_layers() -> object:
    return synthetic_layers(boundary=prefecture_boundary())["dense"]


def _province_layers() -> object:
    from bench.province import province_layers

    return province_layers()


# name: (database, how the layers are made, the outline the route command's points are drawn in)
CITY_KINDS = {
    "prefecture": ("bench_prefecture", _prefecture_layers, prefecture_boundary),
    "province": ("bench_province", _province_layers, province_boundary),
}


# --- the city ---------------------------------------------------------------------------------------
def load_city(reuse: bool, console: Console, kind: str = "prefecture") -> tuple[City, dict[str, float]]:
    """The city in its database: built, written as a pack and loaded unless ``reuse`` finds it there."""
    from geoservice.boundaries.settings import BoundarySettings
    from geoservice.city.load import PackRejected, load_pack
    from geoservice.city.pack import CityInfo, write_pack
    from geoservice.infra.database import make_engine, migrate
    from geoservice.settings import RoutingSettings

    cluster = bench_cluster()
    cluster.up("bench")
    dbname, make_layers, _ = CITY_KINDS[kind]
    url = cluster.url(dbname)
    figures: dict[str, float] = {}
    if not (reuse and _loaded(cluster.conninfo("bench"), dbname)):
        started = time.perf_counter()
        console.log(f"building the {TITLES[kind]}")
        layers = make_layers()
        figures["build_s"] = time.perf_counter() - started
        with tempfile.TemporaryDirectory(prefix="bench-prefecture-") as scratch:
            pack = Path(scratch) / "pack"
            frames = {name: getattr(layers, name) for name in ("regions", "grids", "posts", "station_areas")}
            write_pack(pack, CityInfo("示范省" if kind == "province" else "示范市", ADCODE, version=kind), frames)
            cluster.ensure_database(dbname, fresh=True)
            engine = make_engine(url)
            try:
                migrate(engine)
                console.log("city load (check, one transaction, publish)")
                started = time.perf_counter()
                try:
                    load_pack(engine, pack, routing=RoutingSettings(router_cache=False),
                              boundaries=BoundarySettings(), passwords_file=Path(scratch) / "otp.tsv",
                              step=console.log)  # fmt: skip
                except PackRejected as rejected:
                    faults = "\n".join(map(str, rejected.faults))
                    raise SystemExit(f"the generated pack was rejected:\n{faults}") from None
                figures["load_s"] = time.perf_counter() - started
            finally:
                engine.dispose()
        with psycopg.connect(cluster.conninfo(dbname), autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")
            conn.execute("CHECKPOINT")
    engine = make_engine(url)
    try:
        version_id, epsg, grids, vertices = _describe(engine)
        with engine.connect() as conn:
            km2 = conn.execute(text("SELECT sum(ST_Area(geom::geography)) / 1e6 FROM grids")).scalar_one()
    finally:
        engine.dispose()
    figures["km2"] = float(km2)
    city = City(kind, TITLES[kind], dbname, url, cluster.conninfo(dbname), version_id, epsg, grids,
                vertices, figures.get("build_s", 0.0) + figures.get("load_s", 0.0))  # fmt: skip
    return city, figures


def _loaded(conninfo: str, dbname: str) -> bool:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is not None


# --- load_router in a fresh process -----------------------------------------------------------------
def _memory() -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {key: int(status[key].split()[0]) / 1024 for key in ("VmRSS", "RssAnon", "RssFile", "VmHWM")}


def child_load_router(url: str, cache: str) -> dict:
    """One ``load_router`` as a worker pays it: the SQL, then the ``Router`` (timed apart), and the peak RSS."""
    started = time.perf_counter()
    from sqlalchemy.orm import Session

    from geoservice.infra.database import make_engine
    from geoservice.routing import loader
    from geoservice.settings import RoutingSettings

    imports_s = time.perf_counter() - started
    engine = make_engine(url)
    with engine.connect() as conn:
        version_id = conn.execute(text("SELECT id FROM boundary_versions WHERE status = 'published'")).scalar_one()
    settings = RoutingSettings(router_cache=cache != "off")
    built: dict[str, float] = {}
    real_router = loader.Router

    def timed_router(**kwargs: object) -> object:
        t0 = time.perf_counter()
        router = real_router(**kwargs)
        built["router_s"] = time.perf_counter() - t0
        return router

    loader.Router = timed_router  # type: ignore[assignment,misc]
    before = _memory()
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS from here
    started = time.perf_counter()
    with Session(engine) as session:
        router = loader.load_router(session, version_id, settings)
    seconds = time.perf_counter() - started
    after = _memory()
    engine.dispose()
    return {"imports_s": imports_s, "s": seconds, "router_s": built["router_s"],
            "sql_s": seconds - built["router_s"], "before_mb": before["VmRSS"], "peak_mb": after["VmHWM"],
            "rss_mb": after["VmRSS"], "anon_mb": after["RssAnon"], "file_mb": after["RssFile"],
            "index_cache": router.grid_index.cache}  # fmt: skip


def time_load_router(
    city: City, cache_dir: Path, rounds: int, console: Console, code: Path = REPO
) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {"off": [], "new": [], "cold": [], "warm": []}
    for r in range(rounds):
        for cache in results:
            empty_cache(city, cache_dir, cache)
            load = os.getloadavg()[0]
            env = {**os.environ, "GEOSERVICE_ROUTER_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(code)}
            out = subprocess.run([sys.executable, "-m", "bench.prefecture_db", "--child", cache, "--url", city.url],
                                 env=env, capture_output=True, text=True, check=True, cwd=code)  # fmt: skip
            figures = {**json.loads(out.stdout.strip().splitlines()[-1]), "load": load}
            results[cache].append(figures)
            console.log(f"load_router round {r + 1}, cache {cache}: {figures['s']:.2f} s (SQL {figures['sql_s']:.2f}, "
                        f"Router {figures['router_s']:.2f}), peak {figures['peak_mb']:.0f} MB "
                        f"(+{figures['peak_mb'] - figures['before_mb']:.0f}), load {load:.1f}")  # fmt: skip
    return results


# --- geoservice serve -------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _proc_memory(pid: int) -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    rollup = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])
    mb = {key: int(status[key].split()[0]) / 1024 for key in ("VmRSS", "RssAnon", "RssFile", "VmHWM")}
    mb["Pss"] = int(rollup["Pss"].split()[0]) / 1024
    return mb


def _readyz(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return json.loads(answer.read()) if answer.status == 200 else None
    except OSError:
        return None


def time_serve(city: City, cache_dir: Path, workers: int, cache: str, home: Path, code: Path = REPO) -> dict:
    """``geoservice serve``: start → first 200 from /readyz → every worker answered; then the processes' memory.

    ``code``: the checkout whose command runs (its directory on PYTHONPATH, inherited by the workers).
    """
    empty_cache(city, cache_dir, cache)
    port = _free_port()
    env = {**os.environ, "GEOSERVICE_DATABASE_URL": city.url, "GEOSERVICE_ROUTER_CACHE_DIR": str(cache_dir),
           "GEOSERVICE_HOME": str(home), "GEOSERVICE_VERSION_CHECK_S": "60", "PYTHONPATH": str(code)}  # fmt: skip
    load = os.getloadavg()[0]
    started = time.perf_counter()
    server = subprocess.Popen([GEOSERVICE, "serve", "--port", str(port), "--workers", str(workers)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=home)  # fmt: skip
    first_s, all_s, pids = None, None, set()
    try:
        while time.perf_counter() - started < 300:
            if server.poll() is not None:
                raise SystemExit(f"serve exited ({server.returncode}): {server.stderr.read().decode()[-2000:]}")
            answer = _readyz(port)
            if answer is not None and answer.get("router_version") is not None:
                first_s = first_s or time.perf_counter() - started
                pids.add(int(answer["worker_pid"]))
                if len(pids) >= workers:
                    all_s = time.perf_counter() - started
                    break
            else:
                time.sleep(0.02)
        if all_s is None:
            raise SystemExit(f"serve --workers {workers}: not every worker answered /readyz in 300 s")
        time.sleep(0.5)  # let start-up's last allocations settle
        processes = {pid: _proc_memory(pid) for pid in [server.pid, *_descendants(server.pid)]}
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    worker_mem = [m for pid, m in processes.items() if pid in pids]
    return {"workers": workers, "cache": cache, "load": load, "first_s": first_s, "all_s": all_s,
            "worker_rss": [m["VmRSS"] for m in worker_mem], "worker_anon": [m["RssAnon"] for m in worker_mem],
            "worker_file": [m["RssFile"] for m in worker_mem], "worker_peak": [m["VmHWM"] for m in worker_mem],
            "total_rss": sum(m["VmRSS"] for m in processes.values()),
            "total_pss": sum(m["Pss"] for m in processes.values()), "processes": len(processes)}  # fmt: skip


# --- the report -------------------------------------------------------------------------------------
def _med(values: list[float]) -> float:
    return float(np.median(values))


def _span(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.prefecture_db", description=__doc__.splitlines()[0])
    parser.add_argument("--city", choices=sorted(CITY_KINDS), default="prefecture",
                        help="prefecture (6,000 grids, 12,000 km²) or province (100,000 grids, 202,500 km²)")
    parser.add_argument("--reuse", action="store_true", help="use the city's database as loaded (no rebuild)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of every comparison")
    parser.add_argument("--points", default="1000000", help="route: comma-separated sizes")
    parser.add_argument("--formats", default="csv", help="route: csv, parquet or both")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: router, serve, route")
    parser.add_argument("--code", type=Path, default=REPO,
                        help="the checkout whose load_router, serve and route run (default this one)")
    parser.add_argument("--before", type=Path, help="route: also run this checkout's command in the same rounds")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child_load_router(args.url, args.child)))
        return 0
    console = Console(width=160)
    skip = set(args.skip.split(","))
    city, loaded = load_city(args.reuse, console, args.city)
    print_machine(console, describe(city.conninfo))
    console.print(f"load average {os.getloadavg()[0]:.1f} / {os.getloadavg()[1]:.1f} (1 / 5 min); city: "
                  f"{city.grids:,} grids, {city.vertices:,} vertices, {loaded['km2']:,.0f} km² of grids"
                  + (f"; built in {loaded['build_s']:.0f} s, city load {loaded['load_s']:.0f} s" if "load_s" in loaded
                     else ""))  # fmt: skip
    table = Table(f"router and server on a database — {city.title} ({city.grids:,} grids, {city.vertices:,} vertices)")
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-prefecture-run-") as scratch:
        cache_dir = Path(scratch) / "router-cache"
        if "router" not in skip:
            results = time_load_router(city, cache_dir, args.rounds, console, args.code)
            labels = {"off": "cache off (GEOSERVICE_ROUTER_CACHE=false)",
                      "new": "nobody built it: build, write the directory and the database's copy",
                      "cold": "this machine's directory empty: the database's copy, written and mapped",
                      "warm": "cache filled: map"}  # fmt: skip
            for cache, runs in results.items():
                seconds, peak = _med([r["s"] for r in runs]), _med([r["peak_mb"] for r in runs])
                added = _med([r["peak_mb"] - r["before_mb"] for r in runs])
                loads = _span([r["load"] for r in runs])
                table.add("load_router (fresh process)", f"{labels[cache]}; load {loads}",
                          f"{seconds:.2f} s [{_span([r['s'] for r in runs])}]", "", "≤ 3 s",
                          verdict(seconds <= 3))  # fmt: skip
                table.add("", f"  of which SQL + WKB {_med([r['sql_s'] for r in runs]):.2f} s, Router "
                          f"{_med([r['router_s'] for r in runs]):.2f} s", "")  # fmt: skip
                table.add("", "  peak RSS of the process (above the imports' RSS)",
                          f"{peak:.0f} MB (+{added:.0f})", "", "≤ 300 MB", verdict(peak <= 300))  # fmt: skip
                table.add(
                    "",
                    "  RSS after: private / file-backed (the mapped cache)",
                    f"{_med([r['anon_mb'] for r in runs]):.0f} / {_med([r['file_mb'] for r in runs]):.0f} MB",
                )
        if "serve" not in skip:
            home = Path(scratch) / "home"
            home.mkdir()
            for workers in (1, 2):
                runs_by: dict[str, list[dict]] = {"new": [], "cold": [], "warm": []}
                for _ in range(args.rounds):
                    for cache in runs_by:
                        r = time_serve(city, cache_dir, workers, cache, home, args.code)
                        runs_by[cache].append(r)
                        console.log(f"serve --workers {workers}, {cache}: first 200 {r['first_s']:.2f} s, all "
                                    f"{r['all_s']:.2f} s; worker RSS {_span(r['worker_rss'])} MB, total RSS "
                                    f"{r['total_rss']:.0f} MB, PSS {r['total_pss']:.0f} MB "
                                    f"(load {r['load']:.1f})")  # fmt: skip
                for cache, runs in runs_by.items():
                    first = [r["first_s"] for r in runs]
                    loads = _span([r["load"] for r in runs])
                    table.add(f"geoservice serve --workers {workers}, {cache} cache",
                              f"start → first 200 from /readyz (router loaded); load {loads}",
                              f"{_med(first):.2f} s [{_span(first)}]")  # fmt: skip
                    if workers > 1:
                        every = [r["all_s"] for r in runs]
                        table.add("", "start → every worker answered /readyz", f"{_med(every):.2f} s [{_span(every)}]")
                    last = runs[-1]
                    table.add("", "each worker's RSS then: private + file-backed (peak)",
                              "; ".join(f"{a:.0f} + {f:.0f} MB ({p:.0f})" for a, f, p in
                                        zip(last["worker_anon"], last["worker_file"], last["worker_peak"],
                                            strict=True)),
                              "", "≤ 300 MB", verdict(max(last["worker_rss"]) <= 300))  # fmt: skip
                    table.add("", f"all {last['processes']} processes: RSS summed / PSS (shared pages once)",
                              f"{last['total_rss']:.0f} / {last['total_pss']:.0f} MB")  # fmt: skip
    table.notes.append(f"Code run: {args.code}.")
    print_table(console, table)
    if "route" not in skip:
        runs, build_s = compare(city, CITY_KINDS[args.city][2](), [int(s) for s in args.points.split(",")],
                                [f for f in args.formats.split(",") if f], ["new", "cold", "warm"], args.rounds,
                                args.code, None, console, args.before)  # fmt: skip
        print_table(console, route_table(city, runs, build_s, args.code, args.before))
        ok = ok and all(r.differences == 0 for r in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
