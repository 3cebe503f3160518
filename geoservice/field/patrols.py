"""Patrols (巡查): started, fed batches of GPS fixes, stopped; the track kept as a line.

A phone patrols with or without a network, so every write is idempotent. Starting takes the
phone's key (the same key again is the same patrol); a fix is identified by its time within the
patrol, so a batch sent twice, or two overlapping batches, store each fix once; stopping a stopped
patrol answers it as it is. Fixes come in the caller's CRS and are kept in WGS84; the track is
rebuilt from the stored fixes in time order after each batch, and its length measured in the
city's metric CRS.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.auth.scope import region_prefix
from geoservice.auth.users import Principal
from geoservice.errors import Conflict, NotFound
from geoservice.field.settings import PatrolSettings
from geoservice.forces.positions import force_kind
from geoservice.forces.settings import ForceSettings
from layers.models import Role

PATROL_COLUMNS = (
    "p.id, p.username, p.kind, p.region_code, p.started_at, p.stopped_at, p.length_m, p.point_count, "
    "ST_AsGeoJSON(p.track)::json AS track"
)


@dataclass(frozen=True)
class Fix:
    """One GPS fix of a patrol, already in WGS84."""

    lon: float
    lat: float
    at: datetime
    accuracy_m: float | None = None


def start_patrol(
    session: Session,
    principal: Principal,
    forces: ForceSettings,
    now: datetime,
    idempotency_key: str | None = None,
    started_at: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    """Start a patrol for a field force (grid worker or police patrol); (the patrol, whether it is new).

    The same key again answers the patrol it started. Without a key, a second patrol while one is
    open is a conflict: the phone should stop (or continue) the open one.
    """
    kind = force_kind(principal, forces)  # others have no patrol to walk: a 403 problem
    _lock_person(session, principal.username)
    if idempotency_key:
        found = session.execute(
            text(f"SELECT {PATROL_COLUMNS} FROM patrols p WHERE p.username = :u AND p.idempotency_key = :k"),
            {"u": principal.username, "k": idempotency_key},
        ).first()
        if found is not None:
            return dict(found._mapping), False
    open_one = session.execute(
        text("SELECT id FROM patrols WHERE username = :u AND stopped_at IS NULL ORDER BY id LIMIT 1"),
        {"u": principal.username},
    ).scalar()
    if open_one is not None:
        raise Conflict(f"patrol {open_one} is still open: stop it before starting another", title="Patrol open",
                       open_patrol=open_one)  # fmt: skip
    row = session.execute(
        text(
            "INSERT INTO patrols (username, kind, region_code, idempotency_key, started_at) "
            "VALUES (:u, :kind, :region, :k, :at) RETURNING id"
        ),
        {"u": principal.username, "kind": kind, "region": principal.region_code, "k": idempotency_key,
         "at": min(started_at or now, now)},
    ).scalar_one()  # fmt: skip
    return _patrol(session, row), True


def add_fixes(
    session: Session,
    patrol_id: int,
    principal: Principal,
    fixes: list[Fix],
    settings: PatrolSettings,
    metric_epsg: int,
    now: datetime,
) -> dict[str, Any]:
    """Store a batch of fixes of the caller's own open patrol and rebuild its track.

    Fixes outside the patrol's time (before its start, or in the future beyond the clock skew) and
    fixes less accurate than the setting are ignored and counted; a fix already stored (same time)
    is a duplicate, counted too. The answer says how many of each, and the patrol after it.
    """
    patrol = _own(session, patrol_id, principal, lock=True)
    if patrol["stopped_at"] is not None:
        raise Conflict(f"patrol {patrol_id} was stopped at {patrol['stopped_at'].isoformat()}; start a new one",
                       title="Patrol stopped")  # fmt: skip
    earliest = patrol["started_at"] - timedelta(seconds=settings.clock_skew_s)
    latest = now + timedelta(seconds=settings.clock_skew_s)
    usable = [
        f for f in fixes
        if earliest <= f.at <= latest and (f.accuracy_m is None or f.accuracy_m <= settings.max_accuracy_m)
    ]  # fmt: skip
    stored = 0
    if usable:
        stored = session.execute(
            text(
                "INSERT INTO patrol_points (patrol_id, at, geom, accuracy_m) "
                "SELECT :id, f.at, ST_SetSRID(ST_MakePoint(f.lon, f.lat), 4326), f.accuracy_m "
                "FROM unnest(CAST(:ats AS timestamptz[]), CAST(:lons AS float8[]), CAST(:lats AS float8[]), "
                "CAST(:accs AS float8[])) AS f(at, lon, lat, accuracy_m) "
                "ON CONFLICT (patrol_id, at) DO NOTHING"
            ),
            {"id": patrol_id, "ats": [f.at for f in usable], "lons": [f.lon for f in usable],
             "lats": [f.lat for f in usable], "accs": [f.accuracy_m for f in usable]},
        ).rowcount  # fmt: skip
        _rebuild_track(session, patrol_id, metric_epsg)
    return {
        "received": len(fixes),
        "stored": stored,
        "duplicates": len(usable) - stored,
        "ignored": len(fixes) - len(usable),
        "patrol": patrol_view(_patrol(session, patrol_id)),
    }


def stop_patrol(
    session: Session, patrol_id: int, principal: Principal, now: datetime, stopped_at: datetime | None = None
) -> dict[str, Any]:
    """Stop the caller's patrol; a stopped one is answered as it is (a retried stop)."""
    patrol = _own(session, patrol_id, principal, lock=True)
    if patrol["stopped_at"] is None:
        last_fix = session.execute(text("SELECT max(at) FROM patrol_points WHERE patrol_id = :id"),
                                   {"id": patrol_id}).scalar()  # fmt: skip
        moment = min(stopped_at or now, now)
        moment = max(moment, patrol["started_at"], last_fix or patrol["started_at"])
        session.execute(text("UPDATE patrols SET stopped_at = :at WHERE id = :id"), {"at": moment, "id": patrol_id})
    return _patrol(session, patrol_id)


def visible_patrol(session: Session, patrol_id: int, principal: Principal) -> dict[str, Any]:
    """A patrol for its patroller, admins and supervisors, and the dispatchers of its region."""
    patrol = session.execute(text(f"SELECT {PATROL_COLUMNS} FROM patrols p WHERE p.id = :id"),
                             {"id": patrol_id}).first()  # fmt: skip
    row = None if patrol is None else dict(patrol._mapping)
    if row is None or not _may_read(principal, row):
        raise NotFound(f"there is no patrol {patrol_id} that you may see", title="No such patrol")
    return row


def _may_read(principal: Principal, patrol: dict[str, Any]) -> bool:
    if principal.username == patrol["username"] or principal.role in (Role.admin, Role.supervisor):
        return True
    if principal.role == Role.dispatcher and principal.region_code and patrol["region_code"]:
        return str(patrol["region_code"]).startswith(region_prefix(principal.region_code))
    return False


def patrol_view(row: dict[str, Any]) -> dict[str, Any]:
    """A patrol as the API answers it: the track as GeoJSON (WGS84), length in metres."""
    return {
        "id": row["id"],
        "username": row["username"],
        "kind": row["kind"],
        "region_code": row["region_code"],
        "started_at": row["started_at"],
        "stopped_at": row["stopped_at"],
        "status": "open" if row["stopped_at"] is None else "stopped",
        "point_count": row["point_count"],
        "length_m": round(row["length_m"], 1),
        "track": row["track"],
    }


def _own(session: Session, patrol_id: int, principal: Principal, *, lock: bool) -> dict[str, Any]:
    """The caller's own patrol (anyone else's does not exist for them), locked for a write."""
    found = session.execute(
        text(f"SELECT id, username, started_at, stopped_at FROM patrols WHERE id = :id{' FOR UPDATE' if lock else ''}"),
        {"id": patrol_id},
    ).first()
    if found is None or found.username != principal.username:
        raise NotFound(f"you have no patrol {patrol_id}", title="No such patrol")
    return dict(found._mapping)


def _patrol(session: Session, patrol_id: int) -> dict[str, Any]:
    return dict(session.execute(text(f"SELECT {PATROL_COLUMNS} FROM patrols p WHERE p.id = :id"),
                                {"id": patrol_id}).one()._mapping)  # fmt: skip


def _rebuild_track(session: Session, patrol_id: int, metric_epsg: int) -> None:
    """The line through every stored fix in time order (none with fewer than two), and its length in metres."""
    session.execute(
        text(
            "UPDATE patrols p SET point_count = t.n, track = CASE WHEN t.n >= 2 THEN t.line END, "
            "length_m = CASE WHEN t.n >= 2 THEN ST_Length(ST_Transform(t.line, CAST(:srid AS integer))) ELSE 0 END "
            "FROM (SELECT count(*) AS n, ST_MakeLine(geom ORDER BY at) AS line FROM patrol_points "
            "WHERE patrol_id = :id) t WHERE p.id = :id"
        ),
        {"id": patrol_id, "srid": metric_epsg},
    )


def _lock_person(session: Session, username: str) -> None:
    """Serialise one person's starts, so two phones' retries cannot both open a patrol."""
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('patrol:' || :u))"), {"u": username})
