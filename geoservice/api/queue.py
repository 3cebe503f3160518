"""``/v1/queue``: the open events the caller acts for now, with the count of each warning colour.

What a grid worker, a level's dispatcher or a department opens first: the events they own.

The list is ``GET /v1/events?owner=mine&status=<open states>`` (same filters, same pages); the counts
use the same warning rule in SQL (``events.deadlines.warning_sql``), so the badge and the list agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import text

from geoservice.api.deps import SessionDep
from geoservice.auth.policy import allow, policy
from geoservice.auth.scope import owner_sql, scope_of, scope_sql
from geoservice.auth.users import Principal
from geoservice.events.deadlines import COLOURS, warning_sql
from geoservice.events.queries import EventFilters, event_view, list_events
from geoservice.events.workflow import OPEN_STATES, STATUSES
from geoservice.inputs import Name
from geoservice.settings import EventSettings
from layers.models import Role

router = APIRouter(prefix="/v1/queue", tags=["events"])
# Those who act for an owner: units (dispatchers, grid workers), departments (handlers), admins.
HOLDERS = allow(Role.admin, Role.dispatcher, Role.grid_worker, Role.handler)
OPEN = tuple(s for s in STATUSES if s in OPEN_STATES)


@router.get("", **policy(HOLDERS))
def get_queue(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(HOLDERS)],
    sort: Annotated[Name, Query(description="reported_at, occurred_at, updated_at or id; '-' descending")] = (
        "reported_at"
    ),
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[Name | None, Query(max_length=500)] = None,
) -> JSONResponse:
    """Your open events now: ``counts`` per warning colour (and ``total``), then a page of ``items``."""
    settings: EventSettings = request.app.state.event_settings
    now = datetime.now(UTC)
    scope = scope_of(principal)
    seen, seen_params = scope_sql(scope)
    mine, mine_params = owner_sql(principal)
    rows = session.execute(
        text(
            f"SELECT {warning_sql(settings)} AS colour, count(*) AS n FROM events e "
            f"WHERE {seen} AND {mine} AND e.status = ANY(:open) GROUP BY 1"
        ),
        {**seen_params, **mine_params, "open": list(OPEN), "now": now},
    ).all()
    counts = dict.fromkeys(COLOURS, 0) | {r.colour: r.n for r in rows}
    counts["total"] = sum(r.n for r in rows)
    filters = EventFilters(status=OPEN, owner_of=principal)
    page = list_events(session, scope, filters, now=now, settings=settings, sort=sort, limit=limit, cursor=cursor)
    items = [event_view(e, principal, now, settings) for e in page.items]
    return JSONResponse(jsonable_encoder({"counts": counts, "items": items, "next_cursor": page.next_cursor}))
