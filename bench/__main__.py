"""``python -m bench`` (or ``scripts/bench``): build the cities, run every suite, print the tables.

A full run (no ``--quick``) overwrites ``bench/RESULTS.md`` with the date, the machine, the tables
and the exact command. The exit status is 1 when a correctness check fails (a router answer that
differs from PostGIS, a non-2xx answer under load, apps that disagree), so a wrong fast answer can
never pass unnoticed; a missed speed target is reported as FAIL in the tables and the summary.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from rich.console import Console

from bench import coverage, events, rate_limit, reroute, router_suite, scale
from bench import tiles as tiles_suite
from bench.cities import CITY_KEYS, City, bench_cluster, build_cities
from bench.machine import describe
from bench.report import Table, markdown, print_machine, print_table, write_results

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
QUICK_POINTS = 100_000
QUICK_HTTP_S = 5
META_DB = "bench"  # an empty PostGIS database, only to ask the server its versions

Suite = Callable[[list[City], argparse.Namespace, Console], tuple[list[Table], bool]]


def _router(cities: list[City], args: argparse.Namespace, console: Console) -> tuple[list[Table], bool]:
    settings = router_suite.Settings(points=args.points, http_seconds=args.http_seconds)
    return router_suite.run(cities, settings, console)


SUITES: dict[str, Suite] = {
    "router": _router, "coverage": coverage.run, "events": events.run, "tiles": tiles_suite.run, "scale": scale.run,
    "reroute": reroute.run, "rate": rate_limit.run,
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, help="bulk points (default 1,000,000; 100,000 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100k points, 5 s of HTTP load, no RESULTS.md")
    parser.add_argument("--http-seconds", type=int, help="wrk duration per app (default 15; 5 with --quick)")
    parser.add_argument("--cities", default=",".join(CITY_KEYS), help=f"comma-separated, of {', '.join(CITY_KEYS)}")
    parser.add_argument("--suites", default=",".join(SUITES), help=f"comma-separated, of {', '.join(SUITES)}")
    parser.add_argument("--no-results", action="store_true", help="do not write bench/RESULTS.md")
    parser.add_argument("--scale-points", type=int, help="Dask suite points (default 10M; 1M quick)")
    parser.add_argument("--reroute-events", type=int, help="reroute suite events (default 500,000; 50,000 quick)")
    args = parser.parse_args(argv)
    args.points = args.points or (QUICK_POINTS if args.quick else 1_000_000)
    args.http_seconds = args.http_seconds or (QUICK_HTTP_S if args.quick else 15)
    args.scale_points = args.scale_points or (1_000_000 if args.quick else 10_000_000)
    args.reroute_events = args.reroute_events or (50_000 if args.quick else 500_000)
    args.cities = tuple(k for k in args.cities.split(",") if k)
    args.suites = tuple(k for k in args.suites.split(",") if k)
    unknown = (set(args.cities) - set(CITY_KEYS)) | (set(args.suites) - set(SUITES))
    if unknown:
        parser.error(f"unknown city or suite: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the ``finally`` blocks stop the servers and the cluster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    console = Console(width=max(Console().width, 160))
    command = os.environ.get("BENCH_COMMAND") or shlex.join([".venv/bin/python", "-m", "bench", *argv])
    started, clock = datetime.now().astimezone(), time.perf_counter()
    cluster = bench_cluster()
    was_running = cluster.status().running
    try:
        console.log(f"PostgreSQL: bench cluster under {cluster.home}")
        cluster.up(META_DB)
        machine = describe(cluster.conninfo(META_DB))
        print_machine(console, machine)
        cities = build_cities(cluster, args.cities, step=console.log)
        tables: list[Table] = []
        correct = True
        for name in args.suites:
            suite_tables, ok = SUITES[name](cities, args, console)
            tables += suite_tables
            correct &= ok
    finally:
        if not was_running:
            cluster.down()
    console.print()
    print_machine(console, machine)
    for table in tables:
        print_table(console, table)
    minutes = (time.perf_counter() - clock) / 60
    console.print(f"{command}  ({minutes:.1f} min)")
    if not (args.quick or args.no_results):
        write_results(RESULTS, markdown(tables, machine, command, started, minutes))
        console.print(f"wrote {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")
    if not correct:
        console.print("[bold red]correctness checks failed: see the tables' notes[/]")
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
