"""Citizens follow: ``/v1/follow/{token}``, ``/v1/me/reports`` and ``/v1/subscriptions``.

The follow link is open to anyone holding the token (it is the reporter's receipt) and shows only
status, dates and public notes. "My reports" and subscriptions need an account: the anonymous are
refused with a 401 (``allow(..., signed_in=True)``) even though the public role is admitted.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import Field

from geoservice.api.deps import SessionDep
from geoservice.auth.policy import EVERYONE, allow, policy
from geoservice.auth.users import Principal
from geoservice.errors import NotFound
from geoservice.events.follow import followed, my_reports
from geoservice.events.subscriptions import (
    MAX_RADIUS_M,
    add_subscription,
    delete_subscription,
    list_subscriptions,
)
from geoservice.inputs import Name, RequestBody
from layers.models import Role

router = APIRouter(tags=["follow"])
ANYONE = allow(EVERYONE)
CITIZENS = allow(Role.public, signed_in=True)
SIGNED_IN = allow(EVERYONE, signed_in=True)


class CircleIn(RequestBody):
    """A circle around a WGS84 point; the radius in metres."""

    lon: float
    lat: float
    radius_m: float = Field(gt=0, le=MAX_RADIUS_M, description=f"metres, at most {MAX_RADIUS_M:g}")


class SubscriptionIn(RequestBody):
    """An area to follow — a GeoJSON Polygon (WGS84) or a circle — and optional categories (a class: all of it)."""

    area: dict[str, Any] | None = Field(None, description="a GeoJSON Polygon in WGS84")
    circle: CircleIn | None = None
    categories: list[Name] = Field(default_factory=list, max_length=30)


@router.get("/v1/follow/{token}", **policy(ANYONE))
def get_followed(session: SessionDep, token: Annotated[str, Path(max_length=128)]) -> JSONResponse:
    """The status, dates and public notes of the report behind a follow token (its master's when merged)."""
    view = followed(session, token)
    if view is None:
        raise NotFound("no report has this follow token", title="No such report")
    return JSONResponse(jsonable_encoder(view))


@router.get("/v1/me/reports", **policy(CITIZENS))
def get_my_reports(session: SessionDep, principal: Annotated[Principal, Depends(CITIZENS)]) -> JSONResponse:
    """The signed-in citizen's own reports, newest first, with their progress (a merged one: its master's)."""
    return JSONResponse(jsonable_encoder({"items": my_reports(session, principal.username)}))


@router.post("/v1/subscriptions", status_code=201, responses={200: {"description": "the same subscription again"}},
             **policy(SIGNED_IN))  # fmt: skip
def post_subscription(
    session: SessionDep, principal: Annotated[Principal, Depends(SIGNED_IN)], body: SubscriptionIn
) -> JSONResponse:
    """Follow an area (and categories); the same again is a 200 with the stored one.

    422 for a bad or too large area, 409 past the per-account limit.
    """
    circle = (body.circle.lon, body.circle.lat, body.circle.radius_m) if body.circle else None
    stored, created = add_subscription(session, principal.username, polygon=body.area, circle=circle,
                                       categories=list(body.categories))  # fmt: skip
    return JSONResponse(jsonable_encoder(stored), status_code=201 if created else 200)


@router.get("/v1/subscriptions", **policy(SIGNED_IN))
def get_subscriptions(session: SessionDep, principal: Annotated[Principal, Depends(SIGNED_IN)]) -> JSONResponse:
    """The caller's subscriptions."""
    return JSONResponse(jsonable_encoder({"items": list_subscriptions(session, principal.username)}))


@router.delete("/v1/subscriptions/{subscription_id}", status_code=204, **policy(SIGNED_IN))
def remove_subscription(
    session: SessionDep,
    principal: Annotated[Principal, Depends(SIGNED_IN)],
    subscription_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
) -> Response:
    """Stop following an area (only one's own: another's is a 404)."""
    delete_subscription(session, principal.username, subscription_id)
    return Response(status_code=204)
