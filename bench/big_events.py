"""The big-list suite: a 1,000,000-event city, its lists, counts and tiles against one plain SQL statement each.

Placeholder: the build step (the measuring part follows).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import psycopg

from geoservice.boundaries.settings import BoundarySettings
from geoservice.city.demo import DemoOptions, load_demo
from geoservice.infra.database import make_engine, migrate
from geoservice.infra.embedded import EmbeddedCluster
from geoservice.settings import RoutingSettings

ROOT = Path(__file__).resolve().parents[1]
BIG_HOME = ROOT / ".geoservice" / "big"
DBNAME = "big_events"
N_EVENTS = 1_000_000


def big_cluster() -> EmbeddedCluster:
    """The suite's own cluster (a million events do not belong in the bench cluster rebuilt every run)."""
    return EmbeddedCluster(BIG_HOME)


def build(cluster: EmbeddedCluster, n_events: int = N_EVENTS) -> str:
    """Load the demo city with ``n_events`` events into a fresh database; its URL."""
    cluster.up(DBNAME)
    cluster.ensure_database(DBNAME, fresh=True)
    engine = make_engine(cluster.url(DBNAME))
    started = time.perf_counter()
    try:
        migrate(engine)
        counts = load_demo(
            engine,
            DemoOptions(n_events=n_events),
            step=lambda s: print(f"{time.perf_counter() - started:7.1f}s {s}", flush=True),
            routing=RoutingSettings(),
            boundaries=BoundarySettings(),
        )
    finally:
        engine.dispose()
    with psycopg.connect(cluster.conninfo(DBNAME), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")
    print(f"built in {time.perf_counter() - started:.0f} s: {counts}", flush=True)
    return cluster.url(DBNAME)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.big_events")
    parser.add_argument("--build", action="store_true")
    parser.add_argument("--events", type=int, default=N_EVENTS)
    args = parser.parse_args(argv)
    if args.build:
        print(build(big_cluster(), args.events))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
