"""The rate suite: what one public rate-limit check costs, in the process and shared through PostgreSQL.

* **in-process**: ``geoservice.api.limits.PublicRateLimiter.check`` (a bucket under a lock).
* **shared**: ``geoservice.api.shared_rate.SharedRateLimiter.check`` (one ``INSERT … ON CONFLICT …
  RETURNING`` on the UNLOGGED ``rate_buckets``, a pooled connection, one commit), from one thread
  and from 8 threads at once (as a worker's thread pool calls it), 1,000 client addresses in turn.
* **check** (correctness): with a budget of 100 per hour and 8 threads of one client hammering it,
  exactly 100 checks are granted.

Both run against a database of the bench cluster on loopback. ``python -m bench.rate_limit`` runs it alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from rich.console import Console
from sqlalchemy import text

from bench.cities import City, bench_cluster
from bench.report import Table, print_table, verdict
from geoservice.api.limits import PublicRateLimiter
from geoservice.api.problems import ProblemError
from geoservice.api.shared_rate import SharedRateLimiter
from geoservice.infra.database import make_engine, migrate

DATABASE = "bench_rate"
CLIENTS = [f"10.0.{k // 250}.{k % 250}" for k in range(1000)]
RATE = "1000000/minute"  # never short: every check is a grant, the common case


def run(cities: list[City] | None, args: argparse.Namespace | None, console: Console) -> tuple[list[Table], bool]:
    """Measure on a database of its own in the bench cluster (the cities are not needed)."""
    cluster = bench_cluster()
    cluster.ensure_database(DATABASE, fresh=True)
    engine = make_engine(cluster.url(DATABASE))
    migrate(engine)
    try:
        console.log("rate: in-process checks")
        local = PublicRateLimiter(RATE)
        in_process = _per_check(lambda k: local.check(CLIENTS[k % len(CLIENTS)]), 200_000)
        shared = SharedRateLimiter(RATE, engine)
        _per_check(lambda k: shared.check(CLIENTS[k % len(CLIENTS)]), 500)  # warm the pool and the plan
        console.log("rate: shared checks, 1 thread")
        one = _per_check(lambda k: shared.check(CLIENTS[k % len(CLIENTS)]), 5_000)
        console.log("rate: shared checks, 8 threads")
        eight = _threads(shared, 8, 10_000)
        granted = _exact(engine)
    finally:
        engine.dispose()
    table = Table("rate limit: one check of the public budget")
    table.add("per check", "in-process bucket (PublicRateLimiter)", f"{in_process * 1e6:.2f} µs")
    table.add("", "PostgreSQL bucket (SharedRateLimiter), 1 thread", f"{one * 1e6:.0f} µs",
              f"{one / in_process:,.0f}× the in-process one")  # fmt: skip
    table.add("", "PostgreSQL bucket, 8 threads at once", f"{1 / eight:,.0f} checks/s",
              f"{eight * 1e6:.0f} µs of wall time per check")  # fmt: skip
    table.add("exactness", "100/hour, 8 threads × 50 checks of one client", f"{granted} granted", "", "100",
              verdict(granted == 100))  # fmt: skip
    table.notes.append(
        "A shared check is a pooled connection's ping and one autocommitted statement on loopback. A public GET "
        "/v1/locate is served at about 2,200 req/s by one worker (0.45 ms each, the router suite), so the shared "
        "check roughly doubles what a public request costs the server; staff requests are never checked. It runs "
        "in the thread pool, never on the event loop, and only when several workers serve (or it is asked for)."
    )
    return [table], granted == 100


def _per_check(check, n: int) -> float:  # noqa: ANN001
    rounds = []
    for _ in range(3):
        started = time.perf_counter()
        for k in range(n):
            check(k)
        rounds.append((time.perf_counter() - started) / n)
    return statistics.median(rounds)


def _threads(limiter: SharedRateLimiter, threads: int, n: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda k: limiter.check(CLIENTS[k % len(CLIENTS)]), range(n)))
    return (time.perf_counter() - started) / n


def _exact(engine) -> int:  # noqa: ANN001
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM rate_buckets"))
    limiter = SharedRateLimiter("100/hour", engine)

    def one(_k: int) -> bool:
        try:
            limiter.check("one client")
        except ProblemError:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        return sum(pool.map(one, range(400)))


def main(argv: list[str]) -> int:
    argparse.ArgumentParser(prog="python -m bench.rate_limit", description=__doc__.splitlines()[0]).parse_args(argv)
    console = Console(width=160)
    bench_cluster().up("bench")
    tables, ok = run(None, None, console)
    for table in tables:
        print_table(console, table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
