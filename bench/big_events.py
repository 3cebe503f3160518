"""The big-list suite: a 1,000,000-event city, its lists, counts and tiles against one plain SQL statement each.

``--build`` loads the demo city with a million events into the suite's own cluster (about 20 min;
once). Without it the suite measures, through the real service (``geoservice serve``, one worker)
and the baseline (``bench.postgis_list_app``, one uvicorn worker, one SQL statement per request),
each on loopback under ``wrk`` in turn, with the same requests:

* the first page of ``GET /v1/events`` (50 events) as the demo's county-wide dispatcher, with each
  common filter (none, status, warning colour, town, community, grid, category, owner=mine, a week,
  text), and a grid worker's own queue; before the load both apps answer every request of the
  scenario's list and the ids of the page must be the same, in the same order;
* ``GET /v1/stats/counts`` by town and by month (rows must be equal);
* events tiles at z10 (counts per cell) and z14 (events one by one), tile cache off (every tile
  built, as a tile is after each change of events): ids at z14 and the events counted at z10 equal;
* one worker's memory (RSS) after the load, on this city and on the demo city (50,000 events);
* throughput of the dispatcher's first page with ``--workers 2`` against one worker.

Every answer under load must be 2xx. The machine and its load average are printed: the figures are
only comparable within one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import mapbox_vector_tile
import numpy as np
import psutil
import psycopg
from rich.console import Console
from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.events import wait_until_served
from bench.http import LUA_DONE, LUA_OFFSETS, OUT, REPO, _stop
from bench.http import WrkResult as Load
from bench.machine import describe
from bench.report import Table, print_machine, print_table, verdict
from geoservice.auth.scope import scope_of
from geoservice.auth.users import Principal
from geoservice.boundaries.settings import BoundarySettings
from geoservice.city.demo import DemoOptions, demo_users, load_demo
from geoservice.events.queries import EventFilters, list_events
from geoservice.infra.database import make_engine, migrate
from geoservice.infra.embedded import EmbeddedCluster, free_port
from geoservice.settings import EventSettings, RoutingSettings
from geoservice.stats import counts as counts_module
from geoservice.stats.filters import Condition
from layers.models import Role

ROOT = Path(__file__).resolve().parents[1]
BIG_HOME = Path(os.environ.get("BENCH_BIG_HOME", ROOT / ".geoservice" / "big"))  # 5 GB: built once, kept
DBNAME = "big_events"
DEMO_DBNAME = "big_demo"  # the demo city's own size (50,000 events), for the memory figure
N_EVENTS = 1_000_000
SECRET = "bench-secret-key-bench-secret-key-0123456789"
PEER_APP = "bench.postgis_list_app:create_app"
SECONDS, WARMUP_S = 5, 1
THREADS, CONNECTIONS = 2, 4  # a few people at once: latency, not saturation
THROUGHPUT_CONNECTIONS = 32
SAMPLES = 40  # requests per scenario (cycled under load, each compared before it)
LIST_TARGET_MS, COUNT_TARGET_MS, TILE_TARGET_MS = 20, 200, 50


def big_cluster() -> EmbeddedCluster:
    """The suite's own cluster (a million events do not belong in the bench cluster rebuilt every run)."""
    return EmbeddedCluster(BIG_HOME)


def build(cluster: EmbeddedCluster, n_events: int = N_EVENTS, dbname: str = DBNAME) -> str:
    """Load the demo city with ``n_events`` events into a fresh database; its URL."""
    cluster.up(dbname)
    cluster.ensure_database(dbname, fresh=True)
    engine = make_engine(cluster.url(dbname))
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
    with psycopg.connect(cluster.conninfo(dbname), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")
    print(f"built in {time.perf_counter() - started:.0f} s: {counts}", flush=True)
    return cluster.url(dbname)


@dataclass(frozen=True)
class Scenario:
    """Requests of one kind: the service's paths (the peer's add its scope), who asks, the target."""

    group: str
    name: str
    paths: list[str]
    user: str
    target_ms: float
    kind: str  # list, counts, tile


LUA = """
local paths = {%s}
local headers = {%s}
""" + LUA_OFFSETS + """
function request()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1], headers)
end
""" + LUA_DONE


def measure(
    cluster: EmbeddedCluster, seconds: int, console: Console, workers: bool = True, only: str | None = None
) -> tuple[list[Table], bool]:
    """Every figure of the suite, service and baseline side by side; the tables and whether all checks held."""
    cluster.up(DBNAME)
    engine = make_engine(cluster.url(DBNAME))
    try:
        migrate(engine)  # the city was built at an older head; the service would migrate it as well
    finally:
        engine.dispose()
    conninfo = cluster.conninfo(DBNAME)
    print_machine(console, describe(conninfo))
    console.log(f"load average at start: {_load()}")
    scenarios = [sc for sc in _scenarios(conninfo) if only is None or sc.kind == only]
    env = _env(cluster.url(DBNAME))
    tables: list[Table] = []
    ok = True
    results: dict[tuple[str, str], tuple[Load, Load, int, int]] = {}
    with serve_service(env, 1) as (base, proc):
        tokens = {u: _token(base, u) for u in ("dispatcher", "gridworker")}
        with serve_peer(env) as peer:
            for sc in scenarios:
                console.log(f"{sc.group}: {sc.name} ({len(sc.paths)} requests compared, then {seconds} s each)")
                compared, differences = _compare(sc, base, peer, tokens, console)
                span = seconds if sc.kind == "list" else seconds * 2  # slower answers: enough of them for a p99
                ours = _load_run(base, sc.paths, tokens[sc.user], span, f"{sc.kind}_service", CONNECTIONS)
                theirs = _load_run(peer, [_peer_path(p, sc.user) for p in sc.paths], "", span, f"{sc.kind}_peer",
                                   CONNECTIONS)  # fmt: skip
                results[(sc.group, sc.name)] = (ours, theirs, compared, differences)
        rss_big = _rss(proc)
    console.log(f"load average after the scenarios: {_load()}")
    for group in dict.fromkeys(sc.group for sc in scenarios):
        table = Table(group)
        for sc in (s for s in scenarios if s.group == group):
            ours, theirs, compared, differences = results[(group, sc.name)]
            good = ours.non_2xx == theirs.non_2xx == 0 and ours.socket_errors == 0 and differences == 0
            ok &= good
            table.add(sc.name, "service p50 / p99", _latency(ours),
                      _ratio(theirs, ours), f"p99 ≤ {sc.target_ms:.0f} ms",
                      verdict(ours.requests > 0 and ours.p99_ms <= sc.target_ms))  # fmt: skip
            table.add(sc.name, "one SQL statement p50 / p99", _latency(theirs), "1×")
            table.add(sc.name, "answers compared, differences, non-2xx (service/peer)",
                      f"{compared}, {differences}, {ours.non_2xx}/{theirs.non_2xx}", "", "0 differences, 0 non-2xx",
                      verdict(good))  # fmt: skip
        table.notes.append(f"wrk -t{min(THREADS, CONNECTIONS)} -c{CONNECTIONS}, {seconds} s per app after "
                           f"{WARMUP_S} s, one worker each, "
                           "the same requests cycled (counts and tiles: twice as long); "
                           "ratio = the statement's p99 over the service's")  # fmt: skip
        tables.append(table)
    if workers and only is None:
        tables.append(_workers_and_memory(cluster, env, scenarios, rss_big, seconds, console))
    else:
        tables[-1].notes.append(f"RSS of the worker after the scenarios: {rss_big / 2**20:,.0f} MiB")
    console.log(f"load average at the end: {_load()}")
    return tables, ok


def _workers_and_memory(
    cluster: EmbeddedCluster, env: dict[str, str], scenarios: list[Scenario], rss_big: int, seconds: int,
    console: Console,
) -> Table:  # fmt: skip
    """RSS of one worker on the demo city; throughput of the dispatcher's first page on 1 and 2 workers."""
    table = Table("big city: one worker's memory, and --workers 2 against 1")
    first_page = next(s for s in scenarios if s.name == "no filter")
    runs: dict[int, Load] = {}
    for workers in (1, 2):
        console.log(f"throughput: --workers {workers}, wrk -c{THROUGHPUT_CONNECTIONS}, {seconds * 2} s")
        with serve_service(env, workers) as (base, _):
            token = _token(base, "dispatcher")
            runs[workers] = _load_run(base, first_page.paths, token, seconds * 2, "throughput",
                                      connections=THROUGHPUT_CONNECTIONS)  # fmt: skip
    if not _has_database(cluster, DEMO_DBNAME):
        build(cluster, DemoOptions().n_events, DEMO_DBNAME)
    console.log("memory: one worker on the demo city, the same scenarios once each")
    demo_env = {**env, "GEOSERVICE_DATABASE_URL": cluster.url(DEMO_DBNAME)}
    with serve_service(demo_env, 1) as (base, proc):
        token = _token(base, "dispatcher")
        for sc in _scenarios(cluster.conninfo(DEMO_DBNAME)):
            if sc.user == "dispatcher":
                _load_run(base, sc.paths, token, WARMUP_S, "demo")
        rss_demo = _rss(proc)
    one, two = runs[1], runs[2]
    table.add("RSS of one worker after the load", "demo city (50,000 events)", f"{rss_demo / 2**20:,.0f} MiB")
    table.add("", "this city (1,000,000 events)", f"{rss_big / 2**20:,.0f} MiB", f"{rss_big / rss_demo:.1f}×")
    table.add("dispatcher's first page, saturated", "geoservice serve --workers 2", f"{two.rps:,.0f} /s",
              f"{two.rps / one.rps:.2f}×", "", verdict(two.non_2xx == one.non_2xx == 0))  # fmt: skip
    table.add("", "geoservice serve --workers 1", f"{one.rps:,.0f} /s", "1×")
    for workers, r in runs.items():
        table.add("latency p50 / p99", f"{workers} worker(s)", f"{r.p50_ms:.1f} / {r.p99_ms:.1f} ms")
    table.notes.append(f"wrk -t2 -c{THROUGHPUT_CONNECTIONS}, {seconds * 2} s after {WARMUP_S} s; RSS (psutil) of the "
                       "serving process after every scenario above ran against it, events tiles included "
                       "(below the cluster zoom the events are counted in memory)")  # fmt: skip
    return table


def _scenarios(conninfo: str) -> list[Scenario]:
    """The requests of every scenario, drawn (seeded) from the city's own codes, times and words."""
    rng = np.random.default_rng(22)
    with psycopg.connect(conninfo) as conn:
        towns = [r[0] for r in conn.execute("SELECT DISTINCT town_code FROM events WHERE town_code IS NOT NULL")]
        communities = [r[0] for r in conn.execute(
            "SELECT DISTINCT community_code FROM events WHERE community_code IS NOT NULL")]  # fmt: skip
        grids = [r[0] for r in conn.execute("SELECT DISTINCT grid_code FROM events WHERE grid_code IS NOT NULL")]
        categories = [r[0] for r in conn.execute("SELECT code FROM categories ORDER BY code")]
        lo, hi = conn.execute("SELECT min(reported_at), max(reported_at) FROM events").fetchone()
        words = [r[0] for r in conn.execute(
            "SELECT DISTINCT substr(description, 1 + (id % 6)::int, 3) FROM events WHERE id % 997 = 0 LIMIT 200")]
        points = conn.execute("SELECT ST_X(geom), ST_Y(geom) FROM events WHERE id % 211 = 0").fetchall()
    def pick(values: list[str], n: int = SAMPLES) -> list[str]:
        return [values[i] for i in rng.choice(len(values), size=min(n, len(values)), replace=False)]

    def weeks() -> list[str]:
        span = (hi - lo).total_seconds() - 7 * 86400
        starts = [lo.timestamp() + float(rng.uniform(0, span)) for _ in range(SAMPLES)]
        return [f"from={_time(t)}&to={_time(t + 7 * 86400)}" for t in starts]

    lists = "GET /v1/events: the first page (50), county-wide dispatcher"
    page = "/v1/events?limit=50"
    plain: list[tuple[str, list[str]]] = [
        ("no filter", [""]),
        ("status=handling", ["status=handling"]),
        ("status=archived", ["status=archived"]),
        ("status=dispatched,handling,reopened", ["status=dispatched,handling,reopened"]),
        ("warning=red", ["warning=red"]),
        ("warning=yellow", ["warning=yellow"]),
        ("town (each)", [f"region={c}" for c in towns]),
        (f"community ({SAMPLES} of {len(communities)})", [f"region={c}" for c in pick(communities)]),
        (f"grid ({SAMPLES} of {len(grids)})", [f"region={c}" for c in pick(grids)]),
        ("category (each class and leaf)", [f"category={c}" for c in categories]),
        ("owner=mine", ["owner=mine"]),
        (f"one week ({SAMPLES} weeks)", weeks()),
        (f"q= text ({SAMPLES} three-character words)", [f"q={urllib.parse.quote(w)}" for w in pick(words)]),
        ("q= text matching nothing", [f"q={urllib.parse.quote(w)}" for w in ("不存在的词", "zzz-nothing", "火星基地")]),
    ]
    out = [Scenario(lists, name, [f"{page}&{q}" if q else page for q in qs], "dispatcher", LIST_TARGET_MS, "list")
           for name, qs in plain]  # fmt: skip
    out.append(Scenario(lists, "grid worker's own queue (a community)", [page], "gridworker", LIST_TARGET_MS, "list"))
    counts = "GET /v1/stats/counts, county-wide dispatcher"
    for by in ("town", "month"):
        out.append(Scenario(counts, f"by={by}", [f"/v1/stats/counts?by={by}"], "dispatcher", COUNT_TARGET_MS, "counts"))
    tiles = "GET /tiles/events/{z}/{x}/{y}.mvt, county-wide dispatcher, tile cache off"
    for z in (10, 14):
        cells = sorted({_tile(lon, lat, z) for lon, lat in points})
        chosen = cells if len(cells) <= SAMPLES * 5 else [cells[i] for i in rng.choice(len(cells), SAMPLES * 5, False)]
        out.append(Scenario(tiles, f"z{z} ({len(chosen)} tiles with events)",
                            [f"/tiles/events/{z}/{x}/{y}.mvt" for x, y in chosen], "dispatcher", TILE_TARGET_MS,
                            "tile"))  # fmt: skip
    return out


def _compare(sc: Scenario, base: str, peer: str, tokens: dict[str, str], console: Console) -> tuple[int, int]:
    """Both apps answer every request of the scenario; the number compared and the differences."""
    differences = 0
    for path in sc.paths:
        ours = _fetch(base + path, tokens[sc.user])
        theirs = _fetch(peer + _peer_path(path, sc.user), "")
        if _digest(sc.kind, ours) != _digest(sc.kind, theirs):
            differences += 1
            if differences <= 3:
                a, b = _digest(sc.kind, ours), _digest(sc.kind, theirs)
                console.log(f"[red]differs[/]: {path}: {a!s:.300} vs {b!s:.300}")
    return len(sc.paths), differences


def _digest(kind: str, body: bytes) -> Any:
    """What must be equal: the page's ids in order, the count rows, a tile's ids or its counted events."""
    if kind == "list":
        return [item["id"] for item in json.loads(body)["items"]]
    if kind == "counts":
        return [(r["key"], r["events"]) for r in json.loads(body)["rows"]]
    layers = mapbox_vector_tile.decode(body) if body else {}
    features = layers.get("events", {}).get("features", [])
    if any("count" in f["properties"] for f in features):
        return ("counted", sum(f["properties"]["count"] for f in features),
                sum(f["properties"]["red"] for f in features))  # fmt: skip
    return ("ids", sorted(f["id"] for f in features))


def _peer_path(path: str, user: str) -> str:
    """The baseline's request: the same one, with the scope the service derives from the user's token."""
    account = next(u for u in demo_users() if u.username == user)
    code = account.region_code or ""
    prefix = code[:6] if code.endswith("000000") else code  # a county's subtree, or a community's
    return f"{path}{'&' if '?' in path else '?'}_scope={prefix}"


def _load_run(
    base: str, paths: list[str], token: str, seconds: int, name: str, connections: int = CONNECTIONS
) -> Load:  # fmt: skip
    """A warm-up, then ``seconds`` of wrk cycling through ``paths``."""
    OUT.mkdir(parents=True, exist_ok=True)
    script = OUT / f"big_events_{name}.lua"
    quoted = ", ".join(json.dumps(p) for p in paths)
    headers = f'["Authorization"] = "Bearer {token}"' if token else ""
    script.write_text(LUA % (quoted, headers))
    _wrk(base, script, WARMUP_S, connections)
    return _wrk(base, script, seconds, connections)


def _wrk(base: str, script: Path, seconds: int, connections: int) -> Load:
    argv = ["wrk", f"-t{THREADS}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), base]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no figures:\n{out}")
    d = json.loads(line.removeprefix("BENCH "))
    return Load(d["requests"], d["duration_us"] / 1e6, d["p50_us"] / 1000, d["p99_us"] / 1000, d["non_2xx"],
                d["connect"] + d["read"] + d["write"] + d["timeout"])  # fmt: skip


@contextmanager
def serve_service(env: dict[str, str], workers: int) -> Iterator[tuple[str, subprocess.Popen]]:
    """``geoservice serve --workers N`` on a free loopback port until the block ends."""
    port = free_port()
    # The ``geoservice`` script would import the package the venv was installed from (editable, another
    # checkout); ``-c`` puts this checkout first on the path, as ``python -m uvicorn`` does for the peer.
    launcher = "import sys; from geoservice.cli import app; sys.argv[0] = 'geoservice'; app()"
    argv = [sys.executable, "-c", launcher, "serve", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers)]  # fmt: skip
    with _started(argv, env, f"serve_{workers}") as base_proc:
        yield base_proc


@contextmanager
def serve_peer(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", PEER_APP, "--factory", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--no-access-log", "--log-level", "warning"]  # fmt: skip
    with _started(argv, env, "peer") as (base, _):
        yield base


@contextmanager
def _started(argv: list[str], env: dict[str, str], name: str) -> Iterator[tuple[str, subprocess.Popen]]:
    OUT.mkdir(parents=True, exist_ok=True)
    port = argv[argv.index("--port") + 1]
    base = f"http://127.0.0.1:{port}"
    with open(OUT / f"big_events_{name}.log", "w") as log:
        proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_served(proc, base, 300, str(OUT / f"big_events_{name}.log"))
        yield base, proc
    finally:
        _stop(proc)


def _rss(proc: subprocess.Popen) -> int:
    """Resident memory of the serving process (with one worker uvicorn serves in the process it starts)."""
    return psutil.Process(proc.pid).memory_info().rss


def _token(base: str, username: str) -> str:
    user = next(u for u in demo_users() if u.username == username)
    form = urllib.parse.urlencode({"username": user.username, "password": user.password}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{base}/v1/auth/token", data=form), timeout=30) as response:
        return json.loads(response.read())["access_token"]


def _fetch(url: str, token: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read()


def _env(url: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "GEOSERVICE_DATABASE_URL": url, "GEOSERVICE_SECRET_KEY": SECRET,
            "GEOSERVICE_EVENT_SWEEP_S": "0", "GEOSERVICE_TILE_CACHE_MB": "0",
            "GEOSERVICE_PUBLIC_RATE": "100000000/minute"}  # fmt: skip


def _has_database(cluster: EmbeddedCluster, dbname: str) -> bool:
    with psycopg.connect(cluster.conninfo("postgres")) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is not None


def _tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def _time(epoch: float) -> str:
    return urllib.parse.quote(time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(epoch)))


def _ratio(peer: Load, ours: Load) -> str:
    if not (peer.requests and ours.requests):
        return "—"
    return f"{peer.p99_ms / max(ours.p99_ms, 1e-3):.2f}×"


def _latency(load: Load) -> str:
    if load.requests == 0:
        return f"no answer within {load.seconds:.0f} s"
    return f"{load.p50_ms:.1f} / {load.p99_ms:.1f} ms ({load.requests:,} answers)"


def _load() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1 / 5 / 15 min)"


def queries(cluster: EmbeddedCluster, console: Console) -> Table:
    """In process, without HTTP: the list query and the counts per role, best of three (where the time goes)."""
    cluster.up(DBNAME)
    engine = make_engine(cluster.url(DBNAME))
    table = Table("big city: the list query and the counts in process, best of three (ms)")
    tz, settings, now = ZoneInfo("Asia/Shanghai"), EventSettings(), datetime.now(UTC)
    people = {"admin": Principal("admin", Role.admin),
              "dispatcher": Principal("dispatcher", Role.dispatcher, "320682000000"),
              "grid worker": Principal("gridworker", Role.grid_worker, "320682001001"),
              "handler": Principal("handler", Role.handler, None, "police")}  # fmt: skip
    try:
        with Session(engine) as session:
            town, community, grid = session.execute(
                text("SELECT town_code, community_code, grid_code FROM events WHERE grid_code LIKE '320682002%' "
                         "ORDER BY id LIMIT 1")).one()  # fmt: skip
            # three characters from the middle of a description, as the HTTP rows draw their words
            word = session.execute(text("SELECT substr(description, 3, 3) FROM events WHERE id % 997 = 0 "
                                        "ORDER BY id LIMIT 1")).scalar_one()  # fmt: skip
            cases = {
                "no filter": EventFilters(), "status=handling": EventFilters(status=("handling",)),
                "status=archived": EventFilters(status=("archived",)), "warning=red": EventFilters(warning=("red",)),
                "warning=yellow": EventFilters(warning=("yellow",)), "town": EventFilters(region=town),
                "community": EventFilters(region=community), "grid": EventFilters(region=grid),
                "category class": EventFilters(category="city_management"),
                "category leaf": EventFilters(category="environment.noise"),
                "a week": EventFilters(reported_from=datetime(2026, 3, 1, tzinfo=tz),
                                       reported_to=datetime(2026, 3, 8, tzinfo=tz)),
                "q= matching nothing": EventFilters(text="火星基地"), "q=垃圾": EventFilters(text="垃圾"),
                "q=噪声": EventFilters(text="噪声"), f"q={word}": EventFilters(text=word),
            }  # fmt: skip
            for role, who in people.items():
                console.log(f"queries: {role}")
                cells = []
                for name, filters in [*cases.items(), ("owner=mine", EventFilters(owner_of=who))]:
                    scope = scope_of(who)
                    best = min(_timed(lambda f=filters, sc=scope: list_events(
                        session, sc, f, now=now, settings=settings)) for _ in range(3))  # fmt: skip
                    cells.append(f"{name} {best:.1f}")
                for by in ("town", "month"):
                    best = min(_timed(lambda b=by, p=who: counts_module.counts_in_scope(
                        session, b, p, None, None, Condition(), None)) for _ in range(3))  # fmt: skip
                    cells.append(f"counts by {by} {best:.0f}")
                table.add(role, "list_events (first page of 50), event_counts", "; ".join(cells))
    finally:
        engine.dispose()
    table.notes.append("the same calls the API makes, without HTTP, JSON or the caller's token")
    return table


def _timed(call: Any) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def main(argv: list[str] | None = None) -> int:
    global CONNECTIONS, THREADS  # one run, one setting (--connections)
    parser = argparse.ArgumentParser(prog="python -m bench.big_events")
    parser.add_argument("--build", action="store_true", help="build the million-event city (about 20 min)")
    parser.add_argument("--events", type=int, default=N_EVENTS)
    parser.add_argument("--seconds", type=int, default=SECONDS, help="measured seconds per scenario and app")
    parser.add_argument("--down", action="store_true", help="stop the suite's cluster afterwards")
    parser.add_argument("--connections", type=int, default=CONNECTIONS, help="wrk connections for the latencies")
    parser.add_argument("--only", choices=("list", "counts", "tile"), help="one kind of scenario")
    parser.add_argument("--no-workers", action="store_true", help="skip the memory and --workers 2 figures")
    parser.add_argument("--queries", action="store_true", help="only time the list and count queries in process")
    args = parser.parse_args(argv)
    cluster = big_cluster()
    if args.build:
        print(build(cluster, args.events))
        return 0
    console = Console(width=160)
    if args.queries:
        table = queries(cluster, console)
        print_table(console, table)
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "big_events_queries.md").write_text(_markdown([table]))
        return 0
    try:
        CONNECTIONS = args.connections
        THREADS = min(THREADS, CONNECTIONS)
        tables, ok = measure(cluster, args.seconds, console, not args.no_workers, args.only)
    finally:
        if args.down:
            cluster.down()
    for table in tables:
        print_table(console, table)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "big_events.md").write_text(_markdown(tables))
    console.log(f"checks: {verdict(ok)}; Markdown in {OUT / 'big_events.md'}")
    return 0 if ok else 1


def _markdown(tables: list[Table]) -> str:
    out = []
    for table in tables:
        out += [f"#### {table.title}", "", "| benchmark | method | result | ratio | target | verdict |",
                "|---|---|---|---|---|---|"]  # fmt: skip
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in table.rows]
        out += [""] + [f"{k}. {n}" for k, n in enumerate(table.notes, 1)] + [""]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
