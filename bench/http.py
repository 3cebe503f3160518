"""HTTP: the service's ``GET /v1/locate`` vs the one-PostGIS-query-per-request endpoint, under load.

Each app runs the way it would be deployed on one core: ``uvicorn … --factory``, one worker, on
loopback, in its own process; ``wrk`` (``-t2 -c32``) runs in another process and cycles through a
fixed list of points that a grid covers (every answer must be a 200: wrk's non-2xx count is
reported and must be 0). A short unmeasured warm-up run comes first (connection pool, prepared
statements). Before the load, both apps answer the same few hundred points and the answers are
compared field by field, so that the baseline demonstrably does the same work.

Servers are started in their own session and always killed at the end (``finally``), by pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cities import City
from geoservice.infra.embedded import free_port

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
ROUTER_APP = "geoservice.app:create_app"
POSTGIS_APP = "bench.postgis_locate_app:create_app"
FLOOR_APP = "bench.bare_asgi:json_app"  # the same JSON bytes for every request, no code: what uvicorn and wrk allow
THREADS, CONNECTIONS = 2, 32
WARMUP_S = 2
COMPARE = 300
DISTANCE_SLACK_M = 0.15  # both round to 0.1 m; PROJ in PostGIS and in pyproj may differ by millimetres

# wrk prints one machine-readable line at the end; every benchmark's script ends with it.
LUA_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, "non_2xx": %%d, '
    .. '"connect": %%d, "read": %%d, "write": %%d, "timeout": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.status,
    e.connect, e.read, e.write, e.timeout))
end
"""

# Each wrk thread starts its walk through the requests at another offset (a prime apart).
LUA_OFFSETS = """
local counter = 0
function setup(thread)
  thread:set("offset", counter * 7919)
  counter = counter + 1
end
function init(args)
  i = offset
end
"""

LUA = (
    """
local points = {%s}
"""
    + LUA_OFFSETS
    + """
function request()
  i = i + 1
  return wrk.format("GET", "/v1/locate?" .. points[(i %% #points) + 1])
end
"""
    + LUA_DONE
)


@dataclass(frozen=True)
class WrkResult:
    """One wrk run."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


@dataclass(frozen=True)
class HttpResult:
    """Both apps under the same load, and how their answers compared."""

    router: WrkResult
    postgis: WrkResult
    compared: int
    differences: list[str]
    seconds: int
    floor: WrkResult | None = None


def bench_http(city: City, points: list[tuple[float, float]], seconds: int) -> HttpResult:
    """Serve each app in turn and load it with wrk; compare answers on the first ``COMPARE`` points."""
    OUT.mkdir(parents=True, exist_ok=True)
    script = OUT / f"locate_{city.key}.lua"
    queries = ", ".join(f'"lon={x!r}&lat={y!r}"' for x, y in points)
    script.write_text(LUA % queries)
    # wrk is one client address asking thousands of times a second: the public rate limit (which
    # would answer 429) is lifted, since what is measured is locating, not limiting.
    env = {**os.environ, "GEOSERVICE_DATABASE_URL": city.url, "GEOSERVICE_PUBLIC_RATE": "100000000/minute"}
    answers: dict[str, list[dict[str, Any]]] = {}
    results: dict[str, WrkResult] = {}
    for name, app in (("router", ROUTER_APP), ("postgis", POSTGIS_APP)):
        with serve(app, env, OUT / f"uvicorn_{city.key}_{name}.log", points[0]) as base:
            answers[name] = [_get(base, x, y) for x, y in points[:COMPARE]]
            run_wrk(base, script, WARMUP_S)
            results[name] = run_wrk(base, script, seconds)
    with serve(FLOOR_APP, env, OUT / f"uvicorn_{city.key}_floor.log", None) as base:
        run_wrk(base, script, WARMUP_S)
        floor = run_wrk(base, script, seconds)
    differences = compare_answers(answers["router"], answers["postgis"], points)
    return HttpResult(results["router"], results["postgis"], len(answers["router"]), differences, seconds, floor)


@contextmanager
def serve(app: str, env: dict[str, str], log_path: Path, probe: tuple[float, float] | None) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free loopback port until the block ends; yield its base URL.

    ``probe`` None: ``app`` is an ASGI app, not a factory, and any answer means it is ready.
    """
    port = free_port()
    factory = ["--factory"] if probe is not None else []
    argv = [sys.executable, "-m", "uvicorn", app, *factory, "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--no-access-log", "--log-level", "warning"]  # fmt: skip
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, base, probe, log_path)
        yield base
    finally:
        _stop(proc)


def _wait_ready(proc: subprocess.Popen, base: str, probe: tuple[float, float] | None, log_path: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{base} exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
        try:
            if probe is None:
                urllib.request.urlopen(base, timeout=10).read()
            else:
                _get(base, *probe)
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.25)
    raise RuntimeError(f"{base} did not answer within 180 s; see {log_path}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's own process group (its pid), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def _get(base: str, lon: float, lat: float) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/v1/locate?lon={lon!r}&lat={lat!r}", timeout=10) as response:
        return json.loads(response.read())


def run_wrk(base: str, script: Path, seconds: int) -> WrkResult:
    """One wrk run; its Lua ``done`` hook prints the figures as JSON."""
    argv = [
        "wrk",
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        base,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no figures:\n{out}")
    data = json.loads(line.removeprefix("BENCH "))
    return WrkResult(
        requests=data["requests"], seconds=data["duration_us"] / 1e6, p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000, non_2xx=data["non_2xx"],
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
    )  # fmt: skip


def compare_answers(
    ours: list[dict[str, Any]], theirs: list[dict[str, Any]], points: list[tuple[float, float]]
) -> list[str]:
    """Field-by-field differences (codes, names, station, posts; distances within a few cm)."""
    out = []
    for (lon, lat), a, b in zip(points, ours, theirs, strict=False):
        for path, x, y in _diff(a, b, ""):
            out.append(f"({lon}, {lat}) {path}: router {x!r} vs PostGIS {y!r}")
    return out


def _diff(a: Any, b: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            yield from _diff(a.get(key), b.get(key), f"{path}.{key}" if path else key)
    elif isinstance(a, float) and isinstance(b, float) and path.endswith("distance_m"):
        if abs(a - b) > DISTANCE_SLACK_M:
            yield path, a, b
    elif a != b:
        yield path, a, b
