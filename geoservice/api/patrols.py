"""Patrols over HTTP: start, send fixes, stop, read one; and each grid's weekly patrol coverage.

Grid workers and police patrols (handlers of ``GEOSERVICE_FORCE_PATROL_DEPARTMENT``) patrol; each
write is idempotent (see ``geoservice.field.patrols``) so an offline phone may send its queue again.
Coverage is a statistic of grids: admins, supervisors, dispatchers and grid workers, a scoped
caller seeing only the grids of their subtree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import Field
from sqlalchemy.orm import Session

from geoservice.api.deps import SessionDep
from geoservice.api.problems import ProblemError
from geoservice.auth.policy import allow, policy
from geoservice.auth.users import Principal
from geoservice.boundaries.versions import NoVersionInForce, current_version_id
from geoservice.field.coverage import patrol_coverage, week_bounds
from geoservice.field.patrols import Fix, add_fixes, patrol_view, start_patrol, stop_patrol, visible_patrol
from geoservice.field.settings import PatrolSettings
from geoservice.inputs import AwareTime, Name, RequestBody
from geoservice.stats.filters import grid_subtree
from geoservice.stats.scope import grid_scope_condition
from geoservice.stats.tables import rows_csv
from layers.crs import InvalidCoordinates, city_metric_epsg, on_earth, parse_crs, to_wgs84
from layers.models import Role

router = APIRouter(tags=["patrols"])

PATROLLERS = allow(Role.grid_worker, Role.handler)
READERS = allow(Role.admin, Role.supervisor, Role.dispatcher, Role.grid_worker, Role.handler)
COVERAGE_READERS = allow(Role.admin, Role.supervisor, Role.dispatcher, Role.grid_worker)
COVERAGE_COLUMNS = ("grid_code", "grid_name", "community_code", "area_m2", "covered_m2", "share")
PATROL_ID = Path(ge=1, le=2**63 - 1, description="patrol id", examples=[1])


class PatrolStart(RequestBody):
    """Start a patrol; ``idempotency_key`` (or the header) makes a retried start the same patrol."""

    idempotency_key: Name | None = Field(None, min_length=1, max_length=120)
    started_at: AwareTime | None = Field(None, description="when it started on the phone (offline); default: now")


class FixIn(RequestBody):
    """One GPS fix: where, when (with its zone), how accurate."""

    lon: float = Field(description="longitude (or easting) in the batch's crs")
    lat: float = Field(description="latitude (or northing) in the batch's crs")
    at: AwareTime
    accuracy_m: float | None = Field(None, ge=0, le=100_000)


class FixBatch(RequestBody):
    """A batch of fixes in one CRS; a fix already stored (same ``at``) is not stored again."""

    crs: Name = Field("wgs84", max_length=30, description="wgs84, cgcs2000, gcj02, bd09 or EPSG:n")
    fixes: list[FixIn] = Field(min_length=1, max_length=100_000)


class PatrolStop(RequestBody):
    """Stop a patrol; ``stopped_at`` when it stopped on the phone (offline), default now."""

    stopped_at: AwareTime | None = None


@router.post("/v1/patrols", status_code=201,
             responses={200: {"description": "the patrol this key already started"}}, **policy(PATROLLERS))  # fmt: skip
def post_patrol(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(PATROLLERS)],
    body: PatrolStart | None = None,
    idempotency_key: Annotated[Name | None, Header(max_length=120)] = None,
) -> JSONResponse:
    """Start a patrol (grid workers, police patrols); one open patrol at a time (409 names the open one)."""
    body = body or PatrolStart()
    key = body.idempotency_key or idempotency_key
    if body.idempotency_key and idempotency_key and body.idempotency_key != idempotency_key:
        raise ProblemError(422, "Invalid request", "the Idempotency-Key header and the body's idempotency_key differ")
    patrol, created = start_patrol(session, principal, request.app.state.force_settings, datetime.now(UTC), key,
                                   body.started_at)  # fmt: skip
    return JSONResponse(jsonable_encoder(patrol_view(patrol)), status_code=201 if created else 200,
                        headers={"Location": f"/v1/patrols/{patrol['id']}"})  # fmt: skip


@router.post("/v1/patrols/{patrol_id}/points", **policy(PATROLLERS))
def post_points(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(PATROLLERS)],
    patrol_id: Annotated[int, PATROL_ID],
    body: FixBatch,
) -> JSONResponse:
    """Add a batch of fixes to your open patrol; the answer counts stored, duplicate and ignored fixes."""
    settings: PatrolSettings = request.app.state.patrol_settings
    if len(body.fixes) > settings.max_batch:
        raise ProblemError(413, "Batch too large", f"at most {settings.max_batch} fixes per batch; split it")
    crs = parse_crs(body.crs)  # an unknown CRS is a 422 problem
    lons, lats = to_wgs84([f.lon for f in body.fixes], [f.lat for f in body.fixes], crs)
    bad = np.flatnonzero(~np.asarray(on_earth(lons, lats)))
    if bad.size:
        first = body.fixes[int(bad[0])]
        raise InvalidCoordinates(f"fix {int(bad[0])}: ({first.lon}, {first.lat}) in {body.crs} is not a place on Earth")
    fixes = [Fix(float(x), float(y), f.at, f.accuracy_m) for x, y, f in zip(lons, lats, body.fixes, strict=True)]
    epsg = city_metric_epsg(session, request.app.state.routing_settings.metric_crs)
    answer = add_fixes(session, patrol_id, principal, fixes, settings, epsg, datetime.now(UTC))
    return JSONResponse(jsonable_encoder(answer))


@router.post("/v1/patrols/{patrol_id}/stop", **policy(PATROLLERS))
def post_stop(
    session: SessionDep,
    principal: Annotated[Principal, Depends(PATROLLERS)],
    patrol_id: Annotated[int, PATROL_ID],
    body: PatrolStop | None = None,
) -> JSONResponse:
    """Stop your patrol; stopping it again answers it as it is."""
    stopped = stop_patrol(session, patrol_id, principal, datetime.now(UTC), (body or PatrolStop()).stopped_at)
    return JSONResponse(jsonable_encoder(patrol_view(stopped)))


@router.get("/v1/patrols/{patrol_id}", **policy(READERS))
def get_patrol(
    session: SessionDep,
    principal: Annotated[Principal, Depends(READERS)],
    patrol_id: Annotated[int, PATROL_ID],
) -> JSONResponse:
    """A patrol with its track (GeoJSON LineString, WGS84): yours, or one of your region as a dispatcher."""
    return JSONResponse(jsonable_encoder(patrol_view(visible_patrol(session, patrol_id, principal))))


@router.get("/v1/stats/patrol-coverage", responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
            **policy(COVERAGE_READERS))  # fmt: skip
def get_patrol_coverage(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(COVERAGE_READERS)],
    week: Annotated[str | None, Query(pattern=r"^[0-9]{4}-W[0-9]{2}$", description="ISO week, e.g. 2026-W49")] = None,
    region: Annotated[str | None, Query(pattern=r"^[0-9]{12}([0-9]{3})?$", description="only this subtree")] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Response:
    """Each grid's share of area within 30 m of the week's patrol tracks (metric CRS), in your scope."""
    settings: PatrolSettings = request.app.state.patrol_settings
    label, start, end = week_bounds(week, datetime.now(UTC))
    version = _version_in_force(session)
    epsg = city_metric_epsg(session, request.app.state.routing_settings.metric_crs)
    grids = grid_scope_condition(principal) & grid_subtree(session, region)
    rows = patrol_coverage(session, version, grids, start, end, settings, epsg)
    if format == "csv":
        return Response(rows_csv(rows, COVERAGE_COLUMNS), media_type="text/csv; charset=utf-8")
    body = {"week": label, "from": start, "to": end, "cover_m": settings.cover_m, "grids": rows}
    return JSONResponse(jsonable_encoder(body))


def _version_in_force(session: Session) -> int:
    version = current_version_id(session)
    if version is None:
        raise NoVersionInForce("no boundary version is in force yet: publish one first")
    return version
