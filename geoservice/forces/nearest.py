"""The forces nearest an event, by distance on the spheroid (metres), within the event's scope.

In scope: grid workers whose region subtree holds the event's grid (the people responsible for
that place), and every patrol (police act city-wide; distance orders them). Each person's newest
position counts; one older than ``stale_after_s`` is unknown, and so is a person with none: both
are listed apart, never ranked by where they used to be. Unavailable (busy) people are listed apart too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from geoservice.auth.scope import region_prefix
from geoservice.forces.settings import ForceSettings

CANDIDATES = text(
    """
    SELECT username, display_name, role::text AS role, region_code, department_code FROM users
     WHERE NOT disabled AND (role = 'grid_worker' OR (role = 'handler' AND department_code = :patrol))
     ORDER BY username
    """
)
LATEST = text(
    """
    SELECT DISTINCT ON (p.username) p.username, p.kind, ST_X(p.geom) AS lon, ST_Y(p.geom) AS lat, p.at,
           p.available, p.accuracy_m, ST_Distance(p.geom::geography, e.geom::geography) AS distance_m
      FROM force_positions p, events e
     WHERE e.id = :event AND p.username IN :users
     ORDER BY p.username, p.at DESC, p.id DESC
    """
).bindparams(bindparam("users", expanding=True))


def nearest_forces(
    session: Session, event: dict[str, Any], limit: int, settings: ForceSettings, now: datetime
) -> dict[str, list[dict[str, Any]]]:
    """``available`` (nearest first, at most ``limit``), ``busy`` and ``unknown`` forces for the event."""
    place = event.get("grid_code") or event.get("community_code") or event.get("town_code") or ""
    people = {
        r.username: dict(r._mapping)
        for r in session.execute(CANDIDATES, {"patrol": settings.patrol_department})
        if r.role == "handler" or (r.region_code and place.startswith(region_prefix(r.region_code)))
    }
    latest: dict[str, dict[str, Any]] = {}
    if people:
        rows = session.execute(LATEST, {"event": event["id"], "users": list(people)})
        latest = {r.username: dict(r._mapping) for r in rows}
    available, busy, unknown = [], [], []
    for username, person in people.items():
        kind = "grid_worker" if person["role"] == "grid_worker" else "patrol"
        base = {"username": username, "display_name": person["display_name"], "kind": kind}
        fix = latest.get(username)
        if fix is None:
            unknown.append({**base, "last_seen_at": None, "reason": "no position reported"})
            continue
        age_s = (now - fix["at"]).total_seconds()
        if age_s > settings.stale_after_s:
            unknown.append({**base, "last_seen_at": fix["at"], "reason": f"last position {age_s:,.0f} s old"})
            continue
        entry = {**base, "lon": fix["lon"], "lat": fix["lat"], "at": fix["at"], "age_s": round(age_s, 1),
                 "distance_m": round(float(fix["distance_m"]), 1), "accuracy_m": fix["accuracy_m"]}  # fmt: skip
        (available if fix["available"] else busy).append(entry)
    available.sort(key=lambda f: (f["distance_m"], f["username"]))
    busy.sort(key=lambda f: (f["distance_m"], f["username"]))
    return {"available": available[:limit], "busy": busy, "unknown": unknown}
