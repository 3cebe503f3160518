"""Reports: the sustained rate of ``POST /v1/events`` (routed and committed) vs one PostGIS statement per request.

Each app serves a fresh copy of the demo city's database (``CREATE DATABASE … TEMPLATE bench_demo``)
under uvicorn, one worker, on loopback, in its own process; ``wrk`` in another process posts new
reports (a unique idempotency key each, points that a grid covers, a mix of categories) for the
measured seconds after a short warm-up. The service is called as the demo's dispatcher (a bearer
token: anonymous reports are rate-limited) with its deadline sweep off; the baseline is
``bench.postgis_report_app``. Afterwards every report wrk counted must be in the database, routed
(grid, community and town set) with its log row, and no answer may be non-2xx.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass

import numpy as np
import psycopg
from rich.console import Console

from bench.cities import City, bench_cluster
from bench.http import LUA_DONE, OUT, REPO, WrkResult, _stop, run_wrk
from bench.report import Table, verdict
from geoservice.city.demo import demo_users
from geoservice.infra.embedded import free_port

SERVICE_APP = "geoservice.app:create_app"
PEER_APP = "bench.postgis_report_app:create_app"
WARMUP_S = 2
POINTS = 2000
CATEGORIES = ("city_management.garbage", "city_management.stall", "environment.noise", "public_order.dispute",
              "livelihood.water_power", "public_safety.fire")  # fmt: skip
SECRET = "bench-secret-key-bench-secret-key-0123456789"

LUA = """
local points = {%s}
local categories = {%s}
local headers = {["Content-Type"] = "application/json"%s}
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  i = 0
end
function request()
  i = i + 1
  local p = points[((i * 7 + tid * 7919) %% #points) + 1]
  local c = categories[(i %% #categories) + 1]
  local body = string.format('{"lon": %%s, "lat": %%s, "category": "%%s", "source": "grid_worker", '
    .. '"description": "bench report", "idempotency_key": "%s-%%d-%%d"}', p[1], p[2], c, tid, i)
  return wrk.format("POST", "/v1/events", headers, body)
end
""" + LUA_DONE


@dataclass(frozen=True)
class AppRun:
    """One app under load and what its database held afterwards."""

    wrk: WrkResult
    stored: int
    routed: int
    logged: int


def run(cities: list[City], args: argparse.Namespace, console: Console) -> tuple[list[Table], bool]:
    """Both apps on the demo city for ``args.http_seconds`` each; the table and whether the checks held."""
    seconds = args.http_seconds
    demo = next((c for c in cities if c.key == "demo"), None)
    table = Table("reports: POST /v1/events, routed and committed (demo city, wrk on loopback)")
    if demo is None:
        table.notes.append("skipped: the report benchmark needs the demo city (--cities …,demo)")
        return [table], True
    points = _points(demo)
    runs: dict[str, AppRun] = {}
    for name, app in (("service", SERVICE_APP), ("postgis", PEER_APP)):
        console.log(f"reports: {name}, wrk -t2 -c32 -d{seconds}s")
        runs[name] = _run_app(demo, name, app, points, seconds)
    ours, peer = runs["service"], runs["postgis"]
    ok = all(r.wrk.non_2xx == 0 and r.stored >= r.wrk.requests and r.routed == r.stored == r.logged
             for r in runs.values())  # fmt: skip
    ratio = ours.wrk.rps / peer.wrk.rps
    table.add("sustained reports", "service (router in process, full validation, deadline, log)",
              f"{ours.wrk.rps:,.0f} /s", f"{ratio:.2f}×", "", "")  # fmt: skip
    table.add("", "PostGIS statement per request (ST_Covers route + INSERT + log)", f"{peer.wrk.rps:,.0f} /s", "1×")
    for name, r in runs.items():
        table.add("latency p50 / p99", name, f"{r.wrk.p50_ms:.1f} / {r.wrk.p99_ms:.1f} ms")
    table.add("stored = routed = logged ≥ answered, 0 non-2xx", "both",
              " / ".join(f"{r.stored:,}={r.routed:,}={r.logged:,}≥{r.wrk.requests:,}, {r.wrk.non_2xx}"
                         for r in runs.values()), "", "all", verdict(ok))  # fmt: skip
    table.notes.append(f"{seconds} s per app after a {WARMUP_S} s warm-up, wrk -t2 -c32, one uvicorn worker each, "
                       "each on a fresh copy of the demo database")  # fmt: skip
    return [table], ok


def _points(city: City) -> list[tuple[float, float]]:
    """Points a grid covers: a sample of grid interior points, seeded."""
    with psycopg.connect(city.conninfo) as conn:
        rows = conn.execute(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM grids "
            "WHERE version_id = %s ORDER BY code) s", (city.version_id,)
        ).fetchall()  # fmt: skip
    rng = np.random.default_rng(7)
    return [rows[i] for i in rng.integers(len(rows), size=POINTS)]


def _run_app(city: City, name: str, app: str, points: list[tuple[float, float]], seconds: int) -> AppRun:
    """Serve ``app`` on a fresh copy of the city's database, warm up, measure, then count what was stored."""
    cluster = bench_cluster()
    dbname = f"bench_events_{name}"
    with psycopg.connect(cluster.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}" TEMPLATE "{city.dbname}"')
    env = {**os.environ, "GEOSERVICE_DATABASE_URL": cluster.url(dbname), "GEOSERVICE_SECRET_KEY": SECRET,
           "GEOSERVICE_EVENT_SWEEP_S": "0"}  # fmt: skip
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--no-access-log", "--log-level", "warning"]  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / f"uvicorn_events_{name}.log", "w") as log:
        proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    run_id = f"{name}-{int(time.time())}"
    try:
        wait_until_served(proc, base)
        auth = _bearer(base) if app == SERVICE_APP else ""
        lua_points = ", ".join(f"{{{x!r}, {y!r}}}" for x, y in points)
        lua_categories = ", ".join(f'"{c}"' for c in CATEGORIES)
        scripts = {}
        for phase in ("warmup", "measured"):
            scripts[phase] = OUT / f"events_{name}_{phase}.lua"
            scripts[phase].write_text(LUA % (lua_points, lua_categories, auth, f"{run_id}-{phase}"))
        run_wrk(base, scripts["warmup"], WARMUP_S)
        result = run_wrk(base, scripts["measured"], seconds)
    finally:
        _stop(proc)
    try:
        with psycopg.connect(cluster.conninfo(dbname)) as conn:
            stored, routed, logged = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE grid_code IS NOT NULL AND town_code IS NOT NULL), "
                "count(*) FILTER (WHERE EXISTS (SELECT 1 FROM event_log l WHERE l.event_id = e.id)) "
                "FROM events e WHERE e.idempotency_key LIKE %s", (f"%{run_id}-measured-%",)
            ).fetchone()  # fmt: skip
    finally:
        with psycopg.connect(cluster.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    return AppRun(result, stored, routed, logged)


def _bearer(base: str) -> str:
    """The Lua header entry for the demo dispatcher's token."""
    user = next(u for u in demo_users() if u.username == "dispatcher")
    form = urllib.parse.urlencode({"username": user.username, "password": user.password}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{base}/v1/auth/token", data=form), timeout=30) as response:
        token = json.loads(response.read())["access_token"]
    return f', ["Authorization"] = "Bearer {token}"'


def wait_until_served(proc: subprocess.Popen, base: str, seconds: float = 180.0, log: str = "") -> None:
    """Until the app at ``base`` serves its OpenAPI document; an error if the process ends or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{base} exited with {proc.returncode}" + (f"; see {log}" if log else ""))
        try:
            with urllib.request.urlopen(f"{base}/openapi.json", timeout=5):
                return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"{base} did not answer within {seconds:g} s" + (f"; see {log}" if log else ""))
