"""No lost events: concurrent clients report with idempotency keys while PostgreSQL stops and restarts.

The service runs as a real uvicorn process on loopback; the clients are threads with their own
HTTP connections. Each report carries a unique idempotency key and is retried (same key, same body)
until the service acknowledges it with 200/201; meanwhile the database is stopped (fast shutdown,
which kills every open connection) and started again. At the end every acknowledged report must be
stored exactly once, and the service must answer without having been restarted.

``tests/geoservice/test_no_lost_events.py`` runs a short version on every test run;
``python -m bench.lost_events`` runs a longer one on the demo city (several restarts, thousands of
reports) and prints the counts and the rate.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from geoservice.infra.embedded import EmbeddedCluster, free_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Outcome:
    """What the clients saw: acknowledged keys with the event id, and every failed attempt."""

    acknowledged: dict[str, int] = field(default_factory=dict)
    failures: int = 0
    unanswered: list[str] = field(default_factory=list)  # keys never acknowledged before the deadline
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def served(database_url: str, port: int | None = None) -> Iterator[str]:
    """``geoservice``'s app under uvicorn in its own process; yields its base URL."""
    port = port or free_port()
    env = {**os.environ, "GEOSERVICE_DATABASE_URL": database_url, "GEOSERVICE_PUBLIC_RATE": "1000000/minute",
           "GEOSERVICE_EVENT_SWEEP_S": "0", "GEOSERVICE_LOG_FORMAT": "text"}  # fmt: skip
    command = [sys.executable, "-m", "uvicorn", "geoservice.app:create_app", "--factory", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if server.poll() is not None:
                raise RuntimeError(f"the server exited: {server.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("the server did not become ready within 30 s")
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)


def submit_all(
    base: str, reports: list[tuple[str, dict]], clients: int, give_up_s: float, progress: Callable[[int], None]
) -> Outcome:
    """Send every (key, body) from ``clients`` threads, retrying each until it is acknowledged."""
    outcome = Outcome()
    chunks = [reports[i::clients] for i in range(clients)]
    started = time.perf_counter()

    def client(mine: list[tuple[str, dict]]) -> None:
        with httpx.Client(base_url=base, timeout=10) as http:
            for key, body in mine:
                deadline = time.monotonic() + give_up_s
                while True:
                    try:
                        answer = http.post("/v1/events", json=body, headers={"Idempotency-Key": key})
                        if answer.status_code in (200, 201):
                            with outcome.lock:
                                outcome.acknowledged[key] = answer.json()["id"]
                                progress(len(outcome.acknowledged))
                            break
                    except httpx.HTTPError:
                        pass
                    with outcome.lock:
                        outcome.failures += 1
                    if time.monotonic() > deadline:
                        with outcome.lock:
                            outcome.unanswered.append(key)
                        break
                    time.sleep(0.2)

    threads = [threading.Thread(target=client, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcome.seconds = time.perf_counter() - started
    return outcome


class Restarter:
    """Stops and restarts the cluster each time the acknowledged count passes one of ``at``."""

    def __init__(self, cluster: EmbeddedCluster, dbname: str, at: list[int], pause_s: float) -> None:
        self.cluster, self.dbname, self.pause_s = cluster, dbname, pause_s
        self.pending = sorted(at)
        self.restarts = 0
        self.outage_s = 0.0
        self._busy = threading.Lock()

    def __call__(self, acknowledged: int) -> None:
        if self.pending and acknowledged >= self.pending[0] and self._busy.acquire(blocking=False):
            self.pending.pop(0)
            threading.Thread(target=self._restart, daemon=True).start()

    def _restart(self) -> None:
        try:
            down = time.perf_counter()
            self.cluster.down()
            time.sleep(self.pause_s)
            self.cluster.up(self.dbname)
            self.outage_s += time.perf_counter() - down
            self.restarts += 1
        finally:
            self._busy.release()


def stored(database_url: str) -> dict[str, list[int]]:
    """Event ids by the idempotency key the clients sent (``api:<user>:<key>``, ``anon:<address>:<key>``)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            keys = "idempotency_key LIKE 'api:%' OR idempotency_key LIKE 'anon:%'"
            rows = conn.execute(text(f"SELECT idempotency_key, id FROM events WHERE {keys}"))
            out: dict[str, list[int]] = {}
            for key, event_id in rows:
                out.setdefault(key.rsplit(":", 1)[-1], []).append(event_id)
            return out
    finally:
        engine.dispose()


def reports_for(points: list[tuple[float, float]], n: int, category: str, run: str) -> list[tuple[str, dict]]:
    """``n`` reports cycling over ``points``, each with its own key."""
    return [
        (f"{run}-{i:06d}", {"lon": points[i % len(points)][0], "lat": points[i % len(points)][1],
                            "category": category, "description": f"fault-run report {i}", "source": "public"})
        for i in range(n)
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """A longer run on the demo city in the bench cluster."""
    from bench.cities import bench_cluster, build_cities

    parser = argparse.ArgumentParser(prog="python -m bench.lost_events", description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--pause", type=float, default=3.0, help="seconds the database stays down each time")
    args = parser.parse_args(argv)
    cluster = bench_cluster()
    cluster.up("bench")
    demo = build_cities(cluster, ("demo",), step=print)[0]
    engine = create_engine(demo.url)
    with engine.connect() as conn:
        points = [tuple(r) for r in conn.execute(text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM grids "
            "WHERE version_id = :v ORDER BY code LIMIT 500) s"), {"v": demo.version_id})]  # fmt: skip
    engine.dispose()
    run = f"bench{int(time.time())}"
    reports = reports_for(points, args.reports, "city_management.garbage", run)
    step = args.reports // (args.restarts + 1)
    restarter = Restarter(cluster, demo.dbname, [step * (k + 1) for k in range(args.restarts)], args.pause)
    with served(demo.url) as base:
        outcome = submit_all(base, reports, args.clients, give_up_s=120, progress=restarter)
        ready = httpx.get(f"{base}/readyz", timeout=5).status_code
    found = {k: v for k, v in stored(demo.url).items() if k.startswith(run)}
    lost = [k for k in outcome.acknowledged if k not in found]
    duplicated = [k for k, ids in found.items() if len(ids) > 1]
    wrong = [k for k, i in outcome.acknowledged.items() if k in found and found[k] != [i]]
    print(f"machine: {os.cpu_count()} cores; {args.clients} clients, {args.reports:,} reports, "
          f"{restarter.restarts} database restarts ({restarter.outage_s:.1f} s down in all)")  # fmt: skip
    print(f"acknowledged {len(outcome.acknowledged):,}, stored {len(found):,}, lost {len(lost)}, "
          f"duplicated {len(duplicated)}, id mismatches {len(wrong)}, never acknowledged {len(outcome.unanswered)}")
    print(f"failed attempts (retried) {outcome.failures:,}; {len(outcome.acknowledged) / outcome.seconds:,.0f} "
          f"acknowledged reports/s over {outcome.seconds:.1f} s including the outages; /readyz after: {ready}")
    ok = not lost and not duplicated and not wrong and not outcome.unanswered and ready == 200
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
