"""The baseline for the HTTP benchmark: ``GET /v1/locate`` answered by ONE PostGIS query per request.

This is the endpoint a competent user would write without the in-process router: same route, same
answer shape (``geoservice.api.locate.LocateAnswer``), returned as built (``JSONResponse``, as the
service does), same uvicorn, and the database does everything in one round trip:

* the version in force (by ``now()``), the grid by ``ST_Covers`` with the smallest-code tie-break
  (GIST index on ``grids.geom``), its community, town and city by code;
* the station whose jurisdiction covers the point (GIST on ``jurisdiction``), else the nearest;
* per post level the nearest post: a KNN index scan (``<->`` on the lon/lat GIST index) gives a few
  candidates, re-ranked by the true distance in the city's metric CRS (``ST_Transform``), which is
  also the distance reported (a degree is not the same length north and east, hence the re-rank).

The handler is ``async`` over psycopg's ``AsyncConnection`` (a fixed set of connections handed out
in turn) with a server-side prepared statement. That is the fastest of the ways tried on the
bench machine (two cores): a sync handler over a SQLAlchemy pool in FastAPI's thread pool served
570–690 requests/s, this one 900–1,300; of pools of 2 to 20 connections, 4 (two per core) did best.
The router is compared against the strongest baseline found, not a strawman.
Run with ``GEOSERVICE_DATABASE_URL=… uvicorn bench.postgis_locate_app:create_app --factory``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

import psycopg
from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse
from psycopg.rows import dict_row
from sqlalchemy.engine import make_url

from geoservice.api.locate import LocateAnswer
from geoservice.api.problems import ProblemError, register_error_handlers
from geoservice.settings import DatabaseSettings, OperationsSettings, RoutingSettings

POOL_SIZE = 4  # two per core: more connections only contend for the same two cores
KNN_CANDIDATES = 8
LEVELS = {"village_room": "vr", "central_room": "cr", "station": "ps"}


def _nearest(level: str, epsg: int) -> str:
    return f"""
        SELECT c.code, c.name, ST_Distance(ST_Transform(c.geom, {epsg}), q.m) AS distance_m
        FROM (SELECT code, name, geom FROM police_posts WHERE level = '{level}'
              ORDER BY geom <-> q.g LIMIT {KNN_CANDIDATES}) c
        ORDER BY distance_m, c.code LIMIT 1"""


def locate_sql(epsg: int) -> str:
    """The one query (``epsg`` is the dataset's metric CRS, read once at start)."""
    posts_columns = ", ".join(
        f"{a}.code AS {a}_code, {a}.name AS {a}_name, {a}.distance_m AS {a}_m" for a in LEVELS.values()
    )
    posts_joins = "\n".join(f"LEFT JOIN LATERAL ({_nearest(level, epsg)}) {a} ON true" for level, a in LEVELS.items())
    return f"""
    WITH q AS (
        SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS g,
               ST_Transform(ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), {epsg}) AS m
    ), v AS (
        SELECT id, name FROM boundary_versions
        WHERE status <> 'draft' AND tstzrange(effective_from, effective_to) @> now()
    )
    SELECT v.id AS version_id, v.name AS version_name,
           gr.code AS grid_code, gr.name AS grid_name, gr.workers, gr.officer,
           cm.code AS community_code, cm.name AS community_name,
           tw.code AS town_code, tw.name AS town_name, ct.code AS city_code, ct.name AS city_name,
           st.code AS st_code, st.name AS st_name, st.by AS st_by, st.distance_m AS st_m,
           {posts_columns}
    FROM q CROSS JOIN v
    CROSS JOIN LATERAL (
        SELECT code, name, community_code, workers, officer FROM grids
        WHERE version_id = v.id AND ST_Covers(geom, q.g) ORDER BY code LIMIT 1
    ) gr
    LEFT JOIN regions cm ON cm.version_id = v.id AND cm.code = gr.community_code
    LEFT JOIN regions tw ON tw.version_id = v.id AND tw.code = cm.parent_code
    LEFT JOIN regions ct ON ct.version_id = v.id AND ct.code = tw.parent_code
    LEFT JOIN LATERAL (
        SELECT s.code, s.name, s.by, s.distance_m FROM (
            (SELECT code, name, 'jurisdiction' AS by,
                    ST_Distance(ST_Transform(geom, {epsg}), q.m) AS distance_m, 0 AS pref
             FROM police_posts WHERE level = 'station' AND ST_Covers(jurisdiction, q.g) ORDER BY code LIMIT 1)
            UNION ALL
            (SELECT n.code, n.name, 'nearest', n.distance_m, 1 FROM ({_nearest("station", epsg)}) n)
        ) s ORDER BY s.pref LIMIT 1
    ) st ON true
    {posts_joins}
    """


def answer_of(m: Mapping[str, Any], lon: float, lat: float, rings: dict[str, float], phone: str) -> dict[str, Any]:
    """The same JSON as the router's endpoint (distances rounded to 0.1 m)."""

    def named(prefix: str) -> dict[str, str] | None:
        return None if m[f"{prefix}_code"] is None else {"code": m[f"{prefix}_code"], "name": m[f"{prefix}_name"]}

    posts: dict[str, dict[str, Any] | None] = {}
    for level, a in LEVELS.items():
        d = m[f"{a}_m"]
        posts[level] = None if m[f"{a}_code"] is None else {
            "code": m[f"{a}_code"], "name": m[f"{a}_name"],
            "distance_m": round(d, 1), "within_ring": d <= rings[level],
        }  # fmt: skip
    return {
        "point": {"lon": lon, "lat": lat, "crs": "wgs84"},
        "version": {"id": m["version_id"], "name": m["version_name"]},
        # wrk sends no token: the public's answer, as the service gives it (no team names, the service phone)
        "grid": {"code": m["grid_code"], "name": m["grid_name"]},
        "community": named("community"),
        "town": named("town"),
        "city": named("city"),
        "station": None if m["st_code"] is None else {
            "code": m["st_code"], "name": m["st_name"], "by": m["st_by"], "distance_m": round(m["st_m"], 1)
        },
        "posts": posts,
        "snapped_m": None,
        "service_phone": phone,
    }  # fmt: skip


class Connections:
    """A fixed set of open connections handed out in turn; a broken one is replaced when returned."""

    def __init__(self, conninfo: str, size: int) -> None:
        self.conninfo, self.size = conninfo, size
        self._idle: asyncio.Queue[psycopg.AsyncConnection] = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(self.size):
            self._idle.put_nowait(await self._connect())

    async def close(self) -> None:
        while not self._idle.empty():
            await self._idle.get_nowait().close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        conn = await self._idle.get()
        try:
            yield conn
        finally:
            if conn.broken or conn.closed:
                conn = await self._connect()
            self._idle.put_nowait(conn)

    async def _connect(self) -> psycopg.AsyncConnection:
        return await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True, row_factory=dict_row)


def conninfo_of(url: str) -> str:
    """The libpq string of a SQLAlchemy URL (the service's ``GEOSERVICE_DATABASE_URL``)."""
    u = make_url(url)
    return psycopg.conninfo.make_conninfo(
        host=u.host or "", port=u.port or 5432, user=u.username or "", password=u.password or "",
        dbname=u.database or "",
    )  # fmt: skip


def baseline_app(title: str, connections: Connections) -> FastAPI:
    """A bare FastAPI app whose lifespan opens and closes the baseline's connections."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await connections.open()
        yield
        await connections.close()

    app = FastAPI(title=title, lifespan=lifespan)
    register_error_handlers(app)
    return app


def create_app(conninfo: str | None = None) -> FastAPI:
    """The baseline app over ``GEOSERVICE_DATABASE_URL`` (or the libpq string given)."""
    conninfo = conninfo or conninfo_of(DatabaseSettings().database_url or os.environ["GEOSERVICE_DATABASE_URL"])
    with psycopg.connect(conninfo) as conn:
        epsg = int(conn.execute("SELECT value FROM dataset_settings WHERE key = 'metric_epsg'").fetchone()[0])
    query = locate_sql(epsg)
    rings = RoutingSettings().rings_m
    phone = OperationsSettings().public_service_phone
    connections = Connections(conninfo, POOL_SIZE)
    app = baseline_app("PostGIS-per-request locate (benchmark baseline)", connections)

    @app.get("/v1/locate", response_model=LocateAnswer)
    async def locate(
        lon: Annotated[float, Query(ge=-180, le=180)], lat: Annotated[float, Query(ge=-90, le=90)]
    ) -> JSONResponse:
        async with connections.connection() as conn:
            cursor = await conn.execute(query, {"lon": lon, "lat": lat}, prepare=True)
            row = await cursor.fetchone()
        if row is None:
            raise ProblemError(404, "Outside every grid", f"no grid covers ({lon}, {lat})")
        return JSONResponse(answer_of(row, lon, lat, rings, phone))

    return app
