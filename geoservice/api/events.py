"""``/v1/events``: report, queues and search, one event, its workflow steps and its audit log.

Writes manage their own transaction inside the handler, so the answer is sent only after the
commit: a client that got a 201 has an event, and a retried report finds it. The deadline sweep
runs beside the app (this router's lifespan) every ``GEOSERVICE_EVENT_SWEEP_S`` seconds; it also
removes the media store's staged files older than ``GEOSERVICE_MEDIA_STAGED_MAX_AGE_S``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from geoservice.api.deps import SessionDep
from geoservice.api.problems import ProblemError
from geoservice.auth.policy import EVERYONE, allow, policy
from geoservice.auth.scope import scope_of
from geoservice.auth.users import Principal
from geoservice.events.deadlines import COLOURS
from geoservice.events.duplicates import duplicates_of
from geoservice.events.follow import master_block
from geoservice.events.intake import Receipt, ReportIntake
from geoservice.events.merge import merge_event
from geoservice.events.queries import EventFilters, event_log, event_view, fetch_event, list_events
from geoservice.events.report import ReportRequest
from geoservice.events.sweep import PeriodicSweep
from geoservice.events.transitions import apply_transition
from geoservice.events.workflow import ACTIONS, STATUSES, STEPS
from geoservice.inputs import AwareTime, FreeText, HttpUrl, Name, RequestBody, ZonedTime
from geoservice.settings import EventSettings
from layers.crs import from_wgs84, parse_crs
from layers.models import Role

GEOJSON = "application/geo+json"
EVENT_ID = Path(ge=1, le=2**63 - 1, description="event id", examples=[1])


@asynccontextmanager
async def sweep_alongside(app: FastAPI) -> AsyncIterator[None]:
    """Run the deadline sweep (with the media store's sweep of staged files) and the report intake's writers."""
    settings: EventSettings = app.state.event_settings
    sweep = PeriodicSweep(app.state.engine, settings.event_sweep_s, settings, media=app.state.media_store,
                          staged_max_age_s=app.state.media_settings.media_staged_max_age_s)  # fmt: skip
    sweep.start()
    intake = app.state.report_intake = _new_intake(app)
    intake.start()
    yield
    await asyncio.to_thread(intake.stop)  # the reports still queued are stored first
    sweep.stop()


router = APIRouter(prefix="/v1/events", tags=["events"], lifespan=sweep_alongside)

REPORTERS = allow(EVERYONE)
READERS = allow(EVERYONE - {Role.planner})
ACTORS = allow(*set().union(*(s.roles for s in STEPS.values())))
MERGERS = allow(*STEPS["merge"].roles)
DUPLICATE_READERS = allow(Role.admin, Role.supervisor, Role.dispatcher)


class PhotoIn(RequestBody):
    """Metadata of a photo stored elsewhere (the mobile client uploads files to object storage)."""

    url: HttpUrl = Field(max_length=500, description="an absolute http(s) link")
    caption: Name | None = Field(None, max_length=500)
    taken_at: AwareTime | None = Field(None, description="when it was taken, with its zone")


class EventCreate(RequestBody):
    """A report: where, what, who; the same ``idempotency_key`` twice stores one event."""

    lon: float = Field(description="longitude (or easting) in crs")
    lat: float = Field(description="latitude (or northing) in crs")
    crs: Name = Field("wgs84", max_length=30, description="wgs84, cgcs2000, gcj02, bd09 or EPSG:n")
    category: Name = Field(min_length=1, max_length=80, examples=["city_management.garbage"])
    description: FreeText = Field("", max_length=2000)
    source: Name = Field("public", description="public, grid_worker, hotline_12345 or video")
    priority: Name = Field("normal", description="normal or urgent")
    reporter_name: Name | None = Field(None, max_length=100)
    reporter_phone: Name | None = Field(None, max_length=50)
    photos: list[PhotoIn] = Field(default_factory=list, max_length=9)
    occurred_at: ZonedTime | None = None
    idempotency_key: Name | None = Field(None, min_length=1, max_length=120)


class TransitionIn(RequestBody):
    """One workflow step; ``expected_version`` is the ``row_version`` you read (optimistic lock)."""

    action: Name = Field(description=", ".join(ACTIONS))
    expected_version: int = Field(ge=1, le=2**31 - 1)
    note: FreeText = Field("", max_length=2000)
    department_code: Name | None = Field(None, max_length=50, description="dispatch: the (lead) department")
    co_departments: list[Annotated[Name, Field(max_length=50)]] | None = Field(
        None, max_length=10, description="dispatch: co-handling departments, each gets its own task"
    )
    handler_username: Name | None = Field(None, max_length=100, description="dispatch: a handler of it")
    satisfaction: int | None = Field(None, ge=1, le=5, description="evaluate: 1 (poor) to 5 (good)")
    comment: FreeText | None = Field(None, max_length=2000, description="evaluate: the reporter's words")
    reason: FreeText | None = Field(None, max_length=2000, description="escalate/reject/return/reopen: why")
    photos: list[PhotoIn] = Field(default_factory=list, max_length=9, description="feedback: evidence of the work")
    public_note: bool = Field(False, description="the note is a progress note the reporter and Open311 may read")


class MergeIn(RequestBody):
    """Merge this report into ``into``, its master (an open event in your scope that is not itself merged)."""

    into: int = Field(ge=1, le=2**63 - 1, description="the master event's id")
    note: FreeText = Field("", max_length=2000)


@router.post("", status_code=201, responses={200: {"description": "the same report again (idempotency key)"}},
             **policy(REPORTERS))  # fmt: skip
async def post_event(
    request: Request,
    body: EventCreate,
    principal: Annotated[Principal, Depends(REPORTERS)],
    idempotency_key: Annotated[Name | None, Header(max_length=120)] = None,
) -> JSONResponse:
    """Report an event; it is routed (grid, community, town, station, department) as it is stored.

    The key may come in the body or the ``Idempotency-Key`` header; both, and different, is a 422
    (which one was meant?). An anonymous caller's keys are kept apart per client address.
    Async: the report is checked here and stored by the intake's writers in a batch with the reports
    that arrived beside it (``events.intake``); the answer waits for that batch's commit.
    """
    if body.idempotency_key and idempotency_key and body.idempotency_key != idempotency_key:
        raise ProblemError(422, "Invalid request", "the Idempotency-Key header and the body's idempotency_key differ; "
                           "send one key, or the same in both")  # fmt: skip
    client = request.client.host if request.client else None
    report = report_of(body, principal, body.idempotency_key or idempotency_key, client)
    receipt = await intake_of(request.app).submit(report)
    return answer_of(request.app, principal, receipt)


def report_of(body: EventCreate, principal: Principal, key: str | None, client: str | None) -> ReportRequest:
    """What the intake stores for a report's body (the route's and ``api.report_hits``' one reading)."""
    return ReportRequest(
        lon=body.lon, lat=body.lat, crs=body.crs, category_code=body.category, description=body.description,
        source=body.source, priority=body.priority, reporter_name=body.reporter_name,
        reporter_phone=body.reporter_phone, photos=[p.model_dump(mode="json", exclude_none=True) for p in body.photos],
        idempotency_key=key, actor=principal, occurred_at=body.occurred_at, anonymous_client=client,
    )  # fmt: skip


def answer_of(app: FastAPI, principal: Principal, receipt: Receipt) -> Response:
    """A stored report's answer: 201 with its view and receipt, or 200 for the same report again."""
    event = receipt.event
    view = {**event_view(event, principal, datetime.now(UTC), app.state.event_settings), **receipt.extra}
    return Response(_json(view), status_code=201 if receipt.created else 200, media_type="application/json",
                    headers={"Location": f"/v1/events/{event['id']}"})  # fmt: skip


def _json(content: dict[str, Any]) -> bytes:
    """The JSON ``JSONResponse(jsonable_encoder(content))`` sends, without walking the answer in Python.

    A report's answer and a page of events are plain JSON types and datetimes; ``jsonable_encoder``
    visited their values one by one (a quarter of the report endpoint's time on the event loop,
    measured), and ``json.dumps`` with a hook for the datetimes still took about a tenth of a page's
    time: orjson writes the same values (datetimes as ``isoformat`` writes them, UTF-8, no spaces;
    floats in shortest form, ``1e-7`` where Python writes ``1e-07``) in C. Anything else the answer
    might hold goes the old way.
    """
    try:
        return orjson.dumps(content)
    except TypeError:  # orjson.JSONEncodeError: a value orjson does not know
        text = json.dumps(jsonable_encoder(content), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8")


def intake_of(app: FastAPI) -> ReportIntake:
    """The app's report intake (made by this router's lifespan; made here for an app served without one)."""
    intake = getattr(app.state, "report_intake", None)
    if intake is None:
        intake = app.state.report_intake = _new_intake(app)
    return intake


def _new_intake(app: FastAPI) -> ReportIntake:
    settings: EventSettings = app.state.event_settings
    return ReportIntake(app.state.sessions, app.state.routers, app.state.auth_settings.signing_key,
                        writers=settings.intake_writers, max_batch=settings.intake_max_batch)  # fmt: skip


@router.get("", responses={200: {"content": {GEOJSON: {}}}}, **policy(READERS))
def get_events(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(READERS)],
    status: Annotated[Name | None, Query(description="comma-separated states", max_length=200)] = None,
    warning: Annotated[Name | None, Query(description="comma-separated: none, blue, yellow, red")] = None,
    category: Annotated[Name | None, Query(max_length=80, description="a class includes its subcategories")] = None,
    department: Annotated[Name | None, Query(max_length=50)] = None,
    region: Annotated[str | None, Query(pattern=r"^[0-9]{12}([0-9]{3})?$", description="region or grid code")] = None,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat (WGS84)")] = None,
    reported_from: Annotated[ZonedTime | None, Query(alias="from")] = None,
    reported_to: Annotated[ZonedTime | None, Query(alias="to")] = None,
    q: Annotated[FreeText | None, Query(max_length=200, description="text in the description")] = None,
    escalation_level: Annotated[Literal["grid", "community", "town", "city"] | None, Query()] = None,
    owner_kind: Annotated[Literal["unit", "department"] | None, Query(description="who holds it now")] = None,
    owner_code: Annotated[Name | None, Query(max_length=50, description="a region/grid or department code")] = None,
    owner: Annotated[Literal["mine"] | None, Query(description="mine: the events you act for now")] = None,
    sort: Annotated[Name, Query(description="reported_at, occurred_at, updated_at or id; '-' descending")] = (
        "-reported_at"
    ),
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[Name | None, Query(max_length=500)] = None,
    format: Annotated[Literal["json", "geojson"] | None, Query(description="default: by Accept")] = None,
    crs: Annotated[str, Query(description="output coordinates: wgs84, gcj02 or bd09")] = "wgs84",
) -> Response:
    """The caller's queue: events in scope, filtered, sorted, a page at a time (``next_cursor``)."""
    settings: EventSettings = request.app.state.event_settings
    filters = EventFilters(
        status=_listed(status, STATUSES, "status"), warning=_listed(warning, COLOURS, "warning"),
        category=category, department=department, region=region, bbox=_bbox(bbox),
        reported_from=_zoned(reported_from, "from"), reported_to=_zoned(reported_to, "to"), text=q,
        escalation_level=escalation_level, owner_kind=owner_kind, owner_code=owner_code,
        owner_of=principal if owner == "mine" else None,
    )  # fmt: skip
    now = datetime.now(UTC)
    page = list_events(session, scope_of(principal), filters, now=now, settings=settings, sort=sort, limit=limit,
                       cursor=cursor)  # fmt: skip
    views = [_in_crs(event_view(e, principal, now, settings), crs) for e in page.items]
    wants_geojson = format == "geojson" or (format is None and GEOJSON in request.headers.get("accept", ""))
    # ``_json``, not ``jsonable_encoder``: walking a page of 50 events value by value took 8-12 ms,
    # more than the query itself on a million events (bench.big_events).
    if wants_geojson:
        body = {
            "type": "FeatureCollection",
            "features": [_feature(v) for v in views],
            "next_cursor": page.next_cursor,
        }
        return Response(_json(body), media_type=GEOJSON)
    return Response(_json({"items": views, "next_cursor": page.next_cursor}), media_type="application/json")


@router.get("/{event_id}", **policy(READERS))
def get_event(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(READERS)],
    event_id: Annotated[int, EVENT_ID],
    crs: Annotated[str, Query(description="output coordinates: wgs84, gcj02 or bd09")] = "wgs84",
) -> JSONResponse:
    """One event, if it is in your scope (otherwise it does not exist for you: 404); merged: with its ``master``."""
    event = _visible(session, event_id, principal)
    view = event_view(event, principal, datetime.now(UTC), request.app.state.event_settings)
    if event["merged_into"] is not None:
        view["master"] = master_block(session, event["merged_into"])
    return JSONResponse(jsonable_encoder(_in_crs(view, crs)))


@router.post("/{event_id}/transitions", **policy(ACTORS))
def post_transition(
    request: Request,
    principal: Annotated[Principal, Depends(ACTORS)],
    event_id: Annotated[int, EVENT_ID],
    body: TransitionIn,
) -> JSONResponse:
    """Take one step of the closed loop; 409 names what is allowed, or says the event changed meanwhile."""
    with request.app.state.sessions() as session, session.begin():
        event = apply_transition(
            session, event_id, body.action, principal, body.note, body.expected_version,
            department_code=body.department_code, handler_username=body.handler_username,
            satisfaction=body.satisfaction, comment=body.comment, reason=body.reason,
            co_departments=body.co_departments,
            photos=[p.model_dump(mode="json", exclude_none=True) for p in body.photos],
            public_note=body.public_note,
        )  # fmt: skip
    view = event_view(event, principal, datetime.now(UTC), request.app.state.event_settings)
    return JSONResponse(jsonable_encoder(view))


@router.get("/{event_id}/duplicates", **policy(DUPLICATE_READERS))
def get_duplicates(
    session: SessionDep,
    principal: Annotated[Principal, Depends(DUPLICATE_READERS)],
    event_id: Annotated[int, EVENT_ID],
) -> JSONResponse:
    """Open events of the same category family near this one (per-category radius and window), nearest first."""
    event = _visible(session, event_id, principal)
    found = duplicates_of(session, event, scope_of(principal), datetime.now(UTC))
    return JSONResponse(jsonable_encoder({"event_id": event_id, "possible_duplicates": found}))


@router.post("/{event_id}/merge", **policy(MERGERS))
def post_merge(
    request: Request,
    principal: Annotated[Principal, Depends(MERGERS)],
    event_id: Annotated[int, EVENT_ID],
    body: MergeIn,
) -> JSONResponse:
    """Merge a duplicate report into its master: it ends ``merged`` and shows the master's progress."""
    with request.app.state.sessions() as session, session.begin():
        event = merge_event(session, event_id, body.into, principal, body.note)
        view = event_view(event, principal, datetime.now(UTC), request.app.state.event_settings)
        view["master"] = master_block(session, body.into)
    return JSONResponse(jsonable_encoder(view))


@router.get("/{event_id}/log", **policy(READERS))
def get_event_log(
    session: SessionDep,
    principal: Annotated[Principal, Depends(READERS)],
    event_id: Annotated[int, EVENT_ID],
) -> JSONResponse:
    """Every step of the event (who, role, when, from, to, note), oldest first; no one can edit it."""
    _visible(session, event_id, principal)
    return JSONResponse(jsonable_encoder({"event_id": event_id, "entries": event_log(session, event_id)}))


def _visible(session: Any, event_id: int, principal: Principal) -> dict[str, Any]:
    event = fetch_event(session, event_id, scope_of(principal))
    if event is None:
        raise ProblemError(404, "No such event", f"there is no event {event_id} that you may see")
    return event


def _listed(value: str | None, known: tuple[str, ...], name: str) -> tuple[str, ...]:
    if not value:
        return ()
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [v for v in items if v not in known]
    if unknown:
        raise ProblemError(422, "Invalid request", f"unknown {name} {', '.join(unknown)}; known: {', '.join(known)}")
    return items


def _bbox(value: str | None) -> tuple[float, float, float, float] | None:
    if not value:
        return None
    try:
        minx, miny, maxx, maxy = (float(v) for v in value.split(","))
    except ValueError as exc:
        raise ProblemError(422, "Invalid bbox", "bbox is minlon,minlat,maxlon,maxlat: four numbers") from exc
    if not (-180 <= minx < maxx <= 180 and -90 <= miny < maxy <= 90):
        raise ProblemError(422, "Invalid bbox", "bbox needs min < max, lon within ±180 and lat within ±90 (WGS84)")
    return minx, miny, maxx, maxy


def _zoned(moment: datetime | None, name: str) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        raise ProblemError(422, "Invalid request", f"{name} needs a time zone, e.g. 2026-11-01T00:00:00+08:00")
    return moment


def _in_crs(view: dict[str, Any], crs: str) -> dict[str, Any]:
    """Coordinates for a Chinese base map when asked (GCJ-02/BD-09); WGS84 otherwise."""
    if crs == "wgs84":
        return view
    parsed = parse_crs(crs)  # an unknown name is a 422 problem (api.problems)
    if parsed.name not in ("wgs84", "cgcs2000", "gcj02", "bd09"):
        raise ProblemError(422, "Unsupported output CRS", "events are answered in wgs84, gcj02 or bd09")
    x, y = from_wgs84([view["lon"]], [view["lat"]], parsed)
    return {**view, "lon": float(x[0]), "lat": float(y[0]), "crs": parsed.name}


def _feature(view: dict[str, Any]) -> dict[str, Any]:
    properties = {k: v for k, v in view.items() if k not in ("lon", "lat")}
    return {
        "type": "Feature",
        "id": view["id"],
        "geometry": {"type": "Point", "coordinates": [view["lon"], view["lat"]]},
        "properties": properties,
    }
