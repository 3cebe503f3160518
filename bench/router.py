"""The router against what a user would do without it: bulk, single point in process, and HTTP.

Every method gets the same points in the same run, one after the other on an otherwise idle
machine, so the ratios are fair even where the absolute figures move from run to run.

* bulk: ``Router.locate_many`` (grid with snapping, and station: the batch path as the service
  runs it; the bare ``RasterIndex.locate_many`` is shown beside it) vs geopandas ``sjoin``
  (``predicate="within"``, building the points included, smallest code kept per point) vs a
  PostGIS ``ST_Covers`` join (points in a table with a GIST index, ANALYZEd; only the query is
  timed, server side, results written to a table and not transferred). Best of ``repeats`` runs.
* correctness: the router's answer (where it did not snap) must equal PostGIS ``ST_Covers`` +
  smallest code on every point; the mismatch count is printed and must be 0.
* single point: per-call latency of ``RasterIndex.locate`` and of the full ``Router.locate``
  vs one PostGIS query per point over a prepared statement on a local connection.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import psycopg
import shapely
from numpy.typing import NDArray
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.cities import City
from bench.points import Points
from geoservice.infra.database import make_engine
from geoservice.routing.loader import load_router
from geoservice.routing.router import BatchLocation, Router
from geoservice.settings import DatabaseSettings, RoutingSettings

SINGLE_SQL = (
    "SELECT code FROM grids WHERE version_id = %s "
    "AND ST_Covers(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) ORDER BY code LIMIT 1"
)
JOIN_SQL = (
    "SELECT DISTINCT ON (p.id) p.id, g.code FROM bench_points p "
    "JOIN grids g ON ST_Covers(g.geom, p.geom) WHERE g.version_id = {version} ORDER BY p.id, g.code"
)
COPY_BLOCK = 100_000
EXAMPLES = 20


@dataclass(frozen=True)
class Latency:
    """Per-call latency in microseconds."""

    n: int
    median_us: float
    p99_us: float

    @classmethod
    def of(cls, ns: NDArray[np.int64]) -> Latency:
        if len(ns) == 0:
            return cls(0, float("nan"), float("nan"))
        us = ns / 1000.0
        return cls(len(us), float(np.median(us)), float(np.percentile(us, 99)))


@dataclass
class BulkResult:
    """Seconds are the best of ``repeats`` runs over ``points`` points."""

    points: int
    repeats: int
    router_s: float
    index_s: float
    sjoin_s: float
    postgis_s: float
    postgis_setup_s: float  # COPY + GIST + ANALYZE, not in the ratio
    plan: str
    covered: int  # points PostGIS says a grid covers
    snapped: int  # points the router placed in a grid within the snap tolerance
    mismatches: int
    examples: list[tuple[float, float, str, str]] = field(default_factory=list)
    sjoin_differences: int = 0  # sjoin "within" vs ST_Covers (points on an edge; informative)

    def rate(self, seconds: float) -> float:
        return self.points / seconds


@dataclass(frozen=True)
class SingleResult:
    """Single-point latencies; the router's also split by whether a grid covers the point."""

    index: Latency
    router: Latency
    postgis: Latency
    router_covered: Latency
    router_outside: Latency  # the snapping path: nearest grid in the metric CRS


def load_city_router(city: City) -> tuple[Router, float, float]:
    """The router as the service serves it, and how long it took: ``load_router``, then its outside cells.

    A served router builds its cells for points outside every grid in a thread when the first such
    point comes (``NearestGrid.one``); here they are built before timing single points.
    """
    engine = make_engine(city.url, DatabaseSettings(pool_size=1))
    try:
        started = time.perf_counter()
        with Session(engine) as session:
            router = load_router(session, city.version_id, RoutingSettings())
        built = time.perf_counter()
        router.index_outside_points()
        return router, built - started, time.perf_counter() - built
    finally:
        engine.dispose()


def _best(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


# --- bulk ----------------------------------------------------------------------------------------
def bench_bulk(city: City, router: Router, points: Points, repeats: int = 3) -> BulkResult:
    """All three bulk methods on the same points, then the answers compared point by point."""
    lon, lat = points.lon, points.lat
    # Every method ends with codes, as a user needs them: ranks → codes is inside each timing.
    router_s, (batch, codes) = _best(lambda: _located(router, lon, lat), repeats)
    index_s, _ = _best(lambda: router.grid_codes[router.grid_index.locate_many(lon, lat)], repeats)
    grids = _grids_frame(city)
    sjoin_s, sjoin_codes = _best(lambda: sjoin_codes_of(lon, lat, grids), repeats)
    postgis_s, setup_s, plan, pg_codes = postgis_join(city, lon, lat, repeats)

    unsnapped = np.isnan(batch.snapped_m)
    router_codes = np.where(unsnapped, codes["grid_code"], "")
    wrong = np.flatnonzero(router_codes != pg_codes)
    examples = [(float(lon[k]), float(lat[k]), str(router_codes[k]), str(pg_codes[k])) for k in wrong[:EXAMPLES]]
    return BulkResult(
        points=len(points), repeats=repeats, router_s=router_s, index_s=index_s, sjoin_s=sjoin_s,
        postgis_s=postgis_s, postgis_setup_s=setup_s, plan=plan, covered=int((pg_codes != "").sum()),
        snapped=int((~unsnapped & (batch.grid >= 0)).sum()), mismatches=int(wrong.size), examples=examples,
        sjoin_differences=int((sjoin_codes != pg_codes).sum()),
    )  # fmt: skip


def _located(router: Router, lon: NDArray, lat: NDArray) -> tuple[BatchLocation, dict[str, NDArray]]:
    batch = router.locate_many(lon, lat)
    return batch, router.codes_of(batch)


def _grids_frame(city: City) -> gpd.GeoDataFrame:
    """The grids as a user would read them for geopandas (untimed)."""
    engine = make_engine(city.url, DatabaseSettings(pool_size=1))
    try:
        with engine.connect() as conn:
            return gpd.read_postgis(
                text("SELECT code, geom FROM grids WHERE version_id = :v ORDER BY code"),
                conn, geom_col="geom", params={"v": city.version_id},
            )  # fmt: skip
    finally:
        engine.dispose()


def sjoin_codes_of(lon: NDArray, lat: NDArray, grids: gpd.GeoDataFrame) -> NDArray[np.object_]:
    """What a geopandas user writes: points frame, sjoin within, smallest code per point ('' for none).

    ``grids`` is sorted by code with a 0..n-1 index, so the smallest ``index_right`` is the smallest
    code: an integer groupby (a groupby ``min`` over the code strings would take ten times the join).
    """
    frame = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=grids.crs)
    joined = gpd.sjoin(frame, grids, how="inner", predicate="within")
    first = joined["index_right"].groupby(level=0).min()
    codes = np.full(len(frame), "", dtype=object)
    codes[first.index.to_numpy()] = grids["code"].to_numpy()[first.to_numpy()]
    return codes


def postgis_join(city: City, lon: NDArray, lat: NDArray, repeats: int) -> tuple[float, float, str, NDArray[np.object_]]:
    """Best query time, setup time, the plan chosen, and the answer per point ('' for none)."""
    query = sql.SQL(JOIN_SQL).format(version=sql.Literal(city.version_id))
    with psycopg.connect(city.conninfo, autocommit=True) as conn:
        started = time.perf_counter()
        _load_points(conn, lon, lat)
        setup_s = time.perf_counter() - started
        plan = plan_summary(conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + query).fetchone()[0][0]["Plan"])
        best = float("inf")
        for _ in range(repeats):
            conn.execute("DROP TABLE IF EXISTS bench_answer")
            started = time.perf_counter()
            conn.execute(sql.SQL("CREATE UNLOGGED TABLE bench_answer AS ") + query)
            best = min(best, time.perf_counter() - started)
        rows = conn.execute("SELECT id, code FROM bench_answer").fetchall()
        conn.execute("DROP TABLE IF EXISTS bench_answer, bench_points")
        conn.execute("CHECKPOINT")  # flush the million rows' WAL now, not under the HTTP benchmark
    codes = np.full(len(lon), "", dtype=object)
    if rows:
        ids, found = zip(*rows, strict=True)
        codes[np.asarray(ids)] = found
    return best, setup_s, plan, codes


def _load_points(conn: psycopg.Connection, lon: NDArray, lat: NDArray) -> None:
    conn.execute("DROP TABLE IF EXISTS bench_points, bench_answer")
    conn.execute("CREATE TABLE bench_points (id integer PRIMARY KEY, geom geometry(Point, 4326) NOT NULL)")
    ewkb = shapely.to_wkb(shapely.set_srid(shapely.points(lon, lat), 4326), hex=True, include_srid=True)
    with conn.cursor().copy("COPY bench_points (id, geom) FROM STDIN") as copy:
        for start in range(0, len(lon), COPY_BLOCK):
            block = ewkb[start : start + COPY_BLOCK]
            copy.write("".join(f"{start + k}\t{h}\n" for k, h in enumerate(block.tolist())))
    conn.execute("CREATE INDEX bench_points_geom ON bench_points USING gist (geom)")
    conn.execute("ANALYZE bench_points")


def plan_summary(node: dict) -> str:
    """A plan tree on one line: ``Unique ← Sort ← Nested Loop (Seq Scan on grids, Index Scan …)``."""
    label = node["Node Type"]
    if "Relation Name" in node:
        label += f" on {node['Relation Name']}"
    if "Index Name" in node:
        label += f" using {node['Index Name']}"
    if node.get("Workers Planned"):
        label += f" [{node['Workers Planned']} workers]"
    children = [plan_summary(child) for child in node.get("Plans", [])]
    if len(children) == 1:
        return f"{label} ← {children[0]}"
    if children:
        return f"{label} ({'; '.join(children)})"
    return label


# --- single point --------------------------------------------------------------------------------
def _per_call(fn: Callable[[float, float], object], coords: list[tuple[float, float]]) -> NDArray[np.int64]:
    """Nanoseconds of each call, timed on its own with ``perf_counter_ns`` (~0.1 µs timer overhead)."""
    for x, y in coords[:200]:  # warm caches, code paths and the statement
        fn(x, y)
    clock = time.perf_counter_ns
    out = np.empty(len(coords), dtype=np.int64)
    gc.collect()
    for k, (x, y) in enumerate(coords):
        started = clock()
        fn(x, y)
        out[k] = clock() - started
    return out


def bench_single(
    city: City,
    router: Router,
    points: Points,
    n_index: int = 100_000,
    n_router: int = 20_000,
    n_postgis: int = 20_000,
) -> SingleResult:
    """Latency per point: grid index, full router answer, and a prepared PostGIS statement."""
    index = _per_call(router.grid_index.locate, points.head(n_index))
    full = _per_call(router.locate, points.head(n_router))
    covered = router.grid_index.locate_many(points.lon[:n_router], points.lat[:n_router]) >= 0
    with psycopg.connect(city.conninfo, autocommit=True) as conn:
        cursor = conn.cursor()
        version = city.version_id

        def postgis(x: float, y: float) -> object:
            cursor.execute(SINGLE_SQL, (version, x, y), prepare=True)
            return cursor.fetchone()

        pg = _per_call(postgis, points.head(n_postgis))
    return SingleResult(
        Latency.of(index),
        Latency.of(full),
        Latency.of(pg),
        Latency.of(full[covered]),
        Latency.of(full[~covered]),
    )
