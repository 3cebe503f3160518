"""``python -m bench.serve_memory``: a ``geoservice serve`` worker's memory on the demo city, two checkouts.

Issue 23 asks ≤ 300 MB per worker; before the router is built a worker already holds what its imports
cost, so a change to the imports is measured where it counts, in the real server:

* **the city**: the demo city (``geoservice demo``: ~1,500 grids, 50,000 events), loaded once into the
  database ``bench_demo`` of the bench cluster (``.geoservice/bench``);
* **serve**: ``geoservice serve --workers 1`` of this checkout (``--code``) and of another one
  (``--before``, e.g. ``git archive <commit> | tar -x -C DIR``), interleaved over ``--rounds``, each
  with its router cache filled by an untimed first start (as every start after the first): the
  worker's RSS (private + file-backed) and PSS once ``/readyz`` answers from a router, and the time
  from the command's start to that first 200;
* **imports alone**: ``create_app()`` in a fresh interpreter (no database, no router): its RSS and
  the number of modules loaded.

The peer is the same server before the change: the figure a user compares is what one worker holds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console

from bench.cities import TITLES, City, _describe, bench_cluster
from bench.machine import REPO, describe
from bench.prefecture_db import GEOSERVICE, time_serve
from bench.report import Table, print_machine, print_table
from geoservice.infra.database import make_engine

DBNAME = "bench_demo"
TITLES["demo"] = "the demo city (geoservice demo)"
IMPORTS_PROBE = (
    "import json, sys\n"
    "from geoservice.app import create_app\n"
    "create_app()\n"
    "status = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())\n"
    "print(json.dumps({'rss_mb': int(status['VmRSS'].split()[0]) / 1024, 'modules': len(sys.modules)}))\n"
)


def demo_city(console: Console, home: Path) -> City:
    """The demo city in ``bench_demo``, loaded by ``geoservice demo`` unless it is there already."""
    cluster = bench_cluster()
    cluster.up("bench")
    cluster.ensure_database(DBNAME)
    url = cluster.url(DBNAME)
    env = {**os.environ, "GEOSERVICE_DATABASE_URL": url, "GEOSERVICE_HOME": str(home), "PYTHONPATH": str(REPO)}
    console.log("geoservice demo (skipped by the command when the city is loaded)")
    subprocess.run([GEOSERVICE, "demo"], env=env, check=True, capture_output=True, cwd=home)
    engine = make_engine(url)
    try:
        version_id, epsg, grids, vertices = _describe(engine)
    finally:
        engine.dispose()
    return City("demo", TITLES["demo"], DBNAME, url, cluster.conninfo(DBNAME), version_id, epsg, grids, vertices, 0.0)


def imports_alone(code: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code)}
    out = subprocess.run([sys.executable, "-c", IMPORTS_PROBE], env=env, capture_output=True, text=True, check=True,
                         cwd=code)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, default=REPO, help="the checkout measured (default this one)")
    parser.add_argument("--before", type=Path, required=True, help="the checkout it is compared with")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    args = parser.parse_args(argv)
    console = Console(width=160)
    sides = {"after": args.code, "before": args.before}
    with tempfile.TemporaryDirectory(prefix="bench-serve-memory-") as scratch:
        home = Path(scratch)
        city = demo_city(console, home)
        print_machine(console, describe(city.conninfo))
        console.print(f"load average {os.getloadavg()[0]:.1f} / {os.getloadavg()[1]:.1f} (1 / 5 min); "
                      f"{city.title}: {city.grids:,} grids, {city.vertices:,} vertices")  # fmt: skip
        runs: dict[str, list[dict]] = {side: [] for side in sides}
        imports: dict[str, list[dict]] = {side: [] for side in sides}
        caches = {side: home / f"router-cache-{side}" for side in sides}
        for side, code in sides.items():  # fill each side's router cache: untimed
            time_serve(city, caches[side], 1, "cold", home, code)
        for r in range(args.rounds):
            for side, code in sides.items():
                imports[side].append(imports_alone(code))
                run = time_serve(city, caches[side], 1, "warm", home, code)
                runs[side].append(run)
                console.log(f"round {r + 1} {side}: worker RSS {run['worker_anon'][0]:.0f} + "
                            f"{run['worker_file'][0]:.0f} MB, PSS of all {run['total_pss']:.0f} MB, first 200 "
                            f"{run['first_s']:.2f} s; imports alone {imports[side][-1]['rss_mb']:.0f} MB "
                            f"(load {run['load']:.1f})")  # fmt: skip

    def med(side: str, key: str) -> float:
        return float(np.median([r[key][0] if isinstance(r[key], list) else r[key] for r in runs[side]]))

    table = Table(f"geoservice serve, one worker, router cache filled — {city.title} ({city.grids:,} grids)")
    for side in sides:
        loads = ", ".join(f"{r['load']:.1f}" for r in runs[side])
        rss = [r["worker_rss"][0] for r in runs[side]]
        table.add(f"{side}: {sides[side]}", f"worker RSS once /readyz answers; load {loads}",
                  f"{np.median(rss):.0f} MB [{', '.join(f'{v:.0f}' for v in rss)}]", "", "≤ 300 MB")  # fmt: skip
        table.add("", "  of it private / file-backed", f"{med(side, 'worker_anon'):.0f} / "
                  f"{med(side, 'worker_file'):.0f} MB")  # fmt: skip
        table.add("", "  all processes' PSS (the server's and the worker's)", f"{med(side, 'total_pss'):.0f} MB")
        table.add("", "  start → first 200 from /readyz", f"{med(side, 'first_s'):.2f} s")
        table.add("", "create_app() alone, fresh interpreter: RSS, modules",
                  f"{np.median([i['rss_mb'] for i in imports[side]]):.0f} MB, "
                  f"{int(np.median([i['modules'] for i in imports[side]])):,} modules")  # fmt: skip
    saved = np.median([r["worker_rss"][0] for r in runs["before"]]) - np.median(
        [r["worker_rss"][0] for r in runs["after"]]
    )
    table.notes.append(f"A worker holds {saved:.0f} MB less after the change (medians).")
    print_table(console, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
