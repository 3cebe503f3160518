"""Recording a force's position: throttled, serialised per person, with the history pruned as it grows.

A mobile client reports every few seconds; storing each fix would bloat the table without telling a
dispatcher anything new. A fix less than ``min_interval_s`` after the last stored one is accepted and
dropped (the answer says so) unless availability changed, which is always news. Fixes of one person
are serialised by an advisory lock, so two in flight cannot both slip past the throttle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.auth.users import Principal
from geoservice.errors import Forbidden, InvalidInput
from geoservice.forces.settings import ForceSettings
from layers.models import Role

CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Fix:
    """One position report, already in WGS84."""

    lon: float
    lat: float
    at: datetime
    available: bool = True
    accuracy_m: float | None = None


def force_kind(principal: Principal, settings: ForceSettings) -> str:
    """``grid_worker`` or ``patrol``; anyone else has no position to report (a 403 problem)."""
    if principal.role == Role.grid_worker:
        return "grid_worker"
    if principal.role == Role.handler and principal.department_code == settings.patrol_department:
        return "patrol"
    raise Forbidden(
        f"positions are reported by grid workers and patrols (handlers of {settings.patrol_department!r})",
        title="Not a field force",
    )


def record_position(
    session: Session, principal: Principal, fix: Fix, settings: ForceSettings, now: datetime
) -> dict[str, Any]:
    """Store the fix unless throttled; the answer says which, and when the next one would be stored."""
    kind = force_kind(principal, settings)
    if fix.at > now + CLOCK_SKEW:
        raise InvalidInput(f"at {fix.at.isoformat()} is in the future", title="Invalid time")
    if fix.at < now - timedelta(hours=settings.history_hours):
        kept = f"{settings.history_hours:g} h"
        raise InvalidInput(f"at {fix.at.isoformat()} is older than the {kept} of history kept", title="Invalid time")
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('force_position:' || :u))"), {"u": principal.username})
    last = session.execute(
        text("SELECT at, available FROM force_positions WHERE username = :u ORDER BY at DESC, id DESC LIMIT 1"),
        {"u": principal.username},
    ).first()
    interval = timedelta(seconds=settings.min_interval_s)
    answer: dict[str, Any] = {"username": principal.username, "kind": kind, "at": fix.at, "available": fix.available}
    if last is not None and fix.at <= last.at:
        reason = "not newer than the last stored position"
        return {**answer, "stored": False, "reason": reason, "last_stored_at": last.at}
    if last is not None and fix.at - last.at < interval and fix.available == last.available:
        return {**answer, "stored": False, "reason": f"throttled: less than {settings.min_interval_s:g} s after the "
                "last stored position", "last_stored_at": last.at, "next_stored_after": last.at + interval}  # fmt: skip
    session.execute(
        text(
            "INSERT INTO force_positions (username, kind, geom, at, available, accuracy_m) "
            "VALUES (:u, :k, ST_SetSRID(ST_MakePoint(:x, :y), 4326), :at, :available, :acc)"
        ),
        {"u": principal.username, "k": kind, "x": fix.lon, "y": fix.lat, "at": fix.at, "available": fix.available,
         "acc": fix.accuracy_m},  # fmt: skip
    )
    session.execute(
        text("DELETE FROM force_positions WHERE username = :u AND at < :oldest"),
        {"u": principal.username, "oldest": now - timedelta(hours=settings.history_hours)},
    )
    return {**answer, "stored": True, "reason": None, "last_stored_at": fix.at}


def position_history(session: Session, username: str) -> list[dict[str, Any]]:
    """The kept positions of one person, newest first."""
    rows = session.execute(
        text(
            "SELECT ST_X(geom) AS lon, ST_Y(geom) AS lat, at, available, accuracy_m FROM force_positions "
            "WHERE username = :u ORDER BY at DESC"
        ),
        {"u": username},
    )
    return [dict(r._mapping) for r in rows]
