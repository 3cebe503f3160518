"""Reporting an event: validate, place it in WGS84, route it, set its accept deadline, log it — in one go.

Everything that can be wrong with a report is found before the first write, and the event, its route
and its ``reported`` log row go in with the caller's transaction, so a failed report leaves nothing.
A retried report (same idempotency key) is stored once: ``INSERT … ON CONFLICT DO NOTHING`` lets
exactly one of N concurrent identical submissions in, and the others read the winner.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.auth.users import Principal
from geoservice.errors import Conflict, InvalidInput
from geoservice.events.deadlines import deadline_hours
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

# The event and its ``report`` log row in one statement (one round trip, and the answer comes back
# from RETURNING): nothing comes back when another submission with the key got in first.
INSERT_WITH_LOG = text(
    f"""
    WITH stored AS (
        INSERT INTO events AS e (
            idempotency_key, geom, category_code, description, source, priority, status, escalation_level,
            reporter_name, reporter_phone, reporter_username, client_id, photos, occurred_at, reported_at,
            updated_at, grid_code, community_code, town_code, station_code, department_code, rule_id, route_reason,
            boundary_version_id, accept_due_at, properties)
        VALUES (:key, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :category, :description, :source, :priority,
                'reported', 'grid', :reporter_name, :reporter_phone, :reporter_username, :client_id,
                CAST(:photos AS jsonb), :occurred_at, :now, :now, :grid, :community, :town, :station, :department,
                :rule_id, :reason, :version_id, :accept_due_at, CAST(:properties AS jsonb))
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING {COLUMNS}
    ), logged AS (
        INSERT INTO event_log (event_id, at, actor, role, action, from_status, to_status, note, details)
        SELECT id, :now, :actor, :role, 'report', NULL, 'reported', '', CAST(:details AS jsonb) FROM stored
    )
    SELECT * FROM stored
    """
)


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
    request = _validated(
        lon=lon, lat=lat, crs=crs, category_code=category_code, description=description, source=source,
        priority=priority, reporter_name=reporter_name, reporter_phone=reporter_phone, photos=photos or [],
        idempotency_key=idempotency_key, actor=actor, occurred_at=occurred_at, now=now,
    )  # fmt: skip
    if attributes:  # an Open311 service's answers, checked against its definition by the caller
        request["attributes"] = attributes
    x, y = point_to_wgs84(lon, lat, crs, check_degrees=True)
    hours = deadline_hours(session, category_code, priority)
    if hours is None:
        known = session.execute(text("SELECT code FROM categories ORDER BY code")).scalars().all()
        detail = f"no category {category_code!r}; categories are: {', '.join(known)}"
        raise InvalidInput(detail, title="Unknown category")
    routed = router.route(x, y, category_code)
    location = routed.location
    if location.grid is None:
        nearest = location.nearest_grid
        where = f"{location.nearest_grid_m:,.0f} m from the nearest grid ({nearest.code})" if nearest else "far away"
        raise InvalidInput(
            f"the point is {where}, beyond the snap tolerance of {router.snap_tolerance_m:,.0f} m: "
            "check the coordinates and their crs",
            title="Outside every grid",
        )
    fingerprint = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
    key = _namespaced_key(idempotency_key, actor, client_id, anonymous_client)
    params = {
        "key": key, "lon": x, "lat": y, "category": category_code, "description": description, "source": source,
        "priority": priority, "reporter_name": reporter_name, "reporter_phone": reporter_phone,
        "reporter_username": None if actor.anonymous else actor.username, "client_id": client_id,
        "photos": json.dumps(photos or [], ensure_ascii=False), "occurred_at": occurred_at or now, "now": now,
        "grid": location.grid.code, "community": location.community.code if location.community else None,
        "town": location.town.code if location.town else None,
        "station": location.station.code if location.station else None,
        "department": routed.department_code, "rule_id": routed.rule_id, "reason": routed.reason,
        "version_id": router.version_id, "accept_due_at": hours.accept_due(now),
        "properties": json.dumps({REQUEST_HASH: fingerprint, "snapped_m": location.snapped_m,
                                  **({"attributes": attributes} if attributes else {})}, ensure_ascii=False),
        "actor": actor.username, "role": str(actor.role),
        "details": json.dumps({
            "source": source, "client_id": client_id, "grid": location.grid.code,
            "department": routed.department_code, "rule_id": routed.rule_id, "reason": routed.reason,
            "accept_due_at": hours.accept_due(now).isoformat(),
        }, ensure_ascii=False),
    }  # fmt: skip
    row = session.execute(INSERT_WITH_LOG, params).first()
    if row is None:
        return _the_earlier_report(session, key, fingerprint), False
    return dict(row._mapping), True


def _the_earlier_report(session: Session, key: str, fingerprint: str) -> dict[str, Any]:
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
