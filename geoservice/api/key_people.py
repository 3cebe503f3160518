"""The key people register over HTTP: add, list, read one — masked outside the circle — and the read log.

Every person answered is logged as read (``geoservice.field.key_people``); the log itself is for
supervisors (纪委) and admins. The police department is ``GEOSERVICE_FORCE_PATROL_DEPARTMENT``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import Field

from geoservice.api.deps import SessionDep
from geoservice.auth.policy import allow, policy
from geoservice.auth.users import Principal
from geoservice.field.key_people import add_person, list_people, read_person, reads_of
from geoservice.inputs import FreeText, Name, RequestBody
from layers.models import Role

router = APIRouter(tags=["key people"])

WRITERS = allow(Role.admin, Role.dispatcher)
READERS = allow(Role.admin, Role.supervisor, Role.dispatcher, Role.grid_worker, Role.handler)
AUDITORS = allow(Role.admin, Role.supervisor)
PERSON_ID = Path(ge=1, le=2**63 - 1, description="key person id", examples=[1])


class KeyPersonIn(RequestBody):
    """A key person of a grid, the worker responsible for them and how often they are visited."""

    name: Name = Field(min_length=1, max_length=100)
    id_number: str = Field("", pattern=r"^([0-9]{17}[0-9Xx])?$", description="居民身份证号码, 18 characters")
    phone: str = Field("", pattern=r"^[0-9+\- ]{0,50}$")
    kind: Name = Field(max_length=30, description="community_correction, mental_disorder, drug, released, petition, "
                       "youth or elderly_alone")  # fmt: skip
    address: Name = Field("", max_length=300)
    grid_code: str = Field(pattern=r"^[0-9]{15}$")
    responsible_username: Name | None = Field(None, max_length=100, description="the grid worker responsible")
    visit_cycle_days: int = Field(30, ge=1, le=3660)
    notes: FreeText = Field("", max_length=4000)


def _police(request: Request) -> str:
    return request.app.state.force_settings.patrol_department


@router.post("/v1/key-people", status_code=201, **policy(WRITERS))
def post_key_person(
    request: Request, session: SessionDep, principal: Annotated[Principal, Depends(WRITERS)], body: KeyPersonIn
) -> JSONResponse:
    """Register a key person in a grid of your region; the answer is masked unless you are of their circle."""
    person = add_person(session, principal, body.model_dump(), _police(request))
    location = {"Location": f"/v1/key-people/{person['id']}"}
    return JSONResponse(jsonable_encoder(person), status_code=201, headers=location)


@router.get("/v1/key-people", **policy(READERS))
def get_key_people(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(READERS)],
    grid: Annotated[str | None, Query(pattern=r"^[0-9]{12}([0-9]{3})?$", description="a grid or region")] = None,
    kind: Annotated[Name | None, Query(max_length=30)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> JSONResponse:
    """Key people you may list, each in full or masked (``masked``); every one is logged as read by you."""
    people = list_people(session, principal, _police(request), "GET /v1/key-people", grid, kind, limit)
    return JSONResponse(jsonable_encoder({"items": people}))


@router.get("/v1/key-people/reads", **policy(AUDITORS))
def get_key_person_reads(
    session: SessionDep,
    principal: Annotated[Principal, Depends(AUDITORS)],
    person_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> JSONResponse:
    """Who read which key person, when, through what, in full or masked; newest first."""
    return JSONResponse(jsonable_encoder({"items": reads_of(session, person_id, limit)}))


@router.get("/v1/key-people/{person_id}", **policy(READERS))
def get_key_person(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(READERS)],
    person_id: Annotated[int, PERSON_ID],
) -> JSONResponse:
    """One key person, in full or masked; the read is logged."""
    person = read_person(session, principal, person_id, _police(request), f"GET /v1/key-people/{person_id}")
    return JSONResponse(jsonable_encoder(person))
