"""Open311 GeoReport v2 (JSON): ``services.json``, ``requests.json`` (GET, POST), ``requests/{id}.json``.

Errors follow the spec, not RFC 7807: a JSON list of ``{code, description}`` with the HTTP status —
400 for a missing or bad argument, 403 for an unknown or disabled ``api_key``, 404 for an unknown
request. Arguments are taken as plain strings and checked here, so that no framework error format
leaks through. Reading is open to everyone; a POST needs a client's ``api_key``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from geoservice.api.locate import report_router
from geoservice.api.problems import ANSWERED, problem_error
from geoservice.auth.policy import EVERYONE, policy
from geoservice.auth.users import Principal
from geoservice.events.duplicates import possible_duplicates
from geoservice.events.report import report_event
from geoservice.inputs import text_problem
from geoservice.open311 import mapping
from geoservice.open311.clients import client_name
from geoservice.open311.requests import find_requests, services
from layers.models import Role

router = APIRouter(prefix="/open311/v2", tags=["open311"])
JSON_LIST = {"content": {"application/json": {}}}
ERRORS = {400: {"description": "bad argument"}, 403: {"description": "bad api_key"}, 404: {"description": "unknown"}}


class Open311Error(Exception):
    """An error to answer in GeoReport's format."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code, self.description = code, description


@router.get("/services.json", responses={200: JSON_LIST}, **policy(EVERYONE))
def get_services(request: Request) -> JSONResponse:
    """Every event subcategory as a service; ``group`` is its class (社会治安, 城市管理 …)."""
    with request.app.state.sessions() as session:
        rows = services(session)
    return JSONResponse([mapping.service(r["code"], r["name"], r["class_name"], r["accept_hours"], r["handle_hours"])
                         for r in rows])  # fmt: skip


@router.get("/requests.json", responses={200: JSON_LIST, **ERRORS}, **policy(EVERYONE))
def get_requests(
    request: Request,
    service_request_id: str | None = None,
    service_code: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    status: str | None = None,
    jurisdiction_id: str | None = None,
) -> JSONResponse:
    """Service requests by id list, or by service, dates (default: the last 90 days) and open/closed."""
    try:
        for name, value in (("service_code", service_code), ("start_date", start_date), ("end_date", end_date),
                            ("status", status), ("jurisdiction_id", jurisdiction_id)):  # fmt: skip
            _plain(value, name)
        ids = [_request_id(i) for i in _listed(service_request_id)] or None
        statuses = _listed(status)
        if set(statuses) - {"open", "closed"}:
            raise Open311Error(400, f"status must be open and/or closed, not {status!r}")
        start, end = _date(start_date, "start_date"), _date(end_date, "end_date")
        with request.app.state.sessions() as session:
            rows = find_requests(session, ids=ids, service_codes=_listed(service_code) or None, statuses=statuses,
                                 start=start, end=end, now=datetime.now(UTC))  # fmt: skip
        return JSONResponse([mapping.service_request(r) for r in rows])
    except Open311Error as exc:
        return _error(exc)


@router.get("/requests/{service_request_id}.json", responses={200: JSON_LIST, **ERRORS}, **policy(EVERYONE))
def get_request(request: Request, service_request_id: str) -> JSONResponse:
    """One service request (as a list of one, as the spec has it)."""
    try:
        event_id = _request_id(service_request_id)
        with request.app.state.sessions() as session:
            rows = find_requests(session, ids=[event_id], now=datetime.now(UTC))
        if not rows:
            raise Open311Error(404, f"no service request {service_request_id}")
        return JSONResponse([mapping.service_request(rows[0])])
    except Open311Error as exc:
        return _error(exc)


@router.post("/requests.json", status_code=201, responses={201: JSON_LIST, **ERRORS}, **policy(EVERYONE))
def post_request(
    request: Request,
    api_key: Annotated[str | None, Form()] = None,
    service_code: Annotated[str | None, Form()] = None,
    lat: Annotated[str | None, Form()] = None,
    long: Annotated[str | None, Form()] = None,
    address_string: Annotated[str | None, Form()] = None,
    description: Annotated[str | None, Form()] = None,
    first_name: Annotated[str | None, Form()] = None,
    last_name: Annotated[str | None, Form()] = None,
    phone: Annotated[str | None, Form()] = None,
    media_url: Annotated[str | None, Form()] = None,
    idempotency_key: Annotated[str | None, Form()] = None,
    idempotency_header: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Create a service request (form-encoded, as the spec says); it is routed like every report.

    ``idempotency_key`` (or the ``Idempotency-Key`` header) is an extension: a client that retries
    with the same key gets the same request back instead of a second one.
    """
    try:
        if not api_key:
            raise Open311Error(400, "api_key was not provided: ask the city for one (geoservice open311 add-client)")
        _plain(api_key, "api_key")
        if idempotency_key and idempotency_header and idempotency_key != idempotency_header:
            raise Open311Error(400, "the Idempotency-Key header and the idempotency_key field differ; send one key")
        if not service_code:
            raise Open311Error(400, "service_code was not provided: see services.json")
        if lat is None or long is None:
            detail = "address_string alone cannot be placed" if address_string else "lat and long were not provided"
            raise Open311Error(400, f"{detail}: give lat and long (WGS84)")
        lon_, lat_ = _number(long, "long"), _number(lat, "lat")
        name = " ".join(p for p in (last_name, first_name) if p) or None
        with request.app.state.sessions() as session, session.begin():
            client = _client(session, api_key)
            router_ = report_router(request, session)
            event, _ = report_event(
                session, router_, lon=lon_, lat=lat_, crs="wgs84", category_code=service_code,
                description=description or "", source="public", reporter_name=name, reporter_phone=phone or None,
                photos=[{"url": media_url}] if media_url else None,
                idempotency_key=idempotency_key or idempotency_header,
                actor=Principal(f"open311:{client}", Role.public), client_id=client,
            )  # fmt: skip
            duplicates = possible_duplicates(
                session, lon=event["lon"], lat=event["lat"], category_code=event["category_code"],
                now=datetime.now(UTC), scope=None, exclude_id=event["id"],
            )  # fmt: skip
        notice = f"已受理，分派至 {event['department_code'] or '指挥中心'}；网格 {event['grid_code']}"
        if duplicates:
            notice += f"；附近已有 {len(duplicates)} 条相似报告"
        receipt = {"service_request_id": str(event["id"]), "service_notice": notice, "account_id": None,
                   "possible_duplicates": [{"service_request_id": str(d["id"]), "distance_m": d["distance_m"]}
                                           for d in duplicates]}  # fmt: skip
        return JSONResponse(jsonable_encoder([receipt]), status_code=201)
    except Open311Error as exc:
        return _error(exc)
    except ANSWERED as exc:
        problem = problem_error(exc)
        return _error(Open311Error(400 if problem.status == 422 else problem.status, problem.detail))


def _client(session: Session, api_key: str) -> str:
    name = client_name(session, api_key)
    if name is None:
        raise Open311Error(403, "api_key was not valid (unknown or disabled)")
    return name


def _plain(value: str | None, name: str) -> None:
    """An argument with a control character (a NUL cannot even be stored) is a 400 naming it."""
    if value is not None and (why := text_problem(value)) is not None:
        raise Open311Error(400, f"{name} {why}")


def _listed(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _request_id(value: str) -> int:
    if not value.isascii() or not value.isdigit() or not 0 < int(value) < 2**63:
        raise Open311Error(400, f"service_request_id must be a positive number, not {value!r}")
    return int(value)


def _number(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise Open311Error(400, f"{name} must be a number, not {value!r}") from None
    limit = 180 if name == "long" else 90
    if not -limit <= number <= limit:
        raise Open311Error(400, f"{name} {value} is out of range (WGS84 degrees)")
    return number


def _date(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(400, f"{name} must be ISO 8601 with a zone, e.g. 2026-11-01T00:00:00+08:00") from None
    if moment.tzinfo is None:
        raise Open311Error(400, f"{name} needs a time zone, e.g. 2026-11-01T00:00:00+08:00")
    return moment


def _error(exc: Open311Error) -> JSONResponse:
    return JSONResponse(mapping.error(exc.code, exc.description), status_code=exc.code)
