"""``python -m bench.route_command``: the whole ``geoservice route IN OUT`` against a plain geopandas script.

Issue 23: a user routing a file of points compares the command with the script they would otherwise
write, so both are timed **end to end, as subprocesses**: interpreter start-up, imports, reading,
routing, writing. For the command that includes opening the database and building the router from
the boundary version in force (the router build is also timed alone, in this process, to show its
share); for the script it includes reading the grids from a GeoPackage.

* **city**: a bench county (``bench.cities``; ``--city simple`` by default: straight edges, the
  fewest vertices, so the peer's point-in-polygon tests are as cheap as they get);
* **points**: ``bench.points.random_points`` (95 % inside the county, 5 % in its bounding box) with
  an ``id`` and a text column ``note``, as CSV and as plain Parquet (``lon``/``lat``), written before
  the timing starts;
* **ours**: ``geoservice route IN OUT`` (CSV → CSV, Parquet → GeoParquet): grid, community, town and
  station codes for every point;
* **peer**: the script below (``PEER``): grids read with geopandas from a GeoPackage exported from the
  same city, points read with pyarrow, ``gpd.sjoin(predicate="intersects")``, the smallest code kept
  per point (sjoin returns a row per grid for a point on a shared edge), written with pyarrow; grid
  codes only;
* **correctness**: the two grid codes must be equal on every point but those the router snapped
  (outside every grid but within the snap tolerance of one: it answers, sjoin does not); the
  difference count must be 0 or the run fails.

``--cache new,cold,warm`` times the command in three states of its router cache: ``new``, nobody has
built the version's index (the cache directory emptied and the database's copies deleted); ``cold``,
this machine's directory emptied but the database holds the copy an earlier run stored
(``geoservice.routing.index_store``): another machine's first run; ``warm``, both filled. ``--rounds``
interleaves ours and the script that many times and reports medians.
``--code DIR`` runs another checkout's command (e.g. ``git archive HEAD~1 | tar -x -C DIR``) for a
before/after comparison; ``--before DIR`` runs that checkout's command too, in the same rounds (ours,
before, script …), so both sides of a change meet the same load. Each run's peak RSS is read by GNU time
(``/usr/bin/time -f %M``). ``--reuse`` uses the bench databases as they are instead of rebuilding them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import shapely
from rich.console import Console
from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.cities import TITLES, City, _describe, bench_cluster, build_cities, county_boundary
from bench.machine import REPO, describe
from bench.points import random_points
from bench.report import Table, print_machine, print_table, verdict
from geoservice.infra.database import make_engine
from geoservice.routing.loader import load_router
from geoservice.settings import RoutingSettings

# The other checkout's command as its own ``geoservice`` script would start it: since the executable
# leaves without the interpreter's teardown (``geoservice.cli.process``) its entry point is
# ``executable``; a checkout older than that has only the app.
BEFORE_ENTRY = "import sys, geoservice.cli as cli; sys.exit(getattr(cli, 'executable', cli.app)())"

PEER = textwrap.dedent('''
    """The plain geopandas script: grids from a file, points with pyarrow, sjoin, written with pyarrow."""
    import sys

    import geopandas as gpd
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    grids_path, source, target = sys.argv[1:4]
    grids = gpd.read_file(grids_path, columns=["code"])
    table = pq.read_table(source) if source.endswith(".parquet") else pcsv.read_csv(source)
    lon = table["lon"].to_numpy()
    lat = table["lat"].to_numpy()
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=grids.crs)
    joined = gpd.sjoin(points, grids, predicate="intersects", how="inner")
    # A point on an edge two grids share matches both: keep the smallest code, as the router does.
    row = joined.index.to_numpy()
    code = joined["code"].to_numpy(dtype=object)
    order = np.lexsort((code, row))
    row, code = row[order], code[order]
    first = np.r_[True, row[1:] != row[:-1]]
    grid_code = np.full(len(lon), "", dtype=object)
    grid_code[row[first]] = code[first]
    out = table.append_column("grid_code", pa.array(grid_code, type=pa.string()))
    if target.endswith(".parquet"):
        pq.write_table(out, target)
    else:
        pcsv.write_csv(out, target)
''')
FORMATS = {"csv": (".csv", ".csv"), "parquet": (".parquet", ".parquet")}


@dataclass
class Run:
    """One size, format and router-cache state: median wall times over the rounds, and the comparison."""

    points: int
    fmt: str
    # "new" (the cache directory emptied and the database's copies deleted: nobody has built this version),
    # "cold" (the directory emptied; the database holds the copy an earlier run stored) or "warm" (both filled)
    cache: str
    ours_s: list[float]
    peer_s: list[float]
    loads: list[float]  # 1-minute load average at the start of each of ours' runs
    covered: int  # points some grid covers (sjoin found one)
    snapped: int  # points the router placed by its snap tolerance (sjoin found none)
    differences: int
    out_mb: float
    ours_rss: list[float] = field(default_factory=list)  # peak RSS of each of ours' runs, MB
    before_s: list[float] = field(default_factory=list)  # --before: that checkout's command, same rounds
    before_rss: list[float] = field(default_factory=list)
    before_differences: int = 0
    cpu: list[float] = field(default_factory=list)  # CPU seconds (user + system) of each of ours' runs
    before_cpu: list[float] = field(default_factory=list)
    peer_use: list[tuple[float, float]] = field(default_factory=list)  # the script's (peak RSS MB, CPU s)

    @property
    def ours(self) -> float:
        return float(np.median(self.ours_s))

    @property
    def before(self) -> float:
        return float(np.median(self.before_s))

    @property
    def peer(self) -> float:
        return float(np.median(self.peer_s))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.route_command", description=__doc__.splitlines()[0])
    parser.add_argument("--points", default="1000000,5000000", help="comma-separated sizes")
    parser.add_argument("--formats", default="csv,parquet", help=f"comma-separated, of {', '.join(FORMATS)}")
    parser.add_argument("--cache", default="new,cold,warm",
                        help="router cache states to time, of new (nobody built the index), cold (this machine's "
                             "directory empty, the database's copy there) and warm")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (ours, peer, ours, peer …)")
    parser.add_argument("--city", default="simple", choices=("simple", "dense"))
    parser.add_argument("--code", type=Path, default=REPO, help="the checkout whose command runs (default this one)")
    parser.add_argument("--before", type=Path, help="also run this checkout's command in the same rounds")
    parser.add_argument("--reuse", action="store_true", help="use the bench database as it is (no rebuild)")
    parser.add_argument("--keep", type=Path, help="write the files here and keep them (default a temporary dir)")
    args = parser.parse_args(argv)
    console = Console(width=160)
    city = _city(args.city, args.reuse, console)
    print_machine(console, describe(city.conninfo))
    console.print(f"load average {os.getloadavg()[0]:.1f} / {os.getloadavg()[1]:.1f} (1 / 5 min)")
    runs, build_s = compare(city, county_boundary(), [int(s) for s in args.points.split(",")],
                            [f for f in args.formats.split(",") if f], [c for c in args.cache.split(",") if c],
                            args.rounds, args.code, args.keep, console, before=args.before)  # fmt: skip
    table = _table(city, runs, build_s, args.code, args.before)
    print_table(console, table)
    return 0 if all(r.differences == 0 and r.before_differences == 0 for r in runs) else 1


def compare(
    city: City,
    boundary: shapely.Geometry,
    sizes: list[int],
    formats: list[str],
    caches: list[str],
    rounds: int,
    code: Path,
    keep: Path | None,
    console: Console,
    before: Path | None = None,
) -> tuple[list[Run], float]:
    """Time ``geoservice route`` against the script on ``city``, interleaved, each cache state per round.

    Per round and input: ours with the cache emptied first (cold), ours again (warm: the cold run filled
    it), then the script, so a change of the machine's load falls on both sides; medians are reported.
    The router cache lives in a directory of its own (``GEOSERVICE_ROUTER_CACHE_DIR``) so "cold" is
    really cold and no other process's entries count. With ``before`` that checkout's command runs
    right after ours in each round and cache state, with a cache directory of its own.
    """
    build_s, router = _router(city)
    console.log(f"router built in {build_s:.2f} s (load_router, in this process)")
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-route-") as scratch:
        folder = keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        cache_dir = folder / "router-cache"
        grids = folder / "grids.gpkg"
        _export_grids(city, grids)
        (folder / "peer.py").write_text(PEER)
        env = {"GEOSERVICE_DATABASE_URL": city.url, "PYTHONPATH": str(code),
               "GEOSERVICE_ROUTER_CACHE_DIR": str(cache_dir)}  # fmt: skip
        commands = {"ours": [str(Path(sys.executable).with_name("geoservice")), "route"],
                    "before": [sys.executable, "-c", BEFORE_ENTRY, "route"]}  # fmt: skip
        sides = {"ours": (env, cache_dir)}
        if before is not None:
            sides["before"] = ({**env, "PYTHONPATH": str(before),
                                "GEOSERVICE_ROUTER_CACHE_DIR": str(folder / "router-cache-before")},
                               folder / "router-cache-before")  # fmt: skip
        for n in sizes:
            points = random_points(boundary, n)
            snapped = np.isfinite(router.locate_many(points.lon, points.lat).snapped_m)
            for fmt in formats:
                suffix_in, suffix_out = FORMATS[fmt]
                source = folder / f"points-{n}{suffix_in}"
                _write_points(points.lon, points.lat, source)
                peer_out = folder / f"peer-{n}{suffix_out}"
                seconds = {(side, c): [] for side in sides for c in caches}
                rss = {(side, c): [] for side in sides for c in caches}
                cpu = {(side, c): [] for side in sides for c in caches}
                loads: dict[str, list[float]] = {c: [] for c in caches}
                peer_s: list[float] = []
                peer_use: list[tuple[float, float]] = []  # the script's peak RSS and CPU seconds per round
                if "new" not in caches:  # fill the directory and the database's copy once, untimed
                    for side, (side_env, _) in sides.items():
                        _timed([*commands[side], str(source), str(folder / f"prime{suffix_out}")], side_env)
                for r in range(rounds):
                    for cache in caches:
                        for side, (side_env, side_cache) in sides.items():
                            empty_cache(city, side_cache, cache)
                            if side == "ours":
                                loads[cache].append(os.getloadavg()[0])
                            out = folder / f"{side}-{cache}-{n}{suffix_out}"
                            took, peak, spent = _timed_rss([*commands[side], str(source), str(out)], side_env)
                            seconds[side, cache].append(took)
                            rss[side, cache].append(peak)
                            cpu[side, cache].append(spent)
                            console.log(f"{n:,} {fmt} round {r + 1}: {side} ({cache} cache) {took:.2f} s, CPU "
                                        f"{spent:.2f} s, peak RSS {peak:.0f} MB "
                                        f"(load {os.getloadavg()[0]:.1f})")  # fmt: skip
                    took, peak, spent = _timed_rss([sys.executable, str(folder / "peer.py"), str(grids), str(source),
                                                    str(peer_out)], {})  # fmt: skip
                    peer_s.append(took)
                    peer_use.append((peak, spent))
                    console.log(f"{n:,} {fmt} round {r + 1}: peer {peer_s[-1]:.2f} s (load {os.getloadavg()[0]:.1f})")
                for cache in caches:
                    out = folder / f"ours-{cache}-{n}{suffix_out}"
                    covered, differences = _compare(out, peer_out, snapped)
                    run = Run(n, fmt, cache, seconds["ours", cache], peer_s, loads[cache], covered, int(snapped.sum()),
                              differences, out.stat().st_size / 1e6, rss["ours", cache], cpu=cpu["ours", cache],
                              peer_use=peer_use)  # fmt: skip
                    if "before" in sides:
                        run.before_s, run.before_rss = seconds["before", cache], rss["before", cache]
                        run.before_cpu = cpu["before", cache]
                        run.before_differences = _compare(folder / f"before-{cache}-{n}{suffix_out}", peer_out,
                                                          snapped)[1]  # fmt: skip
                    runs.append(run)
                    console.log(f"  {n:,} {fmt} {cache}: ours {run.ours:.2f} s, peer {run.peer:.2f} s "
                                f"(medians), {differences} differences")  # fmt: skip
                if keep is None:
                    for path in folder.glob(f"*-{n}{suffix_out}"):
                        path.unlink(missing_ok=True)
                    source.unlink(missing_ok=True)
    return runs, build_s


def _city(key: str, reuse: bool, console: Console) -> City:
    cluster = bench_cluster()
    cluster.up("bench")
    dbname = f"bench_{key}"
    if reuse:
        engine = make_engine(cluster.url(dbname))
        try:
            version_id, epsg, grids, vertices = _describe(engine)
        finally:
            engine.dispose()
        return City(key, TITLES[key], dbname, cluster.url(dbname), cluster.conninfo(dbname), version_id, epsg,
                    grids, vertices, 0.0)  # fmt: skip
    return build_cities(cluster, (key,), step=console.log)[0]


def _router(city: City):  # noqa: ANN202 (a Router)
    engine = make_engine(city.url)
    try:
        started = time.perf_counter()
        with Session(engine) as session:
            router = load_router(session, city.version_id, RoutingSettings(router_cache=False))
        return time.perf_counter() - started, router
    finally:
        engine.dispose()


def _export_grids(city: City, path: Path) -> None:
    """The version's grids as a GeoPackage (what a user exports to run a script over)."""
    engine = make_engine(city.url)
    try:
        with engine.connect() as conn:
            frame = gpd.read_postgis(text(f"SELECT code, geom FROM grids WHERE version_id = {city.version_id}"),
                                     conn, geom_col="geom")  # fmt: skip
    finally:
        engine.dispose()
    frame.to_file(path, driver="GPKG")


def _write_points(lon: np.ndarray, lat: np.ndarray, path: Path) -> None:
    n = len(lon)
    notes = np.array(["巡查", "投诉", "road works, north side", "夜间 noise"], dtype=object)
    table = pa.table({"id": pa.array(np.arange(n).astype(str)), "lon": lon, "lat": lat,
                      "note": pa.array(notes[np.arange(n) % len(notes)], type=pa.string())})  # fmt: skip
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        pcsv.write_csv(table, path)


def _timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, cwd="/")
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return seconds


def _timed_rss(command: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, the command's peak RSS in MB and its CPU seconds (user + system), from GNU time.

    The CPU time is what the command itself spent, less at the mercy of a shared machine's load than
    the wall time (which is what a user waits, and what the ratio uses).

    Not ``wait4`` from here: a child's ``ru_maxrss`` starts at its parent's RSS at fork (this
    process holds the points, ~500 MB), so every run would read the same. GNU time is small, and
    the command it forks starts from that.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        started = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", rss.name, *command], env={**os.environ, **env},
                              capture_output=True, text=True, cwd="/")  # fmt: skip
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{command[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}")
        peak_kb, user, system = rss.read().split()[-3:]
        return seconds, int(peak_kb) / 1024, float(user) + float(system)


def _read_codes(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if path.suffix == ".parquet":
        table = pq.read_table(path, columns=["id", "grid_code"])
    else:
        options = pcsv.ConvertOptions(column_types={"id": pa.int64(), "grid_code": pa.string()},
                                      include_columns=["id", "grid_code"])  # fmt: skip
        table = pcsv.read_csv(path, convert_options=options)
    ids = np.asarray(table["id"].to_numpy(), dtype=np.int64)
    codes = table["grid_code"].fill_null("").to_numpy(zero_copy_only=False).astype(object)
    return ids, codes


def _compare(ours: Path, peer: Path, snapped: np.ndarray) -> tuple[int, int]:
    """Points some grid covers, and points whose grid codes differ (a snapped point is not a difference)."""
    ours_id, ours_code = _read_codes(ours)
    peer_id, peer_code = _read_codes(peer)
    if not (np.array_equal(ours_id, np.arange(len(snapped))) and np.array_equal(peer_id, ours_id)):
        return 0, len(snapped)  # a row lost or out of order is as wrong as a wrong code
    differ = (ours_code != peer_code) & ~(snapped & (peer_code == ""))
    return int((peer_code != "").sum()), int(differ.sum())


def empty_cache(city: City, cache_dir: Path, cache: str) -> None:
    """The router cache as ``cache`` says: "new" (nobody built the index: the directory and the database's
    copies emptied), "cold" (this machine's directory emptied, the database's copy kept), else as it is."""
    if cache in ("new", "cold"):
        shutil.rmtree(cache_dir, ignore_errors=True)
    if cache == "new":
        _forget_stored_indexes(city)


def _forget_stored_indexes(city: City) -> None:
    """Delete the database's copies of built indexes (``geoservice.routing.index_store``): nobody built them yet."""
    engine = make_engine(city.url)
    with engine.begin() as conn:
        if conn.execute(text("SELECT to_regclass('router_index_entries')")).scalar() is not None:
            conn.execute(text("DELETE FROM router_index_entries"))
    engine.dispose()


def _table(city: City, runs: list[Run], build_s: float, code: Path, before: Path | None = None) -> Table:
    table = Table(f"geoservice route, end to end — {city.title} ({city.grids:,} grids, {city.vertices:,} vertices)")
    for run in runs:
        ratio = run.peer / run.ours
        loads = f"load {min(run.loads):.1f}–{max(run.loads):.1f}"
        table.add(f"{run.points:,} points, {run.fmt}, {run.cache} router cache",
                  f"geoservice route IN OUT (subprocess; {loads})",
                  f"{run.ours:.2f} s [{', '.join(f'{s:.2f}' for s in run.ours_s)}]", f"{ratio:.2f}× the script",
                  "≥ 2×", verdict(ratio >= 2))  # fmt: skip
        if run.ours_rss:
            table.add("", "  its peak RSS; its CPU time (user + system)", f"{np.median(run.ours_rss):.0f} MB "
                      f"[{', '.join(f'{m:.0f}' for m in run.ours_rss)}]; {np.median(run.cpu):.2f} s "
                      f"[{', '.join(f'{c:.2f}' for c in run.cpu)}]")  # fmt: skip
        if run.before_s:
            table.add("", f"the same command from {before} (same rounds)",
                      f"{run.before:.2f} s [{', '.join(f'{s:.2f}' for s in run.before_s)}]",
                      f"{run.peer / run.before:.2f}× the script")  # fmt: skip
            table.add("", "  its peak RSS; CPU time; grid codes against the script",
                      f"{np.median(run.before_rss):.0f} MB [{', '.join(f'{m:.0f}' for m in run.before_rss)}]; "
                      f"{np.median(run.before_cpu):.2f} s [{', '.join(f'{c:.2f}' for c in run.before_cpu)}]; "
                      f"{run.before_differences} differences", "", "0",
                      verdict(run.before_differences == 0))  # fmt: skip
        table.add("", "geopandas script: gpkg grids, pyarrow, sjoin intersects, pyarrow",
                  f"{run.peer:.2f} s [{', '.join(f'{s:.2f}' for s in run.peer_s)}]")  # fmt: skip
        if run.peer_use:
            table.add("", "  its peak RSS; its CPU time", f"{np.median([u[0] for u in run.peer_use]):.0f} MB; "
                      f"{np.median([u[1] for u in run.peer_use]):.2f} s")  # fmt: skip
        table.add("", "grid codes equal (snapped points aside)",
                  f"{run.differences} differences ({run.covered:,} covered, {run.snapped:,} snapped)", "", "0",
                  verdict(run.differences == 0))  # fmt: skip
    table.notes.append(f"The router build alone (load_router from the database, in the bench process, no cache) "
                       f"took {build_s:.2f} s.")  # fmt: skip
    table.notes.append("Medians of the rounds (each run in brackets); rounds interleave ours (cold, warm) and the "
                       "script.")  # fmt: skip
    table.notes.append(f"Code run: {code}. Outputs: CSV → CSV, Parquet → GeoParquet (point geometry added).")
    return table


if __name__ == "__main__":
    sys.exit(main())
