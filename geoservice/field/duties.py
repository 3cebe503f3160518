"""Duty lists (职责清单) and visits (走访): what a grid worker must do how often, and what they did.

Duties come from the city pack (``duties.csv``: code, name, level, every_days; optional
region_code, description). A visit is recorded against a duty for one unit — a grid for a
grid-level duty, a community for a community-level one — by a worker who serves it; an offline
phone's retry with the same key is the same visit. A duty is **overdue** for a unit when its last
visit is more than ``every_days`` ago, or when it was never visited; due soon in the last quarter of
its cycle.

A visit may instead be against a **key person** (``key_person_id``, no duty): it is due by the
person's own ``visit_cycle_days``, and it is about the most sensitive rows of the system, so a
key-person visit is answered as the person is — its notes only to its worker and to those who read
the person in full, every answer logged as a read of the person (``key_people``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.auth.scope import region_prefix
from geoservice.auth.users import Principal
from geoservice.errors import Forbidden, InvalidInput, NotFound
from geoservice.field.key_people import COLUMNS, log_reads, person_view, sees_in_full
from layers.models import Role

DUE_SOON = 0.25  # the last quarter of a cycle
VISIT_COLUMNS = (
    "v.id, v.duty_code, v.key_person_id, v.unit_code, v.username, v.visited_at, v.notes, v.place_code, "
    "ST_X(v.geom) AS lon, ST_Y(v.geom) AS lat, v.recorded_at"
)


def load_duties(session: Session, rows: list[dict[str, str]]) -> int:
    """Upsert the pack's duties by code (rows already checked by ``city check``); return how many."""
    if rows:
        session.execute(
            text(
                "INSERT INTO duties (code, name, level, every_days, region_code, description) VALUES "
                "(:code, :name, :level, CAST(:every_days AS integer), NULLIF(:region_code, ''), :description) "
                "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, level = EXCLUDED.level, "
                "every_days = EXCLUDED.every_days, region_code = EXCLUDED.region_code, "
                "description = EXCLUDED.description"
            ),
            rows,
        )
    return len(rows)


def worker_units(session: Session, principal: Principal, version_id: int) -> dict[str, dict[str, str]]:
    """The grids and communities a grid worker serves: ``{"grid": {code: name}, "community": {code: name}}``.

    The grids of ``user_grids`` when the account has any, else the grids of their region subtree
    in the version in force (a region_code that is a grid is that one grid).
    """
    if principal.role != Role.grid_worker or not principal.region_code:
        raise Forbidden("duty lists and visits are a grid worker's", title="Not a grid worker")
    grids = session.execute(
        text(
            "SELECT g.code, g.name, g.community_code, r.name AS community_name FROM grids g "
            "LEFT JOIN regions r ON r.version_id = g.version_id AND r.code = g.community_code "
            "WHERE g.version_id = :version AND CASE WHEN EXISTS (SELECT 1 FROM user_grids ug JOIN users u "
            "ON u.id = ug.user_id WHERE u.username = :user) THEN g.code IN (SELECT ug.grid_code FROM user_grids ug "
            "JOIN users u ON u.id = ug.user_id WHERE u.username = :user) ELSE g.code LIKE :prefix END ORDER BY g.code"
        ),
        {"version": version_id, "user": principal.username, "prefix": region_prefix(principal.region_code) + "%"},
    ).all()
    return {
        "grid": {g.code: g.name for g in grids},
        "community": {g.community_code: g.community_name or g.community_code for g in grids},
    }


def record_visit(
    session: Session,
    principal: Principal,
    version_id: int,
    *,
    duty_code: str | None,
    unit_code: str | None,
    visited_at: datetime,
    police_department: str,
    key_person_id: int | None = None,
    notes: str = "",
    place_code: str | None = None,
    point: tuple[float, float] | None = None,
    idempotency_key: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Record a visit against a duty for a unit, or against a key person; (the visit, whether it is new).

    The same key again answers the first visit.
    """
    what = "POST /v1/visits"
    if idempotency_key:
        found = _visit_by_key(session, principal.username, idempotency_key)
        if found is not None:
            return _answered(session, principal, found, police_department, what), False
    if key_person_id is not None:
        unit_code = _person_unit(session, principal, version_id, key_person_id, unit_code)
    else:
        unit_code = _duty_unit(session, principal, version_id, str(duty_code), unit_code)
    if place_code and not session.execute(text("SELECT 1 FROM key_places WHERE code = :c"), {"c": place_code}).first():
        raise InvalidInput(f"there is no key place {place_code!r}", title="Unknown place")
    row = session.execute(
        text(
            "INSERT INTO visits (duty_code, key_person_id, unit_code, username, visited_at, notes, place_code, geom, "
            "idempotency_key) VALUES (:duty, :person, :unit, :user, :at, :notes, :place, "
            "CASE WHEN CAST(:lon AS float8) IS NULL THEN NULL ELSE ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) END, "
            ":key) ON CONFLICT (username, idempotency_key) DO NOTHING RETURNING id"
        ),
        {"duty": duty_code if key_person_id is None else None, "person": key_person_id, "unit": unit_code,
         "user": principal.username, "at": visited_at, "notes": notes, "place": place_code,
         "lon": point[0] if point else None, "lat": point[1] if point else None, "key": idempotency_key},
    ).scalar()  # fmt: skip
    if row is None:  # a concurrent retry with the same key won
        found = _visit_by_key(session, principal.username, str(idempotency_key))
        assert found is not None
        return _answered(session, principal, found, police_department, what), False
    return visible_visit(session, row, principal, police_department, what), True


def _duty_unit(session: Session, principal: Principal, version_id: int, duty_code: str, unit_code: str | None) -> str:
    """The unit of a duty visit, checked: a duty of the list, a unit of its level the worker serves."""
    duty = session.execute(text("SELECT code, level, region_code FROM duties WHERE code = :c"),
                           {"c": duty_code}).first()  # fmt: skip
    if duty is None:
        raise InvalidInput(f"there is no duty {duty_code!r} in the duty list", title="Unknown duty")
    units = worker_units(session, principal, version_id)[duty.level]
    if unit_code not in units:
        mine = ", ".join(sorted(units)) or "none"
        raise InvalidInput(f"{unit_code!r} is not a {duty.level} you serve (yours: {mine})", title="Not your unit")
    if duty.region_code and not unit_code.startswith(region_prefix(duty.region_code)):
        raise InvalidInput(f"duty {duty_code!r} does not apply to {unit_code}", title="Duty does not apply")
    return unit_code


def _person_unit(session: Session, principal: Principal, version_id: int, person_id: int, unit_code: str | None) -> str:
    """The grid of a key-person visit: the person's, visited by their responsible worker or one serving the grid.

    A person who does not exist and one the worker may not visit are the same answer, so a visit
    cannot probe the register.
    """
    person = session.execute(text("SELECT grid_code, responsible_username FROM key_people WHERE id = :id"),
                             {"id": person_id}).first()  # fmt: skip
    allowed = person is not None and (
        person.responsible_username == principal.username
        or person.grid_code in worker_units(session, principal, version_id)["grid"]
    )
    if person is None or not allowed:
        raise InvalidInput(f"there is no key person {person_id} whom you visit", title="Not your key person")
    if unit_code is not None and unit_code != person.grid_code:
        raise InvalidInput(f"key person {person_id} is of grid {person.grid_code}, not {unit_code}",
                           title="Not the person's grid")  # fmt: skip
    return str(person.grid_code)


def visible_visit(
    session: Session, visit_id: int, principal: Principal, police_department: str, what: str
) -> dict[str, Any]:
    """A visit for its worker, admins, supervisors and the dispatchers whose subtree holds its unit.

    A key-person visit also for the person's responsible worker; its notes only for those who read
    the person in full (``masked`` says which), and the answer is logged as a read of the person.
    """
    found = session.execute(
        text(f"SELECT {VISIT_COLUMNS}, kp.responsible_username AS person_responsible FROM visits v "
             "LEFT JOIN key_people kp ON kp.id = v.key_person_id WHERE v.id = :id"),
        {"id": visit_id},
    ).first()  # fmt: skip
    visit = None if found is None else dict(found._mapping)
    if visit is None or not _may_read(principal, visit):
        raise NotFound(f"there is no visit {visit_id} that you may see", title="No such visit")
    del visit["person_responsible"]
    return _answered(session, principal, visit, police_department, what)


def _may_read(principal: Principal, visit: dict[str, Any]) -> bool:
    if principal.username in (visit["username"], visit["person_responsible"]):
        return True
    if principal.role in (Role.admin, Role.supervisor):
        return True
    if principal.role == Role.dispatcher and principal.region_code:
        return str(visit["unit_code"]).startswith(region_prefix(principal.region_code))
    return False


def _answered(
    session: Session, principal: Principal, visit: dict[str, Any], police_department: str, what: str
) -> dict[str, Any]:
    """The visit as the caller sees it; a key-person visit masked outside the person's circle and logged."""
    if visit["key_person_id"] is None:
        return {**visit, "masked": False}
    person = session.execute(text("SELECT grid_code, responsible_username FROM key_people WHERE id = :id"),
                             {"id": visit["key_person_id"]}).one()._mapping  # fmt: skip
    full = principal.username == visit["username"] or sees_in_full(principal, dict(person), police_department)
    log_reads(session, principal, [(visit["key_person_id"], full)], what)
    return {**visit, "masked": not full} if full else {**visit, "notes": "", "masked": True}


def _visit_by_key(session: Session, username: str, key: str) -> dict[str, Any] | None:
    found = session.execute(
        text(f"SELECT {VISIT_COLUMNS} FROM visits v WHERE v.username = :u AND v.idempotency_key = :k"),
        {"u": username, "k": key},
    ).first()
    return None if found is None else dict(found._mapping)


def due_status(last: datetime | None, every_days: int, now: datetime) -> tuple[datetime | None, str]:
    """When a cycle falls due after ``last``, and its status: overdue (or never done), due soon, ok."""
    cycle = timedelta(days=every_days)
    due = last + cycle if last is not None else None
    if due is None or due < now:
        return due, "overdue"
    if due - now <= cycle * DUE_SOON:
        return due, "due_soon"
    return due, "ok"


WARNING = {"overdue": "red", "due_soon": "yellow", "ok": "none"}
ORDER = {"overdue": 0, "due_soon": 1, "ok": 2}


def my_duties(session: Session, principal: Principal, version_id: int, now: datetime) -> list[dict[str, Any]]:
    """Every duty × unit the worker serves, with its last visit and when it is due; overdue first."""
    units = worker_units(session, principal, version_id)
    duties = session.execute(text("SELECT code, name, level, every_days, region_code FROM duties ORDER BY code")).all()
    last = {
        (r.duty_code, r.unit_code): r.last
        for r in session.execute(
            text("SELECT duty_code, unit_code, max(visited_at) AS last FROM visits "
                 "WHERE unit_code = ANY(:units) AND duty_code IS NOT NULL GROUP BY duty_code, unit_code"),
            {"units": [*units["grid"], *units["community"]]},
        )
    }  # fmt: skip
    items = []
    for duty in duties:
        for code, name in units[duty.level].items():
            if duty.region_code and not code.startswith(region_prefix(duty.region_code)):
                continue
            visited = last.get((duty.code, code))
            due, status = due_status(visited, duty.every_days, now)
            items.append({
                "duty_code": duty.code, "duty_name": duty.name, "level": duty.level, "every_days": duty.every_days,
                "unit_code": code, "unit_name": name, "last_visit_at": visited, "due_at": due, "status": status,
                "warning": WARNING[status],
            })  # fmt: skip
    items.sort(key=lambda i: (ORDER[i["status"]], i["due_at"] or now - timedelta(days=100_000), i["unit_code"]))
    return items


def my_key_people(
    session: Session, principal: Principal, now: datetime, police_department: str, what: str,
    status: str | None = None,
) -> tuple[dict[str, int], list[dict[str, Any]]]:  # fmt: skip
    """The key people the worker is responsible for, each with their last visit and when the next is due.

    Returns the counts per status (all of the worker's people) and the people of ``status`` (all
    when None), overdue first. Only the responsible worker's own people, who read them in full
    anyway; every person *answered* is logged as read, as any answer of the register is — those a
    status filter leaves out are counted, not read.
    """
    rows = session.execute(
        text(f"SELECT {COLUMNS}, (SELECT max(v.visited_at) FROM visits v WHERE v.key_person_id = kp.id) AS last "
             "FROM key_people kp WHERE kp.responsible_username = :me ORDER BY kp.id"),
        {"me": principal.username},
    ).all()  # fmt: skip
    counts = dict.fromkeys(ORDER, 0)
    items = []
    for row in rows:
        person = dict(row._mapping)
        last = person.pop("last")
        due, state = due_status(last, person["visit_cycle_days"], now)
        counts[state] += 1
        if status is not None and state != status:
            continue
        view = person_view(person, sees_in_full(principal, person, police_department))
        items.append({
            "key_person_id": person["id"], "person": view, "every_days": person["visit_cycle_days"],
            "last_visit_at": last, "due_at": due, "status": state, "warning": WARNING[state],
        })  # fmt: skip
    log_reads(session, principal, [(i["key_person_id"], not i["person"]["masked"]) for i in items], what)
    items.sort(key=lambda i: (ORDER[i["status"]], i["due_at"] or now - timedelta(days=100_000), i["key_person_id"]))
    return counts, items
