"""Reporting an event: validate, place it in WGS84, route it, set its accept deadline, log it — in one go.

Everything that can be wrong with a report is found before the first write, and the event, its route
and its ``reported`` log row go in with the caller's transaction, so a failed report leaves nothing.
A retried report (same idempotency key) is stored once: ``INSERT … ON CONFLICT DO NOTHING`` lets
exactly one of N concurrent identical submissions in, and the others read the winner.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.auth.users import Principal
from geoservice.errors import Conflict, InvalidInput
from geoservice.events.deadlines import DeadlineHours, deadline_hours
from geoservice.events.queries import COLUMNS, fetch_event
from geoservice.inputs import check_http_url, check_text
from geoservice.routing.router import Router
from layers.crs import point_to_wgs84
from layers.models import Role

SOURCES = ("public", "grid_worker", "hotline_12345", "video")
PRIORITIES = ("normal", "urgent")
MAX_DESCRIPTION = 2000
MAX_NAME = 100
MAX_KEY = 120
MAX_PHOTOS = 9
MAX_PHOTO_FIELD = 500
CLOCK_SKEW = timedelta(minutes=5)
PHONE = re.compile(r"^\+?[0-9][0-9 -]{2,30}$")
REQUEST_HASH = "request_sha256"

# Every column of a stored report, in the order ``INSERT_REPORTS`` reads them from its JSON rows.
REPORT_FIELDS = """
    key text, lon float8, lat float8, category text, description text, source text, priority text,
    reporter_name text, reporter_phone text, reporter_username text, client_id text, photos jsonb,
    occurred_at timestamptz, now timestamptz, grid text, community text, town text, station text,
    department text, rule_id integer, reason text, version_id integer, accept_due_at timestamptz,
    properties jsonb, actor text, role text, details jsonb
"""
# Any number of reports and their ``report`` log rows in one statement (one round trip, and the
# answers come back from RETURNING): the rows come as one JSON array, so the statement's text is the
# same for one report or sixty and is prepared once per connection. A report whose key another
# submission got in first comes back as nothing. Rows go in in key order, so two batches that share
# keys (retries racing) wait for each other in the same order and never deadlock.
INSERT_REPORTS = text(
    f"""
    WITH input AS (
        SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({REPORT_FIELDS})
    ), stored AS (
        INSERT INTO events AS e (
            idempotency_key, geom, category_code, description, source, priority, status, escalation_level,
            reporter_name, reporter_phone, reporter_username, client_id, photos, occurred_at, reported_at,
            updated_at, grid_code, community_code, town_code, station_code, department_code, rule_id, route_reason,
            boundary_version_id, accept_due_at, properties)
        SELECT key, ST_SetSRID(ST_MakePoint(lon, lat), 4326), category, description, source, priority,
               'reported', 'grid', reporter_name, reporter_phone, reporter_username, client_id,
               photos, occurred_at, now, now, grid, community, town, station, department,
               rule_id, reason, version_id, accept_due_at, properties
          FROM input ORDER BY key
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING e.idempotency_key AS stored_key, {COLUMNS}
    ), logged AS (
        INSERT INTO event_log (event_id, at, actor, role, action, from_status, to_status, note, details)
        SELECT s.id, i.now, i.actor, i.role, 'report', NULL, 'reported', '', i.details
          FROM stored s JOIN input i ON i.key = s.stored_key ORDER BY s.id
    )
    SELECT * FROM stored
    """
)


@dataclass(frozen=True)
class PreparedReport:
    """A checked, routed report, ready to store: its row for ``INSERT_REPORTS`` and its identity."""

    key: str
    fingerprint: str
    row: dict[str, Any]


def report_event(
    session: Session,
    router: Router,
    *,
    lon: float,
    lat: float,
    crs: str = "wgs84",
    category_code: str,
    description: str = "",
    source: str = "public",
    priority: str = "normal",
    reporter_name: str | None = None,
    reporter_phone: str | None = None,
    photos: list[dict[str, Any]] | None = None,
    idempotency_key: str | None = None,
    actor: Principal,
    client_id: str | None = None,
    anonymous_client: str | None = None,
    occurred_at: datetime | None = None,
    attributes: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    """Store (or find again) a report; returns the event row and whether this call created it.

    Idempotency keys are the caller's own: they are stored under the Open311 client or the user who
    sent them — or, for the anonymous public, under ``anonymous_client`` (the client's address) — so
    two clients choosing the same key never see each other's events.
    """
    now = now or datetime.now(UTC)
    request = ReportRequest(
        lon=lon, lat=lat, crs=crs, category_code=category_code, description=description, source=source,
        priority=priority, reporter_name=reporter_name, reporter_phone=reporter_phone, photos=photos or [],
        idempotency_key=idempotency_key, actor=actor, client_id=client_id, anonymous_client=anonymous_client,
        occurred_at=occurred_at, attributes=attributes,
    )  # fmt: skip
    return report_one(session, router, request, now)


def report_one(session: Session, router: Router, request: ReportRequest, now: datetime) -> tuple[dict[str, Any], bool]:
    """``report_event`` for a request already made (the intake's single-report path)."""
    checked = request.checked(now)
    hours = deadline_hours(session, request.category_code, request.priority)
    prepared = prepare_report(request, checked, router, hours, now, session=session)
    stored = store_reports(session, [prepared])
    if prepared.key not in stored:
        return the_earlier_report(session, prepared.key, prepared.fingerprint), False
    return stored[prepared.key], True


@dataclass(frozen=True)
class ReportRequest:
    """What a reporter sent, as the service takes it (the API's body, Open311's form, the intake's queue)."""

    lon: float
    lat: float
    category_code: str
    actor: Principal
    crs: str = "wgs84"
    description: str = ""
    source: str = "public"
    priority: str = "normal"
    reporter_name: str | None = None
    reporter_phone: str | None = None
    photos: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    idempotency_key: str | None = None
    client_id: str | None = None
    anonymous_client: str | None = None
    occurred_at: datetime | None = None
    attributes: dict[str, Any] | None = None

    def checked(self, now: datetime) -> CheckedReport:
        """Refuse anything unusable (before any lookup or write); the request's identity and its WGS84 point.

        Needs no database, so the intake runs it on the event loop and a bad report never waits
        for a batch.
        """
        identity = _validated(
            lon=self.lon, lat=self.lat, crs=self.crs, category_code=self.category_code, description=self.description,
            source=self.source, priority=self.priority, reporter_name=self.reporter_name,
            reporter_phone=self.reporter_phone, photos=self.photos, idempotency_key=self.idempotency_key,
            actor=self.actor, occurred_at=self.occurred_at, now=now,
        )  # fmt: skip
        if self.attributes:  # an Open311 service's answers, checked against its definition by the caller
            identity["attributes"] = self.attributes
        x, y = point_to_wgs84(self.lon, self.lat, self.crs, check_degrees=True)
        fingerprint = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
        key = _namespaced_key(self.idempotency_key, self.actor, self.client_id, self.anonymous_client)
        return CheckedReport(x, y, key, fingerprint)


@dataclass(frozen=True)
class CheckedReport:
    """A valid request's point in WGS84, its stored key and its fingerprint (the idempotency check)."""

    x: float
    y: float
    key: str
    fingerprint: str


def prepare_report(
    request: ReportRequest,
    checked: CheckedReport,
    router: Router,
    hours: DeadlineHours | None,
    now: datetime,
    *,
    session: Session,
) -> PreparedReport:
    """Route a checked report and give it its accept deadline: the row to store, or the problem with it.

    ``hours`` is the category's deadline (``deadline_hours``) and None for an unknown category;
    ``session`` only reads the category list for that error's message.
    """
    if hours is None:
        known = session.execute(text("SELECT code FROM categories ORDER BY code")).scalars().all()
        detail = f"no category {request.category_code!r}; categories are: {', '.join(known)}"
        raise InvalidInput(detail, title="Unknown category")
    routed = router.route(checked.x, checked.y, request.category_code)
    location = routed.location
    if location.grid is None:
        nearest = location.nearest_grid
        where = f"{location.nearest_grid_m:,.0f} m from the nearest grid ({nearest.code})" if nearest else "far away"
        raise InvalidInput(
            f"the point is {where}, beyond the snap tolerance of {router.snap_tolerance_m:,.0f} m: "
            "check the coordinates and their crs",
            title="Outside every grid",
        )
    actor, attributes = request.actor, request.attributes
    accept_due = hours.accept_due(now)
    row = {
        "key": checked.key, "lon": checked.x, "lat": checked.y, "category": request.category_code,
        "description": request.description, "source": request.source, "priority": request.priority,
        "reporter_name": request.reporter_name, "reporter_phone": request.reporter_phone,
        "reporter_username": None if actor.anonymous else actor.username, "client_id": request.client_id,
        "photos": request.photos, "occurred_at": (request.occurred_at or now).isoformat(), "now": now.isoformat(),
        "grid": location.grid.code, "community": location.community.code if location.community else None,
        "town": location.town.code if location.town else None,
        "station": location.station.code if location.station else None,
        "department": routed.department_code, "rule_id": routed.rule_id, "reason": routed.reason,
        "version_id": router.version_id, "accept_due_at": accept_due.isoformat(),
        "properties": {REQUEST_HASH: checked.fingerprint, "snapped_m": location.snapped_m,
                       **({"attributes": attributes} if attributes else {})},
        "actor": actor.username, "role": str(actor.role),
        "details": {
            "source": request.source, "client_id": request.client_id, "grid": location.grid.code,
            "department": routed.department_code, "rule_id": routed.rule_id, "reason": routed.reason,
            "accept_due_at": accept_due.isoformat(),
        },
    }  # fmt: skip
    return PreparedReport(checked.key, checked.fingerprint, row)


def store_reports(session: Session, reports: list[PreparedReport]) -> dict[str, dict[str, Any]]:
    """Insert reports (distinct keys) with their log rows in one statement; the stored events by key.

    A key missing from the answer was already taken (by an earlier or a concurrent submission,
    which this statement waited for): ``the_earlier_report`` tells the caller what it is.
    """
    rows = orjson.dumps([r.row for r in reports], default=_plain).decode()  # C, not Python: the writer holds the GIL
    stored = {}
    for found in session.execute(INSERT_REPORTS, {"rows": rows}):
        event = dict(found._mapping)
        stored[event.pop("stored_key")] = event
    return stored


def _plain(value: Any) -> Any:
    """What ``json.dumps(default=str)`` wrote for what orjson does not know: numbers as numbers, else text."""
    if isinstance(value, float):  # a subclass of float orjson refuses: json wrote it as a number
        return float(value)
    if isinstance(value, int):
        return int(value)
    return str(value)


def the_earlier_report(session: Session, key: str, fingerprint: str) -> dict[str, Any]:
    """The event stored under ``key`` (committed by whoever won), refusing a different body."""
    event_id = session.execute(text("SELECT id FROM events WHERE idempotency_key = :k"), {"k": key}).scalar_one()
    event = fetch_event(session, event_id)
    assert event is not None
    if (event["properties"] or {}).get(REQUEST_HASH) != fingerprint:
        raise Conflict(
            f"this idempotency key was used for a different report (event {event_id}); use a new key for a new report",
            title="Idempotency key reused",
        )
    return event


def _namespaced_key(key: str | None, actor: Principal, client_id: str | None, anonymous_client: str | None) -> str:
    """The key as stored: the caller's own key under who the caller is.

    Open311 clients by their name, users by their username, and the anonymous public — who have no
    name — by their address (what the public rate limit also counts by): two citizens behind
    different addresses who both pick key "1" report two events.
    """
    if key is None:
        return f"auto:{uuid.uuid4()}"
    if client_id:
        return f"open311:{client_id}:{key}"
    if actor.anonymous:
        return f"anon:{anonymous_client or 'unknown'}:{key}"
    return f"api:{actor.username}:{key}"


def _validated(**fields: Any) -> dict[str, Any]:
    """The request's identity (for the idempotency check), after refusing anything unusable."""
    lon, lat = fields["lon"], fields["lat"]
    numbers = isinstance(lon, int | float) and isinstance(lat, int | float)
    if not (numbers and math.isfinite(lon) and math.isfinite(lat)):
        raise InvalidInput(f"({lon}, {lat}) are not finite numbers", title="Invalid coordinates")
    source, priority, actor = fields["source"], fields["priority"], fields["actor"]
    if source not in SOURCES:
        raise InvalidInput(f"source {source!r}; sources are: {', '.join(SOURCES)}", title="Unknown source")
    if actor.role == Role.public and source != "public":
        raise InvalidInput(f"a public report has source 'public', not {source!r}", title="Unknown source")
    if priority not in PRIORITIES:
        raise InvalidInput(f"priority {priority!r}; priorities are: {', '.join(PRIORITIES)}", title="Unknown priority")
    _short("description", fields["description"], MAX_DESCRIPTION)
    _short("reporter_name", fields["reporter_name"], MAX_NAME)
    _short("idempotency_key", fields["idempotency_key"], MAX_KEY)
    check_text("description", fields["description"], multiline=True)
    for name in ("category_code", "reporter_name", "reporter_phone", "idempotency_key", "crs"):
        check_text(name, fields[name])
    phone = fields["reporter_phone"]
    if phone is not None and not PHONE.match(phone):
        raise InvalidInput(f"{phone!r} is not a phone number (digits, spaces, '-', '+')", title="Invalid phone number")
    _check_photos(fields["photos"])
    occurred, now = fields["occurred_at"], fields["now"]
    if occurred is not None:
        if occurred.tzinfo is None:
            raise InvalidInput("occurred_at needs a time zone, e.g. 2026-11-24T09:30:00+08:00", title="Invalid time")
        if occurred > now + CLOCK_SKEW:
            raise InvalidInput(f"occurred_at {occurred.isoformat()} is in the future", title="Invalid time")
    return {k: v for k, v in fields.items() if k not in {"actor", "now", "idempotency_key"}}


def _short(name: str, value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise InvalidInput(f"{name} has {len(value):,} characters; at most {limit:,}", title="Text too long")


def _check_photos(photos: list[dict[str, Any]]) -> None:
    if len(photos) > MAX_PHOTOS:
        raise InvalidInput(f"{len(photos)} photos; at most {MAX_PHOTOS}", title="Too many photos")
    for k, photo in enumerate(photos):
        if not isinstance(photo, dict) or not isinstance(photo.get("url"), str):
            raise InvalidInput(f"photo {k} needs a 'url' (photos are metadata, not files)", title="Invalid photo")
        check_http_url(f"photo {k}: url", photo["url"])
        for field, value in photo.items():
            if not isinstance(value, str | int | float | None) or len(str(value)) > MAX_PHOTO_FIELD:
                raise InvalidInput(f"photo {k}: {field!r} must be a short text or number", title="Invalid photo")
            check_text(f"photo {k}: {field}", value if isinstance(value, str) else None)
