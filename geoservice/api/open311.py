"""Open311 GeoReport v2: ``services``, ``services/{code}``, ``requests`` (GET, POST), ``requests/{id}``.

Every resource in both of the spec's formats, chosen by the suffix: ``.xml`` (the spec's default)
or ``.json``. Errors follow the spec, not RFC 7807, on every route and for every cause (a bad
argument, an unknown parameter or path, a 405, a rate limit): a list of ``{code, description}``
(in XML ``<errors><error><code>…``) in the format of the address asked, with the HTTP status — 400
for a missing or bad argument, 403 for an unknown or disabled ``api_key``, 404 for an unknown
request, service or ``jurisdiction_id``. The errors are raised as ``ProblemError`` like anywhere
else and rendered by ``open311_dialect``, which ``geoservice.app`` registers for this prefix.
Reading is open to everyone; a POST needs a client's ``api_key``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Header, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response
from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.api.locate import report_router
from geoservice.api.problems import ProblemError
from geoservice.auth.policy import EVERYONE, policy
from geoservice.auth.users import Principal
from geoservice.errors import InvalidInput
from geoservice.events.duplicates import possible_duplicates
from geoservice.events.report import report_event
from geoservice.inputs import text_problem
from geoservice.open311 import formats, mapping
from geoservice.open311.attributes import AttributeProblem, checked_answers, checked_definitions
from geoservice.open311.clients import client_name
from geoservice.open311.requests import city_jurisdiction, find_requests, services
from layers.models import Role

PREFIX = "/open311/v2"
router = APIRouter(prefix=PREFIX, tags=["open311"])
BOTH = {"content": {formats.XML: {}, formats.JSON: {}}}
ERRORS = {
    400: {"description": "a missing or bad argument", **BOTH},
    403: {"description": "an unknown or disabled api_key", **BOTH},
    404: {"description": "no such request, service or jurisdiction", **BOTH},
    "4XX": {"description": "GeoReport errors: a list of {code, description}", **BOTH},
}
Format = Annotated[Literal["xml", "json"], Path(description="xml (the spec's default) or json")]
Jurisdiction = Annotated[str | None, Query(max_length=100, description="optional: this endpoint serves one")]
ATTRIBUTE = re.compile(r"attribute\[([^\]]{1,80})\](?:\[\])?")


def bad(description: str, status: int = 400) -> ProblemError:
    """A GeoReport error (rendered by ``open311_dialect``)."""
    return ProblemError(status, "Open311 error", description)


def open311_dialect(request: Request, problem: ProblemError) -> Response:
    """Any error under ``/open311/v2`` in the spec's shape and the format of the address asked.

    GeoReport knows 400 for every bad argument, so the API's 422 becomes a 400; other statuses and
    their headers (``Allow``, ``Retry-After``) stay.
    """
    status = 400 if problem.status == 422 else problem.status
    fmt = "json" if request.url.path.endswith(".json") else "xml"  # XML is the spec's default
    body = formats.render(mapping.error(status, problem.detail), fmt, "errors")
    return Response(body, status_code=status, media_type=formats.media_type(fmt), headers=problem.headers)


def _answer(records: Any, fmt: str, resource: str, status: int = 200) -> Response:
    body = formats.render(jsonable_encoder(records), fmt, resource)
    return Response(body, status_code=status, media_type=formats.media_type(fmt))


@router.get("/services.{format}", responses={200: BOTH, **ERRORS}, **policy(EVERYONE))
def get_services(request: Request, format: Format, jurisdiction_id: Jurisdiction = None) -> Response:  # noqa: A002
    """Every event subcategory as a service; ``group`` is its class; ``metadata`` when it asks attributes."""
    with request.app.state.sessions() as session:
        _zone(request, session, jurisdiction_id)
        rows = services(session)
    return _answer([mapping.service(r["code"], r["name"], r["class_name"], r["accept_hours"], r["handle_hours"],
                                    r["attributes"]) for r in rows], format, "services")  # fmt: skip


@router.get("/services/{service_code}.{format}", responses={200: BOTH, **ERRORS}, **policy(EVERYONE))
def get_service_definition(
    request: Request,
    service_code: Annotated[str, Path(max_length=80)],
    format: Format,  # noqa: A002
    jurisdiction_id: Jurisdiction = None,
) -> Response:
    """A service's definition: the attributes it asks (an empty list when it asks none)."""
    _plain(service_code, "service_code")
    with request.app.state.sessions() as session:
        _zone(request, session, jurisdiction_id)
        rows = services(session, service_code)
    if not rows:
        raise bad(f"no service {service_code!r}: see services.{format}", 404)
    definition = {"service_code": service_code, "attributes": checked_definitions(rows[0]["attributes"])}
    return _answer(definition, format, "service_definition")


@router.get("/requests.{format}", responses={200: BOTH, **ERRORS}, **policy(EVERYONE))
def get_requests(
    request: Request,
    format: Format,  # noqa: A002
    service_request_id: Annotated[str | None, Query(max_length=2000, description="comma-separated ids")] = None,
    service_code: Annotated[str | None, Query(max_length=2000)] = None,
    start_date: Annotated[str | None, Query(max_length=40)] = None,
    end_date: Annotated[str | None, Query(max_length=40)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    jurisdiction_id: Jurisdiction = None,
) -> Response:
    """Service requests by ids, or by service, dates (default: the last 90 days) and open/closed.

    A comma-separated ``service_request_id`` list overrides every other argument, as the spec says;
    a date without a zone is the city's local time.
    """
    for name, value in (("service_request_id", service_request_id), ("service_code", service_code),
                        ("start_date", start_date), ("end_date", end_date), ("status", status)):  # fmt: skip
        _plain(value, name)
    ids = [_request_id(i) for i in _listed(service_request_id)]
    statuses = _listed(status)
    if set(statuses) - {"open", "closed"}:
        raise bad(f"status must be open and/or closed, not {status!r}")
    with request.app.state.sessions() as session:
        zone = _zone(request, session, jurisdiction_id)
        if ids:
            rows = find_requests(session, ids=ids, now=datetime.now(UTC))
        else:
            start, end = _date(start_date, "start_date", zone), _date(end_date, "end_date", zone)
            if start and end and start > end:
                raise bad("start_date is after end_date")
            rows = find_requests(session, service_codes=_listed(service_code) or None, statuses=statuses,
                                 start=start, end=end, now=datetime.now(UTC))  # fmt: skip
    return _answer([mapping.service_request(r) for r in rows], format, "requests")


@router.get("/requests/{service_request_id}.{format}", responses={200: BOTH, **ERRORS}, **policy(EVERYONE))
def get_request(
    request: Request,
    service_request_id: Annotated[str, Path(max_length=20)],
    format: Format,  # noqa: A002
    jurisdiction_id: Jurisdiction = None,
) -> Response:
    """One service request (as a list of one, as the spec has it)."""
    event_id = _request_id(service_request_id)
    with request.app.state.sessions() as session:
        _zone(request, session, jurisdiction_id)
        rows = find_requests(session, ids=[event_id], now=datetime.now(UTC))
    if not rows:
        raise bad(f"no service request {service_request_id}", 404)
    return _answer([mapping.service_request(rows[0])], format, "requests")


async def attribute_fields(request: Request) -> dict[str, list[str]]:
    """The form's ``attribute[code]`` (and ``attribute[code][]``, a multivaluelist) answers, by code.

    Their names depend on the service, so they cannot be declared as form parameters; the form is
    the one FastAPI has already read (Starlette keeps it), not read twice.
    """
    answers: dict[str, list[str]] = {}
    for key, value in (await request.form()).multi_items():
        if (found := ATTRIBUTE.fullmatch(key)) is not None and isinstance(value, str):
            answers.setdefault(found[1], []).append(value)
    return answers


@router.post("/requests.{format}", status_code=201, responses={201: BOTH, **ERRORS}, **policy(EVERYONE))
def post_request(
    request: Request,
    format: Format,  # noqa: A002
    attributes: Annotated[dict[str, list[str]], Depends(attribute_fields)],
    api_key: Annotated[str | None, Form(max_length=200)] = None,
    jurisdiction_id: Annotated[str | None, Form(max_length=100)] = None,
    service_code: Annotated[str | None, Form(max_length=80)] = None,
    lat: Annotated[str | None, Form(max_length=40)] = None,
    long: Annotated[str | None, Form(max_length=40)] = None,
    address_string: Annotated[str | None, Form(max_length=500)] = None,
    description: Annotated[str | None, Form(max_length=4000)] = None,
    first_name: Annotated[str | None, Form(max_length=100)] = None,
    last_name: Annotated[str | None, Form(max_length=100)] = None,
    phone: Annotated[str | None, Form(max_length=40)] = None,
    media_url: Annotated[str | None, Form(max_length=2000)] = None,
    idempotency_key: Annotated[str | None, Form(max_length=200)] = None,
    idempotency_header: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> Response:
    """Create a service request (form-encoded, as the spec says); it is routed like every report.

    ``attribute[code]`` fields answer the service's definition (checked, stored with the event).
    ``idempotency_key`` (or the ``Idempotency-Key`` header) is an extension: a client that retries
    with the same key gets the same request back instead of a second one.
    """
    if not api_key:
        raise bad("api_key was not provided: ask the city for one (geoservice open311 add-client)")
    _plain(api_key, "api_key")
    if idempotency_key and idempotency_header and idempotency_key != idempotency_header:
        raise bad("the Idempotency-Key header and the idempotency_key field differ; send one key")
    if not service_code:
        raise bad(f"service_code was not provided: see services.{format}")
    _plain(service_code, "service_code")
    if lat is None or long is None:
        detail = "address_string alone cannot be placed" if address_string else "lat and long were not provided"
        raise bad(f"{detail}: give lat and long (WGS84)")
    lon_, lat_ = _number(long, "long"), _number(lat, "lat")
    name = " ".join(p for p in (last_name, first_name) if p) or None
    with request.app.state.sessions() as session, session.begin():
        _zone(request, session, jurisdiction_id)
        client = _client(session, api_key)
        answers = _answers(session, service_code, attributes)
        event, _ = report_event(
            session, report_router(request, session), lon=lon_, lat=lat_, crs="wgs84", category_code=service_code,
            description=description or "", source="public", reporter_name=name, reporter_phone=phone or None,
            photos=[{"url": media_url}] if media_url else None,
            idempotency_key=idempotency_key or idempotency_header,
            actor=Principal(f"open311:{client}", Role.public), client_id=client, attributes=answers or None,
        )  # fmt: skip
        duplicates = possible_duplicates(
            session, lon=event["lon"], lat=event["lat"], category_code=event["category_code"],
            now=datetime.now(UTC), scope=None, exclude_id=event["id"],
        )  # fmt: skip
        department = _department_name(session, event["department_code"])
    receipt = {"service_request_id": str(event["id"]), "service_notice": _notice(department, event, len(duplicates)),
               "account_id": None,
               "possible_duplicates": [{"service_request_id": str(d["id"]), "distance_m": d["distance_m"]}
                                       for d in duplicates]}  # fmt: skip
    return _answer([receipt], format, "requests", status=201)


def _notice(department: str | None, event: dict[str, Any], duplicates: int) -> str:
    """The one sentence the reporter reads: which department (by its Chinese name) has the report."""
    notice = f"已受理，由{department or '综治中心'}办理；网格 {event['grid_code']}"
    if duplicates:
        notice += f"；附近已有 {duplicates} 条相似报告"
    return notice


def _department_name(session: Session, code: str | None) -> str | None:
    if code is None:
        return None
    return session.execute(text("SELECT name FROM departments WHERE code = :c"), {"c": code}).scalar()


def _answers(session: Session, service_code: str, given: dict[str, list[str]]) -> dict[str, Any]:
    rows = services(session, service_code)
    if not rows:  # report_event says which categories exist; attributes of no service are refused here
        if given:
            raise bad(f"no service {service_code!r}: see services.json")
        return {}
    try:
        return checked_answers(checked_definitions(rows[0]["attributes"]), given)
    except AttributeProblem as exc:
        raise InvalidInput(str(exc), title="Invalid attribute") from exc


def _zone(request: Request, session: Session, jurisdiction_id: str | None) -> ZoneInfo:
    """Check ``jurisdiction_id`` (optional; when given, the one this endpoint serves); the city's time zone."""
    adcode, zone = city_jurisdiction(session)
    if jurisdiction_id is not None:
        _plain(jurisdiction_id, "jurisdiction_id")
        served = request.app.state.open311_settings.jurisdiction_id or adcode
        if served is None:
            raise bad(f"jurisdiction_id {jurisdiction_id!r} is not served here: this endpoint serves one city and "
                      "names none (GEOSERVICE_OPEN311_JURISDICTION_ID); send no jurisdiction_id", 404)  # fmt: skip
        if jurisdiction_id != served:
            raise bad(f"jurisdiction_id {jurisdiction_id!r} is not served here; this endpoint serves {served!r}", 404)
    return ZoneInfo(zone)


def _client(session: Session, api_key: str) -> str:
    name = client_name(session, api_key)
    if name is None:
        raise bad("api_key was not valid (unknown or disabled)", 403)
    return name


def _plain(value: str | None, name: str) -> None:
    """An argument with a control character (a NUL cannot even be stored) is a 400 naming it."""
    if value is not None and (why := text_problem(value)) is not None:
        raise bad(f"{name} {why}")


def _listed(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _request_id(value: str) -> int:
    value = value.strip()
    if not value.isascii() or not value.isdigit() or not 0 < int(value) < 2**63:
        raise bad(f"service_request_id must be a positive number, not {value!r}")
    return int(value)


def _number(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise bad(f"{name} must be a number, not {value!r}") from None
    limit = 180 if name == "long" else 90
    if not -limit <= number <= limit:  # NaN fails too
        raise bad(f"{name} {value} is out of range (WGS84 degrees)")
    return number


def _date(value: str | None, name: str, zone: ZoneInfo) -> datetime | None:
    """ISO 8601; without a zone it is the city's local time (GeoReport's examples carry one, clients often don't)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad(f"{name} must be ISO 8601, e.g. 2026-11-01T00:00:00+08:00, not {value!r}") from None
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment
