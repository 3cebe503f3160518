"""The baseline for the report benchmark: ``POST /v1/events`` as ONE PostGIS statement per request.

What a competent user would write without the in-process router: the grid by ``ST_Covers`` in the
version in force (smallest code on shared edges), its community and town by code, the department
from the category's general routing rule, the event and its ``report`` log row inserted in the same
statement (``ON CONFLICT (idempotency_key) DO NOTHING``), committed per request. Async psycopg with
a fixed set of four prepared connections, as the locate baseline (``bench.postgis_locate_app``),
which measured fastest on the bench machine. No validation beyond pydantic's, no deadlines: it does
less than the service, so the comparison flatters the baseline, not us.
Run with ``GEOSERVICE_DATABASE_URL=… uvicorn bench.postgis_report_app:create_app --factory``.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from bench.postgis_locate_app import POOL_SIZE, Connections, baseline_app, conninfo_of
from geoservice.api.problems import ProblemError
from geoservice.settings import DatabaseSettings

REPORT_SQL = """
WITH p AS (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS g),
     v AS (SELECT id FROM boundary_versions
            WHERE status <> 'draft' AND tstzrange(effective_from, effective_to) @> now()),
     gr AS (SELECT g.code, g.community_code, g.version_id FROM grids g, p, v
             WHERE g.version_id = v.id AND ST_Covers(g.geom, p.g) ORDER BY g.code LIMIT 1),
     rule AS (SELECT id, department_code FROM routing_rules
               WHERE enabled AND category_code = %(category)s AND region_code IS NULL AND place_type IS NULL
                 AND zone_layer IS NULL ORDER BY priority DESC, id LIMIT 1),
     ins AS (
       INSERT INTO events (idempotency_key, geom, category_code, description, source, occurred_at, grid_code,
                           community_code, town_code, department_code, rule_id, boundary_version_id)
       SELECT %(key)s, p.g, %(category)s, %(description)s, %(source)s, now(), gr.code, gr.community_code,
              c.parent_code, rule.department_code, rule.id, gr.version_id
         FROM p CROSS JOIN gr
         LEFT JOIN regions c ON c.version_id = gr.version_id AND c.code = gr.community_code
         LEFT JOIN rule ON true
       ON CONFLICT (idempotency_key) DO NOTHING
       RETURNING id, grid_code, department_code)
INSERT INTO event_log (event_id, actor, role, action, to_status)
SELECT id, 'bench', 'dispatcher', 'report', 'reported' FROM ins
RETURNING event_id
"""


class Report(BaseModel):
    """The same body the service takes (the fields the benchmark sends)."""

    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    category: str
    description: str = ""
    source: str = "grid_worker"
    idempotency_key: str


def create_app(conninfo: str | None = None) -> FastAPI:
    """The baseline app over ``GEOSERVICE_DATABASE_URL`` (or the libpq string given)."""
    conninfo = conninfo or conninfo_of(DatabaseSettings().database_url or os.environ["GEOSERVICE_DATABASE_URL"])
    connections = Connections(conninfo, POOL_SIZE)
    app = baseline_app("PostGIS-per-request report (benchmark baseline)", connections)

    @app.post("/v1/events", status_code=201)
    async def report(body: Report) -> JSONResponse:
        params = {**body.model_dump(), "key": f"peer:{body.idempotency_key}"}
        async with connections.connection() as conn:
            cursor = await conn.execute(REPORT_SQL, params, prepare=True)
            row = await cursor.fetchone()
        if row is None:
            raise ProblemError(422, "Outside every grid or repeated", "no grid covers the point, or the key was used")
        return JSONResponse({"id": row["event_id"]}, status_code=201)

    return app
