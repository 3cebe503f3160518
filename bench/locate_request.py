"""What one ``GET /v1/locate`` costs inside the app, by the way in (issue 22): before routing or through the route.

Not a suite: a tool for the request path without a server or a network. It calls the real app (all
its middleware) as an ASGI callable, in interleaved rounds so that both ways in see the same
machine load, on the demo city already in the bench cluster (``python -m bench --suites router
--cities demo`` builds it):

* **before routing**: ``lon=…&lat=…``, the request ``geoservice.api.locate_hits`` answers itself;
* **through the route**: the same point with ``lon`` written as ``1.20574e2``, which only the route
  takes (FastAPI's routing, dependencies and validation);

each with FastAPI's native OpenTelemetry off (as the app is built) and on. Both answers are checked
to be the same bytes. Reports the median and the least per-request time over the rounds: the least
is the cost on an idle core, the median what a loaded machine gave.

``python -m bench.locate_request [--rounds 30] [--requests 300]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from bench.cities import bench_cluster
from bench.machine import describe
from geoservice.app import create_app
from geoservice.settings import DatabaseSettings, OperationsSettings

FAST = b"lon=120.574&lat=32.389"
ROUTED = b"lon=1.20574e2&lat=32.389"
TELEMETRY = ("tracing", "metrics", "logs")


def request_scope(app: Any, query: bytes) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
            "path": "/v1/locate", "raw_path": b"/v1/locate", "root_path": "", "query_string": query,
            "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
            "app": app}  # fmt: skip


async def answer(app: Any, query: bytes) -> tuple[int, bytes]:
    """One request through the app: its status and body."""
    status, body = 0, b""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, body
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")

    await app(request_scope(app, query), receive, send)
    return status, body


async def measure(rounds: int, requests: int) -> None:
    cluster = bench_cluster()
    cluster.up("bench_demo")
    print("; ".join(f"{label}: {value}" for label, value in describe(cluster.conninfo("bench_demo")).rows))
    app = create_app(DatabaseSettings(database_url=cluster.url("bench_demo")),
                     operations=OperationsSettings(public_rate="1000000000/minute"))  # fmt: skip
    ways = {"before routing, OpenTelemetry off": (FAST, False), "before routing, OpenTelemetry on": (FAST, True),
            "through the route, OpenTelemetry off": (ROUTED, False),
            "through the route, OpenTelemetry on": (ROUTED, True)}  # fmt: skip
    async with app.router.lifespan_context(app):
        fast, routed = await answer(app, FAST), await answer(app, ROUTED)
        if fast[0] != 200 or fast != routed:
            raise SystemExit(f"the two ways in answer differently: {fast[0]} / {routed[0]}")
        times: dict[str, list[float]] = {name: [] for name in ways}
        for r in range(rounds + 2):  # two rounds of warm-up
            for name, (query, telemetry) in ways.items():
                app._telemetry.update(dict.fromkeys(TELEMETRY, telemetry))  # the config NativeTelemetry reads
                started = time.perf_counter()
                for _ in range(requests):
                    await answer(app, query)
                if r >= 2:
                    times[name].append((time.perf_counter() - started) / requests * 1e6)
    print(f"GET /v1/locate in process, demo city, {rounds} interleaved rounds of {requests} requests; same bytes: yes")
    for name, per_request in times.items():
        print(f"  {name:40s} median {statistics.median(per_request):7.1f} µs   least {min(per_request):7.1f} µs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.locate_request", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args(argv)
    asyncio.run(measure(args.rounds, args.requests))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
