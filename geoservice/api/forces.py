"""Forces (治理力量): the mobile client's position reports, and the forces nearest an event.

``POST /v1/forces/me/position`` — grid workers and patrols (handlers of the police department);
``GET /v1/events/{id}/nearest-forces`` — dispatchers, supervisors, admins, within their own scope;
``POST /v1/events/{id}/nearest-forces/dispatch`` — a dispatcher sends one of them (a workflow
``dispatch`` through ``apply_transition``, so the state rules, the lock and the log all apply).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy.orm import Session

from geoservice.api.deps import SessionDep
from geoservice.api.problems import ProblemError
from geoservice.auth.policy import allow, policy
from geoservice.auth.scope import scope_of
from geoservice.auth.users import Principal
from geoservice.events.queries import fetch_event
from geoservice.events.transitions import apply_transition
from geoservice.forces.nearest import nearest_forces
from geoservice.forces.positions import Fix, record_position
from geoservice.forces.settings import ForceSettings
from geoservice.inputs import FreeText, Name, RequestBody, ZonedTime
from layers.crs import point_to_wgs84
from layers.models import Role

router = APIRouter(tags=["forces"])
REPORTERS = allow(Role.grid_worker, Role.handler)
FINDERS = allow(Role.admin, Role.dispatcher, Role.supervisor)
DISPATCHERS = allow(Role.admin, Role.dispatcher)
EVENT_ID = Path(ge=1, le=2**63 - 1, description="event id", examples=[1])


class PositionIn(RequestBody):
    """A fix from the mobile client; ``at`` is when it was taken (default: when it arrives)."""

    lon: float = Field(description="longitude (or easting) in crs")
    lat: float = Field(description="latitude (or northing) in crs")
    crs: Name = Field("wgs84", max_length=30, description="wgs84, cgcs2000, gcj02, bd09 or EPSG:n")
    at: ZonedTime | None = None
    available: bool = Field(True, description="free to take a job")
    accuracy_m: float | None = Field(None, ge=0, le=10_000)


class ForceDispatchIn(RequestBody):
    """Send one of the nearest forces; ``expected_version`` is the event's ``row_version`` you read."""

    username: Name = Field(min_length=1, max_length=100)
    expected_version: int = Field(ge=1, le=2**31 - 1)
    note: FreeText = Field("", max_length=2000)


@router.post("/v1/forces/me/position", status_code=201,
             responses={200: {"description": "accepted but not stored (throttled)"}}, **policy(REPORTERS))  # fmt: skip
def post_position(
    request: Request, body: PositionIn, session: SessionDep, principal: Annotated[Principal, Depends(REPORTERS)]
) -> JSONResponse:
    """Report where I am; a fix within the throttle interval of the last one is accepted but not stored."""
    now = datetime.now(UTC)
    if body.at is not None and body.at.tzinfo is None:
        raise ProblemError(422, "Invalid time", "at needs a time zone, e.g. 2026-11-24T09:30:00+08:00")
    lon, lat = point_to_wgs84(body.lon, body.lat, body.crs)  # UnknownCRSError, InvalidCoordinates → 422
    fix = Fix(lon, lat, body.at or now, body.available, body.accuracy_m)
    answer = record_position(session, principal, fix, force_settings(request), now)
    return JSONResponse(jsonable_encoder(answer), status_code=201 if answer["stored"] else 200)


@router.get("/v1/events/{event_id}/nearest-forces", **policy(FINDERS))
def get_nearest_forces(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(FINDERS)],
    event_id: Annotated[int, EVENT_ID],
    limit: Annotated[int, Query(ge=1, le=100, description="at most this many available forces")] = 5,
) -> JSONResponse:
    """Available forces nearest the event (metres on the spheroid); busy and unknown ones listed apart."""
    event = _event(session, event_id, principal)
    settings = force_settings(request)
    found = nearest_forces(session, event, limit, settings, datetime.now(UTC))
    body = {"event": {"id": event["id"], "lon": event["lon"], "lat": event["lat"], "grid_code": event["grid_code"]},
            "stale_after_s": settings.stale_after_s, **found}  # fmt: skip
    return JSONResponse(jsonable_encoder(body))


@router.post("/v1/events/{event_id}/nearest-forces/dispatch", **policy(DISPATCHERS))
def dispatch_to_force(
    request: Request,
    body: ForceDispatchIn,
    session: SessionDep,
    principal: Annotated[Principal, Depends(DISPATCHERS)],
    event_id: Annotated[int, EVENT_ID],
) -> JSONResponse:
    """Dispatch the event to one available force near it.

    A patrol is named as the handler, with the police department; a grid worker is not a handler
    in the workflow, so the event goes to its routed department and the log note names the worker
    (grid workers may start and feed back on events in their region).
    """
    event = _event(session, event_id, principal)
    settings = force_settings(request)
    found = nearest_forces(session, event, 1_000, settings, datetime.now(UTC))
    force = next((f for f in found["available"] if f["username"] == body.username), None)
    if force is None:
        elsewhere = {f["username"]: k for k in ("busy", "unknown") for f in found[k]}
        why = f"is {elsewhere[body.username]}" if body.username in elsewhere else "is not a force in its scope"
        raise ProblemError(409, "Force not available", f"{body.username!r} {why} for event {event_id}")
    sent = f"sent {force['kind'].replace('_', ' ')} {body.username} ({force['distance_m']:,.0f} m away)"
    note = body.note.strip() or sent
    kwargs: dict[str, Any] = (
        {"department_code": settings.patrol_department, "handler_username": body.username}
        if force["kind"] == "patrol"
        else {}
    )
    after = apply_transition(session, event_id, "dispatch", principal, note, body.expected_version, **kwargs)
    return JSONResponse(jsonable_encoder({"event": {k: after[k] for k in ("id", "status", "department_code",
                                                                           "handler_username", "row_version")},
                                          "force": force}))  # fmt: skip


def force_settings(request: Request) -> ForceSettings:
    """The app's force settings, built once with the app."""
    return request.app.state.force_settings


def _event(session: Session, event_id: int, principal: Principal) -> dict[str, Any]:
    event = fetch_event(session, event_id, scope_of(principal))
    if event is None:
        raise ProblemError(404, "No such event", f"there is no event {event_id} that you may see")
    return event
