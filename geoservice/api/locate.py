"""``/v1/locate``: which grid, community, town, station and posts serve a point ("which grid am I in").

GET answers one point; POST up to ``max_batch`` points (``{"crs", "points": [[lon, lat], …]}`` or a
GeoJSON FeatureCollection of Points), in order, each an answer or ``{"error": problem}``; the public
up to ``public_max_batch``, each point counted by the public rate limit. Staff answers name the
grid's team; the public's carry the service phone instead (docs/security.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.datastructures import State

from geoservice.api.problems import ProblemError, problem_error
from geoservice.auth.policy import EVERYONE, allow, charge_public, policy
from geoservice.auth.users import Principal
from geoservice.boundaries.versions import NoVersionInForce, hold_routing
from geoservice.inputs import Name, ZonedTime, text_problem
from geoservice.routing.router import Location, Region, Router
from layers.crs import InvalidCoordinates, on_earth, parse_crs, point_to_wgs84, to_wgs84
from layers.models import Role

router = APIRouter(prefix="/v1/locate", tags=["locate"])


class PointIn(BaseModel):
    """The point as the caller gave it."""

    lon: float
    lat: float
    crs: str


class Named(BaseModel):
    """A region or version by code (or id) and name."""

    code: str
    name: str


class GridOut(Named):
    """The grid, with its team (一格一警) for staff: the public gets no names, only the service phone."""

    workers: list[str] | None = Field(None, description="staff only")
    officer: str | None = Field(None, description="staff only")


class StationOut(Named):
    """The responsible police station: by jurisdiction, else the nearest."""

    by: str = Field(description="'jurisdiction' or 'nearest'")
    distance_m: float


class PostOut(Named):
    """The nearest post of a level."""

    distance_m: float
    within_ring: bool


class VersionOut(BaseModel):
    """The boundary version that answered."""

    id: int
    name: str


class LocateAnswer(BaseModel):
    """The design's locate answer."""

    point: PointIn
    version: VersionOut
    grid: GridOut
    community: Named | None
    town: Named | None
    city: Named | None
    station: StationOut | None
    posts: dict[str, PostOut | None]
    snapped_m: float | None
    service_phone: str = Field(description="whom the public calls about this place (GEOSERVICE_PUBLIC_SERVICE_PHONE)")


ANYONE = allow(EVERYONE)
Caller = Annotated[Principal, Depends(ANYONE)]


@router.get(
    "",
    response_model=LocateAnswer,
    responses={404: {"description": "outside every grid"}},
    **policy(ANYONE),
)
async def locate_one(
    request: Request,
    who: Caller,
    lon: Annotated[float, Query(ge=-180, le=180, description="longitude in the given CRS")],
    lat: Annotated[float, Query(ge=-90, le=90, description="latitude in the given CRS")],
    crs: Annotated[Name, Query(description="wgs84, cgcs2000, gcj02, bd09 or EPSG:n")] = "wgs84",
    at: Annotated[ZonedTime | None, Query(description="answer from the version in force then")] = None,
) -> JSONResponse:
    """Which grid (and community, town, station, posts) a point is in."""
    # The current router answers in ~20 µs without I/O, so it runs on the event loop; only a past
    # instant may need the database (to build that version's router) and goes to a thread.
    # While a newly published version's router is being built, the wait for it goes to a thread too.
    fast = at is None and not request.app.state.routers.behind()
    router_ = locate_router(request, None) if fast else await run_in_threadpool(locate_router, request, at)
    location = router_.locate(*point_to_wgs84(lon, lat, crs))
    answer = answer_of(location, router_, {"lon": lon, "lat": lat, "crs": crs}, audience_of(request.app.state, who))
    if "error" in answer:
        raise ProblemError(**answer["error"])
    return JSONResponse(answer)  # built to the LocateAnswer shape already: no second validation pass


@router.post(
    "",
    responses={200: {"description": "one answer or error per point, in order"}},
    **policy(ANYONE),
)
def locate_many(
    request: Request,
    who: Caller,
    body: Annotated[dict[str, Any], Body(examples=[{"crs": "gcj02", "points": [[120.574, 32.389]]}])],
    crs: Annotated[
        Name | None, Query(description="the points' CRS, as the body's crs member; when both are given they must agree")
    ] = None,
    at: Annotated[ZonedTime | None, Query(description="answer from the version in force then")] = None,
) -> JSONResponse:
    """Many points in one request (``{"crs", "points"}`` or a GeoJSON FeatureCollection).

    Staff send up to ``GEOSERVICE_MAX_BATCH`` points; the public up to ``GEOSERVICE_PUBLIC_MAX_BATCH``,
    and each point counts against its rate limit (the request itself counted one already). The CRS is
    the body's ``crs`` or the query's (``?crs=gcj02``): both given and naming different systems is a
    422, since either answer could be wrong by hundreds of metres. An item that is not a pair of
    finite numbers gets its error in its place; the others are still answered.
    """
    audience = audience_of(request.app.state, who)
    state = request.app.state
    limit = state.routing_settings.max_batch if audience.staff else state.operations.public_max_batch
    body_crs, raw = _batch_points(body, limit)
    given = _batch_crs(body_crs, crs)
    charge_public(request, who, len(raw) - 1)
    router_ = locate_router(request, at)
    system = parse_crs(given)  # UnknownCRSError → 422 (geoservice.api.problems)
    pairs = [_pair(item) for item in raw]
    xy = np.asarray([p or (np.nan, np.nan) for p in pairs], dtype=np.float64).reshape(-1, 2)
    with np.errstate(invalid="ignore"):
        lon, lat = to_wgs84(xy[:, 0], xy[:, 1], system)
        # Each point is answered on its own: one given beyond ±180/±90 (in any CRS) or converted to
        # non-finite numbers gets its error in its place, and the rest of the batch is still answered.
        usable = on_earth(xy[:, 0], xy[:, 1]) & np.isfinite(lon) & np.isfinite(lat)
    results = []
    for k, (pair, x, y, ok) in enumerate(zip(pairs, lon, lat, usable, strict=True)):
        if pair is None:
            results.append({"error": {"status": 422, "title": "Invalid point",
                                      "detail": f"point {k} is not a [lon, lat] pair of finite numbers"}})  # fmt: skip
        elif not ok:
            results.append({"error": _bad_point(*pair)})
        else:
            point = {"lon": pair[0], "lat": pair[1], "crs": given}
            results.append(answer_of(router_.locate(float(x), float(y)), router_, point, audience))
    return JSONResponse({"results": results})


def _batch_crs(body_crs: str | None, query_crs: str | None) -> str:
    """The one CRS of a batch: the body's, the query's, or both when they name the same system."""
    if body_crs is None or query_crs is None:
        return body_crs or query_crs or "wgs84"
    if parse_crs(body_crs) != parse_crs(query_crs):
        raise ProblemError(422, "Conflicting CRS", f"the query says crs={query_crs} but the body says "
                           f"{body_crs!r}; give one, or the same in both")  # fmt: skip
    return body_crs


def _pair(item: Any) -> tuple[float, float] | None:
    """``[lon, lat]`` of finite numbers, or None."""
    if (
        not isinstance(item, list | tuple) or len(item) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in item)
    ):  # fmt: skip
        return None
    return float(item[0]), float(item[1])


@dataclass(frozen=True)
class Audience:
    """Who an answer is for: staff see the grid's team by name; the public a service phone instead."""

    staff: bool
    service_phone: str


def audience_of(state: State, who: Principal) -> Audience:
    """Staff see the grid's team; the public, signed in or not, the service phone."""
    return Audience(who.role != Role.public, state.operations.public_service_phone)


def answer_of(location: Location, router_: Router, point: dict[str, Any], audience: Audience) -> dict[str, Any]:
    """The design's JSON answer, or ``{"error": problem}`` when no grid is within tolerance."""
    if location.grid is None:
        nearest = location.nearest_grid
        detail = (
            f"the point is {location.nearest_grid_m:,.0f} m from the nearest grid ({nearest.code}), "
            f"beyond the snap tolerance of {router_.snap_tolerance_m:,.0f} m"
            if nearest
            else "no grid is loaded in this version"
        )
        return {
            "error": {
                "status": 404, "title": "Outside every grid", "detail": detail, "point": point,
                "nearest_grid": {"code": nearest.code, "name": nearest.name} if nearest else None,
                "distance_m": _round(location.nearest_grid_m),
            }
        }  # fmt: skip
    grid = location.grid
    return {
        "point": point,
        "version": {"id": router_.version_id, "name": router_.version_name},
        "grid": {"code": grid.code, "name": grid.name}
        | ({"workers": list(grid.workers), "officer": grid.officer} if audience.staff else {}),
        "community": _named(location.community),
        "town": _named(location.town),
        "city": _named(location.city),
        "station": None
        if location.station is None
        else {
            "code": location.station.code,
            "name": location.station.name,
            "by": location.station.by,
            "distance_m": _round(location.station.distance_m),
        },  # fmt: skip
        "posts": {
            level: None
            if post is None
            else {
                "code": post.code,
                "name": post.name,
                "distance_m": _round(post.distance_m),
                "within_ring": post.within_ring,
            }  # fmt: skip
            for level, post in location.posts.items()
        },
        "snapped_m": _round(location.snapped_m),
        "service_phone": audience.service_phone,
    }


def _named(region: Region | None) -> dict[str, str] | None:
    return None if region is None else {"code": region.code, "name": region.name}


def _round(metres: float | None) -> float | None:
    return None if metres is None else round(metres, 1)


def report_router(request: Request, session: Session) -> Router:
    """The router a report is routed by, chosen under the routing lock (``boundaries.versions.hold_routing``).

    The lock is held until the report's transaction ends, so a publish or a worker's catch-up after
    a publish waits for this report and then routes it again if it was routed by a retired version.
    """
    hold_routing(session)
    return locate_router(request, None)


def locate_router(request: Request, at: datetime | None) -> Router:
    """The router of the version in force at ``at`` (now when None), or a problem saying there is none."""
    if at is not None and at.tzinfo is None:
        raise ProblemError(422, "Invalid request", "at needs a time zone, e.g. 2025-03-01T12:00:00+08:00")
    try:
        return request.app.state.routers.at(at)
    except NoVersionInForce as exc:
        raise ProblemError(404 if at else 503, "No boundary version in force", str(exc)) from exc


def _bad_point(lon: float, lat: float) -> dict[str, Any]:
    problem = problem_error(InvalidCoordinates.out_of_range(lon, lat))
    return {"status": problem.status, "title": problem.title, "detail": problem.detail}


def _batch_points(body: dict[str, Any], limit: int) -> tuple[str | None, list[Any]]:
    """The body's ``crs`` (None when absent) and its items: ``{"crs", "points"}`` or a FeatureCollection of Points.

    The body is any JSON object, so its shape is checked before it is used: no point list, or a
    feature that is not a Point, is a 422 for the request; each item is checked by the caller (a
    bad one is an error in its place: ``_pair``).
    """
    crs = body.get("crs")
    if crs is not None and (not isinstance(crs, str) or text_problem(crs) is not None):
        raise ProblemError(422, "Invalid request", "crs must be a name such as 'wgs84' or 'gcj02'")
    if body.get("type") == "FeatureCollection":
        raw = _feature_points(body.get("features"))
    elif "points" in body:
        raw = body["points"]
    else:
        raise ProblemError(
            422,
            "Invalid request",
            'send {"crs": ..., "points": [[lon, lat], ...]} or a GeoJSON FeatureCollection',
        )
    if not isinstance(raw, list) or not raw:
        raise ProblemError(422, "Invalid request", "no points given")
    if len(raw) > limit:
        raise ProblemError(413, "Too many points", f"{len(raw):,} points; at most {limit:,} per request")
    return crs, raw


def _feature_points(features: Any) -> list[Any]:
    """The coordinates of each Point feature, in order; None for a feature that is not one."""
    if not isinstance(features, list):
        raise ProblemError(422, "Invalid request", "a FeatureCollection's features must be a list of features")
    raw = []
    for feature in features:
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        # Not a Point feature: no pair, so an error in its place (as a bad pair of numbers).
        point = isinstance(geometry, dict) and geometry.get("type") == "Point"
        raw.append(geometry.get("coordinates") if point else None)
    return raw
