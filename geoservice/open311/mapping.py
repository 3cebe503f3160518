"""Our categories and events in GeoReport v2's shapes, field for field (pure functions).

GeoReport's ``status`` is only open or closed: an event is closed once nothing more will be done
(rejected, verified, archived, evaluated). Our own state goes in ``status_notes``, the running
deadline in ``expected_datetime`` and the responsible department in ``agency_responsible``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

CLOSED = frozenset({"rejected", "verified", "archived", "evaluated"})
STATE_NOTES = {
    "reported": "已受理登记 reported", "accepted": "已受理 accepted", "rejected": "不予受理 rejected",
    "dispatched": "已派遣 dispatched", "returned": "退回重派 returned", "handling": "处置中 handling",
    "handled": "已处置待核查 handled", "verified": "已核查 verified", "reopened": "核查未通过，重新处置 reopened",
    "archived": "已结案 archived", "evaluated": "已评价 evaluated", "merged": "已合并 merged",
}  # fmt: skip
SERVICE_FIELDS = ("service_code", "service_name", "description", "metadata", "type", "keywords", "group")
REQUEST_FIELDS = ("service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                  "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                  "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url")  # fmt: skip


def service(
    code: str, name: str, class_name: str, accept_hours: float, handle_hours: float, attributes: list | None = None
) -> dict[str, Any]:
    """A subcategory as a GeoReport service (realtime: a request id comes back at once).

    ``metadata`` is true when the category asks attributes: its definition is at ``services/{code}``.
    """
    return {
        "service_code": code,
        "service_name": name,
        "description": f"{class_name} · {name}：受理时限 {accept_hours:g} 小时，处置时限 {handle_hours:g} 小时",
        "metadata": bool(attributes),
        "type": "realtime",
        "keywords": ", ".join([class_name, name]),
        "group": class_name,
    }


def open_or_closed(status: str) -> str:
    """GeoReport's two states."""
    return "closed" if status in CLOSED else "open"


COARSE_DECIMALS = 3  # 0.001° ≈ 111 m north-south, ≈ 94 m east-west at 32°N: "about 100 m"


def service_request(event: dict[str, Any]) -> dict[str, Any]:
    """An event (with ``service_name``, ``agency_name`` and ``address`` looked up) as a service request.

    A sensitive category's request (disputes, petitions: ``categories.sensitive``) is published
    without its description and photo, and its place rounded to 3 decimals of a degree (about
    100 m): a snap to a fixed lattice, so asking again never averages to the true point, and
    the same in every city without a projection.
    """
    if event.get("sensitive"):
        event = {**event, "description": "", "photos": [], "lat": _coarse(event["lat"]), "lon": _coarse(event["lon"])}
    photos = event.get("photos") or []
    expected = event.get("handle_due_at") or event.get("accept_due_at")
    status, updated = event["status"], event["updated_at"]
    if event.get("merged_into") is not None:  # a merged report follows its master
        status, updated = event["master_status"], max(updated, event["master_updated_at"])
        expected = event.get("master_handle_due_at") or event.get("master_accept_due_at")
    return {
        "service_request_id": str(event["id"]),
        "status": open_or_closed(status),
        "status_notes": status_notes(event),
        "service_name": event.get("service_name"),
        "service_code": event["category_code"],
        "description": event.get("description") or "",
        "agency_responsible": event.get("agency_name"),
        "service_notice": None,
        "requested_datetime": _iso(event["reported_at"]),
        "updated_datetime": _iso(updated),
        "expected_datetime": _iso(expected),
        "address": event.get("address"),
        "address_id": event.get("grid_code"),
        "zipcode": None,
        "lat": event["lat"],
        "long": event["lon"],
        "media_url": photos[0].get("url") if photos and isinstance(photos[0], dict) else None,
    }


def status_notes(event: dict[str, Any]) -> str:
    """Our state, then every public progress note (its own, and its master's once merged), oldest first.

    A merged request reads "已合并至 #master" and the master's state: what the reporter waits for.
    """
    notes = [STATE_NOTES.get(event["status"], event["status"])]
    if event.get("merged_into") is not None:
        master_state = STATE_NOTES.get(event["master_status"], event["master_status"])
        notes = [f"已合并至 #{event['merged_into']} merged into {event['merged_into']}: {master_state}"]
    for item in event.get("public_notes") or []:
        at = item["at"]
        at = at[:16].replace("T", " ") if isinstance(at, str) else at.strftime("%Y-%m-%d %H:%M")
        notes.append(f"{at} {item['note']}")
    return "；".join(notes)


def _coarse(degrees: float | None) -> float | None:
    return None if degrees is None else round(float(degrees), COARSE_DECIMALS)


def error(code: int, description: str) -> list[dict[str, Any]]:
    """GeoReport's error body: a list of {code, description}."""
    return [{"code": code, "description": description}]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
