"""The reroute suite: closed events re-attributed to a boundary version, in this process and on Dask.

* **events**: ``--reroute-events`` (default 500,000) archived events at seeded points of the demo
  county (95 % inside), COPYed into the demo city's database beside its own history.
* **versions**: A, a copy of the version in force, and B, the same outlines with the grids renumbered
  (serials reversed within each community), both published: from the demo's attribution to A no
  event changes place, to B (or from B back to A) every event inside a grid does: the two ends of
  what a redraw does (a real one moves a few percent of the places).
* **runs**, ``geoservice.boundaries.history`` with ``partition_size`` 25,000. First the local engine
  to B: the first rewrite of rows fresh from COPY, slower for the database (shown apart). Then
  every place changes — the local engine back to A, Dask with 1 worker to B, Dask with 2 workers
  back to A; then nothing changes — the local engine and Dask with 2 workers to A again (read and
  route only). Timed: creating the run and its partitions, shipping the router, every partition's
  read, route, write and mark. Not timed: building the router (once per run, shown apart) and the
  LocalCluster's start. Before each run ``VACUUM ANALYZE events`` (not timed), so that no run
  pays for the dead rows of the one before.
* **check**: every closed event carries the run's version afterwards, and the partitions' event
  counts add up to the closed events (none lost, none doubled).

``python -m bench.reroute`` runs it alone on the demo city.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import shapely
from rich.console import Console
from sqlalchemy import Engine, text

from bench.cities import City, bench_cluster, build_cities, county_boundary
from bench.points import random_points
from bench.report import Table, print_table, verdict
from etl.load import copy_rows
from geoservice.boundaries.drafts import create_draft
from geoservice.boundaries.history import CLOSED, run_locally, start_run
from geoservice.boundaries.history_dask import run_on_dask
from geoservice.boundaries.publish import publish_version
from geoservice.boundaries.settings import BoundarySettings
from geoservice.infra.database import make_engine, transaction
from geoservice.routing.distributed import dask_client
from geoservice.routing.loader import load_router
from geoservice.settings import RoutingSettings

PARTITION_SIZE = 25_000
# (engine, workers, target version, what changes); the first run rewrites rows fresh from COPY
# (full pages, no HOT room, first hint bits), so it is shown apart and the engines compare after it.
RUNS = (("local", 0, "b", "first rewrite after the load"),
        ("local", 0, "a", "every place"), ("dask", 1, "b", "every place"), ("dask", 2, "a", "every place"),
        ("local", 0, "a", "nothing"), ("dask", 2, "a", "nothing"))  # fmt: skip


def run(cities: list[City], args: argparse.Namespace | None, console: Console) -> tuple[list[Table], bool]:
    """Benchmark on the demo city."""
    city = next((c for c in cities if c.key == "demo"), cities[0])
    n = getattr(args, "reroute_events", None) or 500_000
    engine = make_engine(city.url)
    try:
        console.log(f"reroute: {n:,} archived events into {city.key}")
        _add_events(engine, n)
        versions = {"a": _copy_of_version_in_force(engine, "bench-reroute-a"),
                    "b": _copy_of_version_in_force(engine, "bench-reroute-b", renumber=True)}  # fmt: skip
        with engine.connect() as conn:
            closed = conn.execute(text("SELECT count(*) FROM events WHERE status = ANY(:c)"), {"c": list(CLOSED)})
            closed = closed.scalar_one()
        results: list[tuple[str, int, str, float, float, int, bool]] = []
        for kind, workers, target, changes in RUNS:
            name, version_id = versions[target]
            console.log(f"reroute: {kind} {workers or ''} → {name}")
            seconds, build_s, moved, ok = _one_run(engine, name, version_id, kind, workers, closed)
            results.append((kind, workers, changes, seconds, build_s, moved, ok))
    finally:
        engine.dispose()
    return [_table(city, closed, results)], all(r[6] for r in results)


def _add_events(engine: Engine, n: int) -> None:
    points = random_points(county_boundary(), n, seed=21)
    wkb = shapely.to_wkb(shapely.set_srid(shapely.points(points.lon, points.lat), 4326), hex=True, include_srid=True)
    with transaction(engine) as session:
        copy_rows(
            session, "events", ["geom", "category_code", "status", "occurred_at", "reported_at"],
            ((w, "city_management", "archived", "2025-06-01T00:00:00+08:00",
              "2025-06-01T00:00:00+08:00") for w in np.asarray(wkb)),
        )  # fmt: skip
    with engine.connect() as conn:
        conn.execute(text("ANALYZE events"))
        conn.commit()


def _copy_of_version_in_force(engine: Engine, name: str, *, renumber: bool = False) -> tuple[str, int]:
    with transaction(engine) as session:
        draft = create_draft(session, name)
        if renumber:  # serials reversed within each community (by way of 501…, as codes are unique)
            session.execute(
                text(
                    "UPDATE grids g SET code = g.community_code || (500 + n.total + 1 - n.serial)::text "
                    "FROM (SELECT code, count(*) OVER (PARTITION BY community_code) AS total, "
                    "row_number() OVER (PARTITION BY community_code ORDER BY code) AS serial "
                    "FROM grids WHERE version_id = :v) n WHERE g.version_id = :v AND g.code = n.code"
                ),
                {"v": draft},
            )
            session.execute(
                text("UPDATE grids SET code = community_code || lpad((right(code, 3)::int - 500)::text, 3, '0') "
                     "WHERE version_id = :v"),
                {"v": draft},
            )  # fmt: skip
        publish_version(session, draft, routing=RoutingSettings(), boundaries=BoundarySettings())
    return name, draft


def _one_run(
    engine: Engine, name: str, version_id: int, kind: str, workers: int, closed: int
) -> tuple[float, float, int, bool]:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE events"))  # every run starts from the same state: no dead rows
    started = time.perf_counter()
    with transaction(engine) as session:
        router = load_router(session, version_id, RoutingSettings())
    build_s = time.perf_counter() - started
    if kind == "local":
        started = time.perf_counter()
        failures = _local(engine, router, name)
    else:
        with dask_client(None, workers) as client:
            started = time.perf_counter()
            failures = _dask(engine, router, name, client)
    seconds = time.perf_counter() - started
    with engine.connect() as conn:
        counted, moved = conn.execute(
            text("SELECT sum(events), sum(moved) FROM reroute_partitions "
                 "WHERE run_id = (SELECT max(id) FROM reroute_runs)")
        ).one()  # fmt: skip
        wrong = conn.execute(
            text("SELECT count(*) FROM events e WHERE status = ANY(:c) AND grid_code IS NOT NULL AND NOT EXISTS "
                 "(SELECT 1 FROM grids g WHERE g.version_id = :v AND g.code = e.grid_code)"),
            {"c": list(CLOSED), "v": version_id},
        ).scalar_one()  # fmt: skip
    return seconds, build_s, int(moved or 0), not failures and counted == closed and wrong == 0


def _start(engine: Engine, name: str, kind: str) -> tuple[int, list[int]]:
    with transaction(engine) as session:
        run_ = start_run(session, name, since=None, partition_size=PARTITION_SIZE, engine=kind, restart=True)
        pending = session.execute(
            text("SELECT seq FROM reroute_partitions WHERE run_id = :r ORDER BY seq"), {"r": run_.id}
        ).scalars().all()
    return run_.id, list(pending)


def _local(engine: Engine, router, name: str) -> list:  # noqa: ANN001
    run_id, _ = _start(engine, name, "local")
    return run_locally(engine, router, run_id)


def _dask(engine: Engine, router, name: str, client) -> list:  # noqa: ANN001
    run_id, pending = _start(engine, name, "dask")
    return run_on_dask(client, engine, router, run_id, pending)


def _table(city: City, closed: int, results: list[tuple[str, int, str, float, float, int, bool]]) -> Table:
    table = Table(f"reroute: {closed:,} closed events re-attributed ({city.title}, {PARTITION_SIZE:,} per partition)")
    base: dict[str, float] = {}
    for kind, workers, changes, seconds, _build_s, moved, ok in results:
        method = "local engine (this process)" if kind == "local" else f"dask LocalCluster, {workers} worker(s)"
        base.setdefault(changes, seconds)
        ratio = f"{base[changes] / seconds:.2f}× the local engine" if kind != "local" else ""
        what = changes if changes.startswith("first") else f"{changes} changes"
        label = f"{what} ({moved:,} written)"
        table.add(label if kind == "local" else "", method, f"{seconds:.1f} s, {closed / seconds:,.0f} events/s", ratio,
                  "every event once, V's grids", verdict(ok))  # fmt: skip
    table.notes.append(
        f"The router is built once per run ({results[0][4]:.1f} s, not timed) and shipped once per worker. The "
        "database is this machine's PostgreSQL, on the same 2 cores as the workers: writing is its work, not theirs."
    )
    return table


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reroute", description=__doc__.splitlines()[0])
    parser.add_argument("--reroute-events", type=int, default=500_000)
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
