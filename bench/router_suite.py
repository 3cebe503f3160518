"""The router suite: for each city, bulk → single point → HTTP, then one table per city and a summary.

Single point runs first, on a quiet database; bulk next (its PostGIS join writes a million-row
table, dropped afterwards); HTTP last. Targets (from the issue):

* bulk: router ≥ 3× geopandas ``sjoin`` and ≥ 5× the PostGIS join, on both synthetic variants
  (judged on the demo city too);
* single point in process: p99 ≤ 30 µs — judged on ``RasterIndex.locate`` (the grid lookup) and
  on the full ``Router.locate`` answer, which are reported separately;
* HTTP: the service ≥ 3× the PostGIS-per-request endpoint in requests per second, and within 2× of
  the bare-ASGI floor (``bench/bare_asgi.py`` under the same uvicorn and wrk);
* correctness (not a speed target): 0 mismatches with PostGIS on every point, 0 non-2xx answers,
  identical answers from both HTTP apps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.console import Console

from bench.cities import City, county_boundary
from bench.http import CONNECTIONS, THREADS, WARMUP_S, HttpResult, WrkResult, bench_http
from bench.points import INSIDE_SHARE, random_points
from bench.postgis_locate_app import POOL_SIZE
from bench.report import Table, verdict
from bench.router import BulkResult, Latency, SingleResult, bench_bulk, bench_single, load_city_router

BULK_VS_SJOIN = 3.0
BULK_VS_POSTGIS = 5.0
SINGLE_P99_US = 30.0
HTTP_VS_POSTGIS = 3.0
HTTP_OF_FLOOR = 0.5  # the service at least half the bare-ASGI floor's requests/s (issue 22)
HTTP_POINTS = 2000


@dataclass(frozen=True)
class Settings:
    """What to run (``--quick`` shrinks points and HTTP seconds)."""

    points: int
    http_seconds: int
    repeats: int = 3
    n_index: int = 100_000
    n_router: int = 20_000
    n_postgis: int = 20_000


@dataclass(frozen=True)
class CityRun:
    """All results of one city."""

    city: City
    router_build_s: float
    outside_cells_s: float
    snap_tolerance_m: float
    bulk: BulkResult
    single: SingleResult
    http: HttpResult

    @property
    def correct(self) -> bool:
        h = self.http
        return self.bulk.mismatches == 0 and not h.differences and h.router.non_2xx == 0 and h.postgis.non_2xx == 0


def run(cities: list[City], settings: Settings, console: Console) -> tuple[list[Table], bool]:
    """Run everything; returns the tables and whether every correctness check held."""
    console.log(f"drawing {settings.points:,} points ({INSIDE_SHARE:.0%} inside the county, seeded)")
    points = random_points(county_boundary(), settings.points)
    runs = []
    for city in cities:
        console.log(f"[bold]{city.key}[/]: building the router ({city.grids:,} grids, {city.vertices:,} vertices)")
        router, build_s, cells_s = load_city_router(city)
        calls = f"{settings.n_index:,} / {settings.n_router:,} / {settings.n_postgis:,}"
        console.log(f"{city.key}: single point ({calls} calls)")
        single = bench_single(city, router, points, settings.n_index, settings.n_router, settings.n_postgis)
        console.log(f"{city.key}: bulk, {len(points):,} points, best of {settings.repeats}")
        bulk = bench_bulk(city, router, points, settings.repeats)
        if bulk.mismatches:
            console.print(f"[bold red]{city.key}: {bulk.mismatches} points where the router and PostGIS disagree:[/]")
            for lon, lat, ours, theirs in bulk.examples:
                console.print(f"  lon {lon!r} lat {lat!r}: router {ours or '(none)'} · PostGIS {theirs or '(none)'}")
        covered = np.flatnonzero(router.grid_index.locate_many(points.lon, points.lat) >= 0)[:HTTP_POINTS]
        http_points = list(zip(points.lon[covered].tolist(), points.lat[covered].tolist(), strict=True))
        console.log(f"{city.key}: HTTP, wrk -t{THREADS} -c{CONNECTIONS} -d{settings.http_seconds}s, each app")
        http = bench_http(city, http_points, settings.http_seconds)
        runs.append(CityRun(city, build_s, cells_s, router.snap_tolerance_m, bulk, single, http))
    return [*(city_table(r, settings) for r in runs), summary_table(runs)], all(r.correct for r in runs)


# --- tables --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    """One target: the figure, the bar and whether it was met."""

    name: str
    value: str
    target: str
    ok: bool


def checks(run: CityRun) -> list[Check]:
    """Every target of one city (the summary table lists them all)."""
    b, s, h = run.bulk, run.single, run.http
    sjoin_x, pg_x, http_x = b.sjoin_s / b.router_s, b.postgis_s / b.router_s, h.router.rps / h.postgis.rps
    p99 = f"≤ {SINGLE_P99_US:g} µs"
    broken = f"{b.mismatches} / {h.router.non_2xx + h.postgis.non_2xx} / {len(h.differences)}"
    return [
        Check("bulk vs sjoin", f"{sjoin_x:.1f}×", f"≥ {BULK_VS_SJOIN:g}×", sjoin_x >= BULK_VS_SJOIN),
        Check("bulk vs PostGIS join", f"{pg_x:.1f}×", f"≥ {BULK_VS_POSTGIS:g}×", pg_x >= BULK_VS_POSTGIS),
        Check(
            "single p99, RasterIndex.locate",
            f"{s.index.p99_us:.1f} µs",
            p99,
            s.index.p99_us <= SINGLE_P99_US,
        ),
        Check("single p99, Router.locate", f"{s.router.p99_us:.1f} µs", p99, s.router.p99_us <= SINGLE_P99_US),
        Check("HTTP vs PostGIS endpoint", f"{http_x:.2f}×", f"≥ {HTTP_VS_POSTGIS:g}×", http_x >= HTTP_VS_POSTGIS),
        *(
            [Check("HTTP vs bare-ASGI floor", f"{floor_x:.2f}×", f"≥ {HTTP_OF_FLOOR:g}×", floor_x >= HTTP_OF_FLOOR)]
            if (floor_x := h.router.rps / h.floor.rps if h.floor else None) is not None
            else []
        ),
        Check("mismatches / non-2xx / differences", broken, "0", run.correct),
    ]


def city_table(run: CityRun, settings: Settings) -> Table:
    c, b, s, h = run.city, run.bulk, run.single, run.http
    by_name = {check.name: check for check in checks(run)}

    def judged(name: str) -> tuple[str, str, str]:
        check = by_name[name]
        return check.value, check.target, verdict(check.ok)

    table = Table(f"{c.key}: {c.title} — {c.grids:,} grids, {c.vertices:,} vertices")
    bulk = f"bulk, {b.points:,} points (best of {b.repeats})"
    table.add(bulk, "Router.locate_many (grid + snap + station)", _rate(b.rate(b.router_s)))
    table.add(bulk, "  RasterIndex.locate_many (grid only)", _rate(b.rate(b.index_s)))
    table.add(bulk, "geopandas sjoin within (1)", _rate(b.rate(b.sjoin_s)), *judged("bulk vs sjoin"))
    table.add(bulk, "PostGIS ST_Covers join (2)", _rate(b.rate(b.postgis_s)), *judged("bulk vs PostGIS join"))
    mismatches = f"{b.mismatches:,} mismatches / {b.points:,}"
    table.add(bulk, "router = PostGIS covers + smallest code (3)", mismatches, "", "0", verdict(b.mismatches == 0))
    single = "single point, in process"
    _, target, ok = judged("single p99, RasterIndex.locate")
    table.add(single, f"RasterIndex.locate ({s.index.n:,} points)", _latency(s.index), "", target, ok)
    _, target, ok = judged("single p99, Router.locate")
    table.add(single, f"Router.locate, full answer ({s.router.n:,})", _latency(s.router), "", target, ok)
    table.add(single, f"  of which a grid covers ({s.router_covered.n:,})", _latency(s.router_covered))
    table.add(single, f"  of which outside every grid ({s.router_outside.n:,}) (4)", _latency(s.router_outside))
    slower = f"{s.postgis.median_us / s.index.median_us:.0f}× / {s.postgis.median_us / s.router.median_us:.1f}×"
    table.add(single, f"PostGIS prepared statement ({s.postgis.n:,}) (5)", _latency(s.postgis), slower)
    web = f"HTTP GET /v1/locate, wrk -t{THREADS} -c{CONNECTIONS} {h.seconds} s"
    table.add(web, "service (router), 1 uvicorn worker", _http(h.router))
    table.add(web, "one PostGIS query per request (6)", _http(h.postgis), *judged("HTTP vs PostGIS endpoint"))
    if h.floor is not None:
        floor = "bare ASGI app, the same ~700 B of JSON every time (floor)"
        table.add(web, floor, _http(h.floor), *judged("HTTP vs bare-ASGI floor"))
    answers = f"{h.router.non_2xx + h.postgis.non_2xx} non-2xx · {len(h.differences)} differ of {h.compared}"
    ok = not h.differences and h.router.non_2xx == 0 and h.postgis.non_2xx == 0
    table.add(web, "answers: non-2xx; router app vs PostGIS app", answers, "", "0", verdict(ok))
    table.notes = _notes(run)
    return table


def _notes(run: CityRun) -> list[str]:
    b, h = run.bulk, run.http
    notes = [
        "Points built into a GeoDataFrame inside the timing; gpd.sjoin(points, grids, predicate='within'); "
        "smallest code kept per point (integer groupby on the code-sorted frame's index).",
        "Server-side time of CREATE UNLOGGED TABLE … AS SELECT DISTINCT ON (p.id) p.id, g.code FROM points p "
        "JOIN grids g ON ST_Covers(g.geom, p.geom) WHERE g.version_id = … ORDER BY p.id, g.code; default "
        f"planner settings; answers not transferred. Loading the points (COPY, GIST index, ANALYZE) took "
        f"{b.postgis_setup_s:.1f} s, not counted. Plan: {b.plan}.",
        f"Every point compared: the router's grid (where it did not snap) vs PostGIS; {b.covered:,} points "
        f"covered by a grid; {b.snapped:,} more placed by the router's {run.snap_tolerance_m:g} m snap "
        f"tolerance (PostGIS has none). sjoin 'within' differs from covers on "
        f"{b.sjoin_differences:,} points.",
        "Points no grid covers (5 % are drawn in the county's bounding box) take the snapping path: nearest "
        "grid by an STRtree over the metric polygons.",
        "Ratio: PostGIS median over the RasterIndex.locate median / over the Router.locate median. "
        "Loopback TCP, SELECT code … ST_Covers … ORDER BY code LIMIT 1, psycopg prepare=True.",
        "bench/postgis_locate_app.py: same route and answer, one query per request (LATERAL joins; KNN + "
        f"metric re-rank for posts), async handler, {POOL_SIZE} psycopg connections, prepared statement. "
        f"Both apps: uvicorn, 1 worker; {WARMUP_S} s unmeasured warm-up first; "
        f"{HTTP_POINTS:,} points a grid covers, cycled; socket errors {h.router.socket_errors} / "
        f"{h.postgis.socket_errors}.",
        f"Router built in {run.router_build_s:.1f} s (load_router), its cells for points outside every grid "
        f"in {run.outside_cells_s:.1f} s more (a server builds them when the first such point comes); "
        "city built and loaded (validated import) "
        f"in {run.city.build_s:.0f} s.",
    ]
    if b.mismatches:
        failing = "; ".join(
            f"lon {lon!r} lat {lat!r}: router {ours or '(none)'}, PostGIS {theirs or '(none)'}"
            for lon, lat, ours, theirs in b.examples
        )
        notes.append(f"MISMATCHES (router vs PostGIS), first {len(b.examples)}: {failing}")
    if h.differences:
        notes.append("HTTP answer differences: " + "; ".join(h.differences[:10]))
    return notes


def summary_table(runs: list[CityRun]) -> Table:
    table = Table("summary: targets")
    for r in runs:
        for check in checks(r):
            table.add(r.city.key, check.name, check.value, "", check.target, verdict(check.ok))
    return table


def _rate(per_s: float) -> str:
    return f"{per_s / 1e6:.2f} M points/s" if per_s >= 1e6 else f"{per_s / 1e3:,.0f} k points/s"


def _latency(lat: Latency) -> str:
    if lat.n == 0:
        return "—"
    return f"median {lat.median_us:,.1f} µs · p99 {lat.p99_us:,.1f} µs"


def _http(w: WrkResult) -> str:
    return f"{w.rps:,.0f} req/s · p50 {w.p50_ms:,.1f} ms · p99 {w.p99_ms:,.1f} ms · {w.non_2xx} non-2xx"
