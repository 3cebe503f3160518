"""``/v1/inbox`` (a person's notifications) and ``/v1/live`` (live push), and the notification loops.

The fan-out and delivery loops run beside the app (this router's lifespan) unless
``GEOSERVICE_NOTIFY_IN_SERVER=false`` (then ``geoservice notify run`` does the work). Everyone has an
inbox of their own; the anonymous public has an empty one. ``/v1/live`` streams Server-Sent Events to
clients that accept ``text/event-stream`` and answers others (a client that cannot hold a stream) with
what is new since ``Last-Event-ID`` as JSON, to poll.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from sse_starlette import EventSourceResponse, ServerSentEvent

from geoservice.api.deps import SessionDep
from geoservice.auth.policy import EVERYONE, allow, policy
from geoservice.auth.users import Principal
from geoservice.errors import InvalidInput
from geoservice.notifications import inbox
from geoservice.notifications.changes import event_changes, latest_log_id, watches_events
from geoservice.notifications.live import LiveHub
from geoservice.notifications.runner import NotifyLoops
from geoservice.notifications.settings import NotifySettings

NOTIFICATION_ID = Path(ge=1, le=2**63 - 1, description="notification id", examples=[1])
OWNERS = allow(EVERYONE)


@asynccontextmanager
async def notify_alongside(app: FastAPI) -> AsyncIterator[None]:
    """The live hub for as long as the app runs; the fan-out and delivery loops too, unless turned off."""
    settings: NotifySettings = app.state.notify_settings
    app.state.live = LiveHub(app.state.engine)
    app.state.live.start()
    loops = NotifyLoops(app.state.engine, settings) if settings.in_server else None
    if loops is not None:
        loops.start()
    yield
    if loops is not None:
        loops.stop()
    await app.state.live.stop()


router = APIRouter(prefix="/v1", tags=["notifications"], lifespan=notify_alongside)


@router.get("/inbox", **policy(OWNERS))
def get_inbox(
    session: SessionDep,
    principal: Annotated[Principal, Depends(OWNERS)],
    unread: Annotated[bool, Query(description="only what is not read yet")] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=20, description="next_cursor of the previous page")] = None,
) -> Any:
    """The caller's own notifications, newest first."""
    before = _cursor(cursor)
    return jsonable_encoder(inbox.list_inbox(session, principal.username, unread=unread, before=before, limit=limit))


@router.get("/inbox/unread-count", **policy(OWNERS))
def get_unread_count(session: SessionDep, principal: Annotated[Principal, Depends(OWNERS)]) -> dict[str, int]:
    return {"unread": inbox.unread_count(session, principal.username)}


@router.post("/inbox/read-all", **policy(OWNERS))
def post_read_all(session: SessionDep, principal: Annotated[Principal, Depends(OWNERS)]) -> dict[str, int]:
    return {"marked": inbox.mark_all_read(session, principal.username)}


@router.post("/inbox/{notification_id}/read", **policy(OWNERS))
def post_read(
    session: SessionDep,
    principal: Annotated[Principal, Depends(OWNERS)],
    notification_id: Annotated[int, NOTIFICATION_ID],
) -> Any:
    """Mark one notification read; 404 for one that is not the caller's."""
    return jsonable_encoder(inbox.mark_read(session, principal.username, notification_id))


@router.get(
    "/live",
    responses={200: {"content": {"text/event-stream": {}}, "description": "events, or JSON to poll"}},
    **policy(OWNERS),
)
async def get_live(
    request: Request,
    principal: Annotated[Principal, Depends(OWNERS)],
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=60)] = None,
) -> Any:
    """The caller's new notifications and, for dispatchers, supervisors and admins, event changes in scope.

    A stream ends after ``GEOSERVICE_NOTIFY_LIVE_MAX_S``; EventSource reconnects with ``Last-Event-ID``
    and misses nothing (ids are ``<notification id>-<log id>`` positions).
    """
    position = await run_in_threadpool(_position, request, principal, last_event_id)
    if "text/event-stream" not in request.headers.get("accept", ""):
        batch, position = await run_in_threadpool(_read_new, request, principal, position)
        return {**jsonable_encoder(batch), "last_event_id": _format(position)}
    settings: NotifySettings = request.app.state.notify_settings
    return EventSourceResponse(_stream(request, principal, position, settings), ping=settings.live_ping_s)


async def _stream(
    request: Request, principal: Principal, position: tuple[int, int], settings: NotifySettings
) -> AsyncIterator[ServerSentEvent]:
    hub: LiveHub = request.app.state.live
    woken = hub.subscribe()
    loop = asyncio.get_running_loop()
    ends = loop.time() + settings.live_max_s
    try:
        yield ServerSentEvent(event="ready", id=_format(position), data="{}", retry=2000)
        while loop.time() < ends:
            woken.clear()
            batch, position = await run_in_threadpool(_read_new, request, principal, position)
            for item in batch["notifications"]:
                yield ServerSentEvent(event="notification", id=_format(position), data=_json(item))
            for change in batch["changes"]:
                yield ServerSentEvent(event="event_change", id=_format(position), data=_json(change))
            if batch["notifications"] or batch["changes"]:
                continue  # a full batch may have left more: read again before waiting
            try:  # a missed NOTIFY (the hub reconnecting) costs at most ten seconds
                await asyncio.wait_for(woken.wait(), timeout=max(0.0, min(10.0, ends - loop.time())))
            except TimeoutError:
                pass
    finally:
        hub.unsubscribe(woken)


def _position(request: Request, principal: Principal, last_event_id: str | None) -> tuple[int, int]:
    """Where a stream starts: after ``Last-Event-ID``, else after what exists now (only new things are pushed)."""
    if last_event_id:
        parts = last_event_id.split("-")
        if len(parts) == 2 and all(p.isdigit() and len(p) <= 18 for p in parts):
            return int(parts[0]), int(parts[1])
        raise InvalidInput("Last-Event-ID is <notification id>-<log id>, as a previous event gave it")
    with request.app.state.sessions() as session:
        return inbox.latest_id(session, principal.username), latest_log_id(session)


def _read_new(
    request: Request, principal: Principal, position: tuple[int, int]
) -> tuple[dict[str, list[dict[str, Any]]], tuple[int, int]]:
    after_notification, after_log = position
    with request.app.state.sessions() as session:
        notes = inbox.since(session, principal.username, after_notification)
        changes = event_changes(session, principal, after_log) if watches_events(principal) else []
    position = (
        notes[-1]["id"] if notes else after_notification,
        changes[-1]["log_id"] if changes else after_log,
    )
    return {"notifications": notes, "changes": changes}, position


def _cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 18:
        raise InvalidInput("cursor is the next_cursor of a previous page")
    return int(cursor)


def _format(position: tuple[int, int]) -> str:
    return f"{position[0]}-{position[1]}"


def _json(value: dict[str, Any]) -> str:
    return json.dumps(jsonable_encoder(value), ensure_ascii=False)
