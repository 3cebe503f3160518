"""``/v1/queue``: the open events the caller acts for now, with the count of each warning colour.

What a grid worker, a level's dispatcher or a department opens first: the events they own.
``/v1/queue/cotasks`` is a co-department's part of that (联合处置): the live co-tasks it works on,
which are on events another department leads and so never in its ``/v1/queue``.

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
from geoservice.events.cotasks import live_tasks_of
from geoservice.events.deadlines import COLOURS, warning_sql
from geoservice.events.queries import EventFilters, event_view, list_events
from geoservice.events.workflow import OPEN_STATES, STATUSES
from geoservice.inputs import Name
from geoservice.settings import EventSettings
from layers.models import Role

router = APIRouter(prefix="/v1/queue", tags=["events"])
# Those who act for an owner: units (dispatchers, grid workers), departments (handlers), admins.
HOLDERS = allow(Role.admin, Role.dispatcher, Role.grid_worker, Role.handler)
# Those who take co-task steps (``api.event_tasks``): a department's handlers, dispatchers in scope, admins.
TASK_WORKERS = allow(Role.admin, Role.dispatcher, Role.handler)
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


@router.get("/cotasks", **policy(TASK_WORKERS))
def get_cotask_queue(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(TASK_WORKERS)],
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> JSONResponse:
    """Your live co-tasks (联合处置), earliest deadline first: ``counts`` per colour (of those listed), ``items``.

    A handler's are their department's; a dispatcher's those on events in their scope; an admin's all.
    Each item: the task (``id``, ``department_code``, ``status`` open or handling, ``due_at``,
    ``warning``, ``overdue``) and its event (``event_id``, ``category_code``, ``event_status``,
    ``description``, ``place`` — community and grid names — ``lon``, ``lat``). Take the steps with
    ``POST /v1/events/{event_id}/tasks/{department_code}/start`` and ``/feedback``.
    """
    settings: EventSettings = request.app.state.event_settings
    answer = live_tasks_of(session, principal, datetime.now(UTC), settings, limit)
    return JSONResponse(jsonable_encoder(answer))
