"""Supervision (督办) over HTTP: orders on an event or on a unit's overdue work, the list, the replies.

Supervisors and admins issue; whoever acts for the event's owner replies (``events.supervision.may_reply``);
every staff member but planners lists the orders on the events they may see. Writes commit before
the answer, as the event routes do.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import Field

from geoservice.api.deps import SessionDep
from geoservice.api.events import EVENT_ID
from geoservice.auth.policy import allow, policy
from geoservice.auth.users import Principal
from geoservice.events.supervision import (
    issue_order,
    issue_unit_orders,
    list_orders,
    order_view,
    reply_due,
    reply_to_order,
)
from geoservice.inputs import AwareTime, FreeText, RequestBody
from layers.models import Role

router = APIRouter(tags=["supervision"])

ISSUERS = allow(Role.supervisor, Role.admin)
REPLIERS = allow(Role.dispatcher, Role.grid_worker, Role.handler, Role.admin)
READERS = allow(Role.supervisor, Role.admin, Role.dispatcher, Role.grid_worker, Role.handler)
ORDER_ID = Path(ge=1, le=2**63 - 1, description="supervision order id", examples=[1])


class OrderIn(RequestBody):
    """An order: what to do, and by when to reply (a zoned time, or hours from now)."""

    instruction: FreeText = Field(min_length=1, max_length=2000)
    reply_due_at: AwareTime | None = Field(None, description="reply by, with its zone")
    reply_hours: float | None = Field(None, gt=0, le=720, description="or: reply within this many hours")


class UnitOrderIn(OrderIn):
    """An order on every overdue open event of a unit (a region or grid code and its subtree)."""

    unit: str = Field(pattern=r"^[0-9]{12}([0-9]{3})?$", description="region (12 digits) or grid (15) code")


class ReplyIn(RequestBody):
    """The answer to an order."""

    reply: FreeText = Field(min_length=1, max_length=2000)


@router.post("/v1/events/{event_id}/supervision", status_code=201,
             responses={200: {"description": "the same order again (a retry)"}}, **policy(ISSUERS))  # fmt: skip
def post_event_order(
    request: Request,
    principal: Annotated[Principal, Depends(ISSUERS)],
    event_id: Annotated[int, EVENT_ID],
    body: OrderIn,
) -> JSONResponse:
    """Order those who act on the event to reply by a deadline; flagged ``supervised`` on the event."""
    now = datetime.now(UTC)
    due = reply_due(now, body.reply_due_at, body.reply_hours)
    with request.app.state.sessions() as session, session.begin():
        order, created = issue_order(session, event_id, principal, body.instruction, due, now)
    return JSONResponse(jsonable_encoder(order_view(order, now)), status_code=201 if created else 200)


@router.post("/v1/supervision", status_code=201, **policy(ISSUERS))
def post_unit_orders(
    request: Request, principal: Annotated[Principal, Depends(ISSUERS)], body: UnitOrderIn
) -> JSONResponse:
    """One order per overdue open event of the unit's subtree; events already awaiting a reply are listed."""
    now = datetime.now(UTC)
    due = reply_due(now, body.reply_due_at, body.reply_hours)
    with request.app.state.sessions() as session, session.begin():
        result = issue_unit_orders(session, body.unit, principal, body.instruction, due, now)
    result["orders"] = [order_view(o, now) for o in result["orders"]]
    return JSONResponse(jsonable_encoder(result), status_code=201)


@router.get("/v1/supervision", **policy(READERS))
def get_orders(
    session: SessionDep,
    principal: Annotated[Principal, Depends(READERS)],
    waiting: Annotated[bool | None, Query(description="true: awaiting a reply; false: answered")] = None,
    event_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> JSONResponse:
    """Orders, newest first: all for supervisors and admins, else those on events in your scope."""
    now = datetime.now(UTC)
    orders = list_orders(session, principal, waiting=waiting, event_id=event_id, limit=limit)
    return JSONResponse(jsonable_encoder({"items": [order_view(o, now) for o in orders]}))


@router.post("/v1/supervision/{order_id}/reply", **policy(REPLIERS))
def post_reply(
    request: Request,
    principal: Annotated[Principal, Depends(REPLIERS)],
    order_id: Annotated[int, ORDER_ID],
    body: ReplyIn,
) -> JSONResponse:
    """Answer an order on an event you act on; logged on the event as ``supervision_reply``."""
    now = datetime.now(UTC)
    with request.app.state.sessions() as session, session.begin():
        order = reply_to_order(session, order_id, principal, body.reply, now)
    return JSONResponse(jsonable_encoder(order_view(order, now)))
