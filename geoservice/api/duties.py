"""Duty lists and visits over HTTP: ``POST /v1/visits``, ``GET /v1/visits/{id}``, ``GET /v1/me/duties``.

Visits are recorded by grid workers for the grids and communities they serve, with an
idempotency key so an offline phone may send its queue again. ``/v1/me/duties`` is the worker's
list: every duty of every unit they serve, overdue first (red), due soon (yellow), in local time
on the page, ISO 8601 here; beside it (``key_people``) the key people they are responsible for,
due by each person's visit cycle. A visit names a duty and a unit, or a key person.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy.orm import Session

from geoservice.api.deps import SessionDep
from geoservice.api.problems import ProblemError
from geoservice.auth.policy import allow, policy
from geoservice.auth.users import Principal
from geoservice.boundaries.versions import NoVersionInForce, current_version_id
from geoservice.field.duties import ORDER, my_duties, my_key_people, record_visit, visible_visit
from geoservice.inputs import AwareTime, FreeText, Name, RequestBody
from layers.crs import point_to_wgs84
from layers.models import Role

router = APIRouter(tags=["duties"])

WORKERS = allow(Role.grid_worker)
READERS = allow(Role.admin, Role.supervisor, Role.dispatcher, Role.grid_worker)
VISIT_ID = Path(ge=1, le=2**63 - 1, description="visit id", examples=[1])


class VisitIn(RequestBody):
    """A visit (走访) against a duty for a unit, or against a key person.

    A duty's visit is for a grid (grid-level duty) or a community (community-level duty); a key
    person's (``key_person_id``) is for the person's grid.
    """

    duty_code: Name | None = Field(None, min_length=1, max_length=50, description="the duty (or key_person_id)")
    key_person_id: int | None = Field(None, ge=1, le=2**63 - 1, description="a key person visited (or duty_code)")
    unit_code: str | None = Field(
        None, pattern=r"^[0-9]{12}([0-9]{3})?$", description="the grid or community visited for (a duty's needs it)"
    )
    visited_at: AwareTime | None = Field(None, description="when, with its zone (offline: when it happened)")
    notes: FreeText = Field("", max_length=4000)
    place_code: Name | None = Field(None, max_length=50, description="a key place visited")
    lon: float | None = Field(None, description="where (optional), in crs")
    lat: float | None = None
    crs: Name = Field("wgs84", max_length=30)
    idempotency_key: Name | None = Field(None, min_length=1, max_length=120)


@router.post("/v1/visits", status_code=201, responses={200: {"description": "the visit this key already recorded"}},
             **policy(WORKERS))  # fmt: skip
def post_visit(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(WORKERS)],
    body: VisitIn,
    idempotency_key: Annotated[Name | None, Header(max_length=120)] = None,
) -> JSONResponse:
    """Record a visit; the same key again answers the visit already recorded (200)."""
    if body.idempotency_key and idempotency_key and body.idempotency_key != idempotency_key:
        raise ProblemError(422, "Invalid request", "the Idempotency-Key header and the body's idempotency_key differ")
    if (body.lon is None) != (body.lat is None):
        raise ProblemError(422, "Invalid request", "give both lon and lat, or neither")
    if (body.duty_code is None) == (body.key_person_id is None):
        raise ProblemError(422, "Invalid request", "a visit is against a duty_code or a key_person_id: give one")
    if body.duty_code is not None and body.unit_code is None:
        raise ProblemError(422, "Invalid request", "a duty's visit needs the unit_code visited for")
    point = None if body.lon is None or body.lat is None else point_to_wgs84(body.lon, body.lat, body.crs)
    now = datetime.now(UTC)
    visit, created = record_visit(
        session, principal, _version_in_force(session), duty_code=body.duty_code, unit_code=body.unit_code,
        key_person_id=body.key_person_id, visited_at=min(body.visited_at or now, now), notes=body.notes,
        place_code=body.place_code, point=point, idempotency_key=body.idempotency_key or idempotency_key,
        police_department=_police(request),
    )  # fmt: skip
    return JSONResponse(jsonable_encoder(visit), status_code=201 if created else 200,
                        headers={"Location": f"/v1/visits/{visit['id']}"})  # fmt: skip


@router.get("/v1/visits/{visit_id}", **policy(READERS))
def get_visit(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(READERS)],
    visit_id: Annotated[int, VISIT_ID],
) -> JSONResponse:
    """A visit: yours, of a key person you are responsible for, or of a unit in your subtree as a dispatcher.

    A key-person visit's notes are blanked (``masked``) unless you read the person in full; the read is logged.
    """
    visit = visible_visit(session, visit_id, principal, _police(request), f"GET /v1/visits/{visit_id}")
    return JSONResponse(jsonable_encoder(visit))


@router.get("/v1/me/duties", **policy(WORKERS))
def get_my_duties(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(WORKERS)],
    status: Annotated[Literal["overdue", "due_soon", "ok"] | None, Query(description="only this status")] = None,
) -> JSONResponse:
    """Every duty of every grid and community you serve, and every key person you are responsible for.

    Each with its last visit and when it is due (a duty's cycle, the person's visit cycle), overdue
    first. Key people are listed apart (``key_people``, ``key_people_counts``), each person in full
    as their responsible worker reads them, and each listed person is logged as read.
    """
    now = datetime.now(UTC)
    items = my_duties(session, principal, _version_in_force(session), now)
    counts = {s: sum(1 for i in items if i["status"] == s) for s in ORDER}
    if status is not None:
        items = [i for i in items if i["status"] == status]
    people_counts, people = my_key_people(session, principal, now, _police(request), "GET /v1/me/duties", status)
    return JSONResponse(jsonable_encoder({"as_of": now, "counts": counts, "items": items,
                                          "key_people_counts": people_counts, "key_people": people}))  # fmt: skip


def _police(request: Request) -> str:
    return request.app.state.force_settings.patrol_department


def _version_in_force(session: Session) -> int:
    version = current_version_id(session)
    if version is None:
        raise NoVersionInForce("no boundary version is in force yet: publish one first")
    return version
