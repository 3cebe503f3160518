"""The baseline for the big-list suite: lists, counts and events tiles as ONE SQL statement per request.

What a competent user would write against the same tables without the service: the first page of
events with each filter as the plain ``WHERE`` it reads as (a town is ``town_code = …``, a grid
``grid_code = …``, a colour the same ``CASE`` rule the service uses), ``GROUP BY`` for the counts,
``ST_AsMVT`` for the tiles (from zoom 14 one by one unless the tile holds more than 2,000 events,
then counts per 8-pixel cell, as the service draws them: one statement, the tile's rows read once).
The caller's scope is handed in as a parameter (``_scope``: the region prefix the service derives
from the token), so the baseline does no authentication, no masking, no allowed actions: it does
less than the service, which flatters the baseline, not us. Async psycopg
with four prepared connections, as the locate and report baselines.
Run with ``GEOSERVICE_DATABASE_URL=… uvicorn bench.postgis_list_app:create_app --factory``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Query, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from bench.postgis_locate_app import POOL_SIZE, Connections, baseline_app, conninfo_of
from geoservice.events.deadlines import warning_sql
from geoservice.settings import DatabaseSettings, EventSettings
from geoservice.stats.filters import LOCAL_TZ
from tiles.address import TileAddress
from tiles.catalog import CROWDED_CELL_PIXELS
from tiles.settings import TileSettings

PLACE = "coalesce(e.grid_code, e.community_code, e.town_code, '')"
EXTENT, BUFFER, CLUSTER_PIXELS, MAX_FEATURES = 4096, 64, 32, 20_000
ONE_BY_ONE_MAX = TileSettings.model_fields["events_one_by_one_max"].default  # the service's rule, not a copy of it
WORLD_M = 2 * 20037508.342789244
COUNT_KEYS = {"town": "e.town_code", "month": f"to_char(e.reported_at AT TIME ZONE '{LOCAL_TZ}', 'YYYY-MM')"}


def create_app(conninfo: str | None = None) -> Any:
    """The baseline app over ``GEOSERVICE_DATABASE_URL`` (or the libpq string given)."""
    conninfo = conninfo or conninfo_of(DatabaseSettings().database_url or os.environ["GEOSERVICE_DATABASE_URL"])
    connections = Connections(conninfo, POOL_SIZE)
    app = baseline_app("PostGIS-per-request lists (benchmark baseline)", connections)
    warning = warning_sql(EventSettings()).replace(":now", "%(now)s")

    async def rows(sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        async with connections.connection() as conn:
            cursor = await conn.execute(sql, params, prepare=True)
            return await cursor.fetchall()

    @app.get("/v1/events")
    async def events(
        _scope: str,
        status: str | None = None,
        warning_: Annotated[str | None, Query(alias="warning")] = None,
        region: str | None = None,
        category: str | None = None,
        reported_from: Annotated[datetime | None, Query(alias="from")] = None,
        reported_to: Annotated[datetime | None, Query(alias="to")] = None,
        q: str | None = None,
        owner: str | None = None,
        limit: int = 50,
    ) -> JSONResponse:
        where = [f"{PLACE} LIKE %(scope)s"]
        params: dict[str, Any] = {"scope": _scope + "%", "now": datetime.now(UTC), "limit": limit}
        if status:
            where.append("e.status = ANY(%(statuses)s)")
            params["statuses"] = status.split(",")
        if warning_:
            where.append(f"{warning} = ANY(%(warnings)s)")
            params["warnings"] = warning_.split(",")
        if region:
            column = {15: "grid_code", 12: "community_code"}.get(len(region), "town_code")
            if len(region) == 12 and region.endswith("000"):
                column = "town_code"
            where.append(f"e.{column} = %(region)s")
            params["region"] = region
        if category:
            where.append("(e.category_code = %(category)s OR e.category_code LIKE %(children)s)")
            params.update(category=category, children=category + ".%")
        if reported_from:
            where.append("e.reported_at >= %(since)s")
            params["since"] = reported_from
        if reported_to:
            where.append("e.reported_at < %(until)s")
            params["until"] = reported_to
        if q:
            where.append("e.description ILIKE %(text)s")
            params["text"] = f"%{q}%"
        if owner == "mine":
            where.append("e.owner_kind = 'unit' AND e.owner_code LIKE %(scope)s")
        sql = (
            "SELECT e.id, e.status, e.category_code, e.description, ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat, "
            f"e.reported_at, e.grid_code, e.department_code, {warning} AS warning "
            f"FROM events e WHERE {' AND '.join(where)} ORDER BY e.reported_at DESC, e.id DESC LIMIT %(limit)s"
        )
        return JSONResponse(jsonable_encoder({"items": await rows(sql, params)}))

    @app.get("/v1/stats/counts")
    async def counts(_scope: str, by: str) -> JSONResponse:
        sql = (
            f"SELECT {COUNT_KEYS[by]} AS key, count(*) AS events FROM events e "
            f"WHERE {PLACE} LIKE %(scope)s GROUP BY 1 ORDER BY 1"
        )
        return JSONResponse({"by": by, "rows": await rows(sql, {"scope": _scope + "%"})})

    @app.get("/tiles/events/{z}/{x}/{y}.mvt")
    async def tile(_scope: str, z: int, x: int, y: int) -> Response:
        west, south, east, north = TileAddress(z, x, y).lonlat_bounds(margin=BUFFER / EXTENT)  # as the service's
        one_by_one = z >= 14
        params = {"z": z, "x": x, "y": y, "scope": _scope + "%", "now": datetime.now(UTC), "west": west,
                  "south": south, "east": east, "north": north,
                  "cell": WORLD_M / 2**z / 256 * (CROWDED_CELL_PIXELS if one_by_one else CLUSTER_PIXELS)}  # fmt: skip
        search = "ST_MakeEnvelope(%(west)s, %(south)s, %(east)s, %(north)s, 4326)"
        env = "ST_TileEnvelope(%(z)s, %(x)s, %(y)s)"
        hits = (
            f"SELECT ST_Transform(e.geom, 3857) AS g, e.id, e.status, {warning} AS warning, "
            f"e.category_code AS category, e.reported_at FROM events e "
            f"WHERE e.geom && {search} AND {PLACE} LIKE %(scope)s"
        )
        cells = (
            f"SELECT ST_AsMVT(m.*, 'events', {EXTENT}, 'geom') AS mvt FROM ("
            "SELECT ST_AsMVTGeom(ST_Point(avg(ST_X(h.g)), avg(ST_Y(h.g)), 3857), "
            f"{env}, {EXTENT}, {BUFFER}, true) AS geom, "
            "count(*)::int AS count, count(*) FILTER (WHERE h.warning = 'red')::int AS red, "
            "count(*) FILTER (WHERE h.warning = 'yellow')::int AS yellow, "
            "count(*) FILTER (WHERE h.warning = 'blue')::int AS blue "
            "FROM hits h GROUP BY floor(ST_X(h.g) / %(cell)s), floor(ST_Y(h.g) / %(cell)s)) m"
        )
        if one_by_one:  # the service's rule: one by one unless the tile holds more than ONE_BY_ONE_MAX events
            points = (
                f"SELECT ST_AsMVT(m.*, 'events', {EXTENT}, 'geom', 'id') FROM ("
                f"SELECT ST_AsMVTGeom(h.g, {env}, {EXTENT}, {BUFFER}, true) AS geom, h.id, h.status, h.warning, "
                f"h.category FROM hits h ORDER BY h.reported_at DESC, h.id DESC LIMIT {MAX_FEATURES}) m"
            )
            sql = (f"WITH hits AS MATERIALIZED ({hits}) SELECT CASE WHEN (SELECT count(*) FROM hits) > "
                   f"{ONE_BY_ONE_MAX} THEN ({cells}) ELSE ({points}) END AS mvt")  # fmt: skip
        else:
            sql = f"WITH hits AS ({hits}) {cells}"
        found = await rows(sql, params)
        body_bytes = bytes(found[0]["mvt"] or b"")
        if not body_bytes:
            return Response(status_code=204)
        return Response(body_bytes, media_type="application/vnd.mapbox-vector-tile")

    return app
