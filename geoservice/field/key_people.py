"""The key people register (重点人员): who sees a person in full, masking for everyone else, every read logged.

In full: the responsible worker, the staff of the person's community (dispatchers and grid
workers whose region is that community or one of its grids), and the police (handlers of the
police department). Masked: everyone else who may list the people of that grid — admins,
supervisors, dispatchers and grid workers above or beside it. Masking keeps what work needs (the
kind, the grid, the cycle, the surname) and hides what identifies a person (the given name, the
ID number's middle, the phone's middle, the address, the notes). Each person answered, in full
or masked, adds a row to ``key_person_reads`` (who, role, when, through what, in full or not), in
the same transaction as the read: an answer without its log row cannot happen.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.auth.scope import region_prefix, region_scope
from geoservice.auth.users import Principal
from geoservice.errors import Forbidden, InvalidInput, NotFound
from layers.models import KEY_PERSON_KINDS, Role

KIND_NAMES = {
    "community_correction": "社区矫正对象", "mental_disorder": "严重精神障碍患者", "drug": "吸毒人员",
    "released": "刑满释放人员", "petition": "重点信访人员", "youth": "重点青少年", "elderly_alone": "独居老人",
}  # fmt: skip
KEY_PERSON_LENGTHS = {"name": 100, "id_number": 18, "phone": 50, "address": 300}  # the columns' limits
PACK_CREATOR = "city-pack"  # created_by of the people a city pack loaded
COLUMNS = (
    "kp.id, kp.name, kp.id_number, kp.phone, kp.kind, kp.address, kp.grid_code, kp.responsible_username, "
    "kp.visit_cycle_days, kp.notes, kp.created_at"
)


def sees_in_full(principal: Principal, person: dict[str, Any], police_department: str) -> bool:
    """Whether ``principal`` reads ``person`` unmasked (the responsible worker, the community, the police)."""
    if principal.username == person["responsible_username"]:
        return True
    if principal.role == Role.handler:
        return principal.department_code == police_department
    if principal.role in (Role.dispatcher, Role.grid_worker) and principal.region_code:
        community = str(person["grid_code"])[:12]
        mine = region_prefix(principal.region_code)
        return mine.startswith(community)  # the community itself, or one of its grids
    return False


def listing_sql(principal: Principal, police_department: str) -> tuple[str, dict[str, Any]]:
    """Which key people a caller may list at all (masked or not), as a condition on ``key_people kp``."""
    if principal.role in (Role.admin, Role.supervisor):
        return "TRUE", {}
    if principal.role == Role.handler:
        return ("TRUE", {}) if principal.department_code == police_department else ("FALSE", {})
    prefix = region_scope(principal)
    if prefix is None:
        return "FALSE", {}
    return "(kp.grid_code LIKE :kp_prefix OR kp.responsible_username = :kp_user)", {
        "kp_prefix": prefix + "%", "kp_user": principal.username,
    }  # fmt: skip


def mask(person: dict[str, Any]) -> dict[str, Any]:
    """The person as anyone outside the circle sees them."""
    name = str(person["name"])
    id_number = str(person["id_number"])
    phone = str(person["phone"])
    return {
        **person,
        "name": name[:1] + "*" * max(len(name) - 1, 1),
        "id_number": (id_number[:3] + "*" * (len(id_number) - 7) + id_number[-4:]) if len(id_number) > 7 else "",
        "phone": (phone[:3] + "****" + phone[-4:]) if len(phone) >= 7 else "",
        "address": "",
        "notes": "",
    }


def person_view(person: dict[str, Any], full: bool) -> dict[str, Any]:
    shown = person if full else mask(person)
    return {**shown, "kind_name": KIND_NAMES[person["kind"]], "masked": not full}


def add_person(session: Session, principal: Principal, fields: dict[str, Any], police_department: str) -> dict:
    """Register a key person in a grid the caller's scope holds (admins: any); the answer is logged as a read."""
    if fields["kind"] not in KEY_PERSON_KINDS:
        raise InvalidInput(f"unknown kind {fields['kind']!r}; kinds: {', '.join(KEY_PERSON_KINDS)}")
    grid = fields["grid_code"]
    if not session.execute(text("SELECT 1 FROM grids WHERE code = :c LIMIT 1"), {"c": grid}).first():
        raise InvalidInput(f"there is no grid {grid}", title="Unknown grid")
    prefix = region_scope(principal)
    if principal.role != Role.admin and (prefix is None or not grid.startswith(prefix)):
        raise Forbidden(f"grid {grid} is outside your region", title="Outside your region")
    worker = fields.get("responsible_username")
    if worker and not session.execute(
        text("SELECT 1 FROM users WHERE username = :u AND role = 'grid_worker' AND NOT disabled"), {"u": worker}
    ).first():
        raise InvalidInput(f"{worker!r} is not a grid worker", title="Unknown worker")
    person_id = session.execute(
        text(
            "INSERT INTO key_people (name, id_number, phone, kind, address, grid_code, responsible_username, "
            "visit_cycle_days, notes, created_by) VALUES (:name, :id_number, :phone, :kind, :address, :grid_code, "
            ":responsible_username, :visit_cycle_days, :notes, :by) RETURNING id"
        ),
        {**fields, "by": principal.username},
    ).scalar_one()
    return read_person(session, principal, person_id, police_department, what="POST /v1/key-people")


def read_person(
    session: Session, principal: Principal, person_id: int, police_department: str, what: str
) -> dict[str, Any]:
    """One key person, in full or masked, and the read logged; outside the caller's listing: not found."""
    where, params = listing_sql(principal, police_department)
    row = session.execute(text(f"SELECT {COLUMNS} FROM key_people kp WHERE kp.id = :id AND {where}"),
                          {"id": person_id, **params}).first()  # fmt: skip
    if row is None:
        raise NotFound(f"there is no key person {person_id} that you may see", title="No such person")
    return _logged(session, principal, [dict(row._mapping)], police_department, what)[0]


def list_people(
    session: Session, principal: Principal, police_department: str, what: str,
    grid: str | None = None, kind: str | None = None, limit: int = 100,
) -> list[dict[str, Any]]:  # fmt: skip
    """Key people the caller may list, each in full or masked, every one of them logged as read."""
    where, params = listing_sql(principal, police_department)
    if grid:
        where += " AND kp.grid_code LIKE :grid"
        params["grid"] = region_prefix(grid) + "%"
    if kind:
        where += " AND kp.kind = :kind"
        params["kind"] = kind
    rows = session.execute(text(f"SELECT {COLUMNS} FROM key_people kp WHERE {where} ORDER BY kp.id LIMIT :limit"),
                           {**params, "limit": limit}).all()  # fmt: skip
    return _logged(session, principal, [dict(r._mapping) for r in rows], police_department, what)


def _logged(
    session: Session, principal: Principal, people: list[dict[str, Any]], police_department: str, what: str
) -> list[dict[str, Any]]:
    views = [person_view(p, sees_in_full(principal, p, police_department)) for p in people]
    log_reads(session, principal, [(v["id"], not v["masked"]) for v in views], what)
    return views


def log_reads(session: Session, principal: Principal, reads: list[tuple[int, bool]], what: str) -> None:
    """One log row per person answered (id, in full or not), in the caller's transaction.

    Everything that answers a key person — the register, a duty list, a visit to them — logs here,
    so the audit sees every way a person was read.
    """
    if reads:
        session.execute(
            text("INSERT INTO key_person_reads (reader, role, person_id, what, in_full) "
                 "VALUES (:reader, :role, :person, :what, :full)"),
            [{"reader": principal.username, "role": str(principal.role), "person": person, "what": what[:100],
              "full": full} for person, full in reads],
        )  # fmt: skip


def reads_of(session: Session, person_id: int | None, limit: int = 200) -> list[dict[str, Any]]:
    """The read log, newest first (for supervisors and admins)."""
    rows = session.execute(
        text("SELECT id, at, reader, role, person_id, what, in_full FROM key_person_reads "
             "WHERE CAST(:person AS bigint) IS NULL OR person_id = :person ORDER BY id DESC LIMIT :limit"),
        {"person": person_id, "limit": limit},
    )  # fmt: skip
    return [dict(r._mapping) for r in rows]


def load_key_people(session: Session, rows: list[dict[str, str]]) -> int:
    """Upsert the pack's register (rows already checked by ``city check``); return how many.

    The register has no code, so a person is matched by grid, name and ID number: a second load of
    the same pack updates them in place, and people entered through the API are left alone.
    """
    for row in rows:
        fields = {
            "name": row["name"], "id_number": row.get("id_number", ""), "phone": row.get("phone", ""),
            "kind": row["kind"], "address": row.get("address", ""), "grid_code": row["grid_code"],
            "responsible_username": row.get("responsible_username") or None,
            "visit_cycle_days": int(row["visit_cycle_days"]), "notes": row.get("notes", ""), "by": PACK_CREATOR,
        }  # fmt: skip
        updated = session.execute(
            text("UPDATE key_people SET phone = :phone, kind = :kind, address = :address, "
                 "responsible_username = :responsible_username, visit_cycle_days = :visit_cycle_days, notes = :notes "
                 "WHERE grid_code = :grid_code AND name = :name AND id_number = :id_number"),
            fields,
        ).rowcount  # fmt: skip
        if not updated:
            session.execute(
                text("INSERT INTO key_people (name, id_number, phone, kind, address, grid_code, responsible_username, "
                     "visit_cycle_days, notes, created_by) VALUES (:name, :id_number, :phone, :kind, :address, "
                     ":grid_code, :responsible_username, :visit_cycle_days, :notes, :by)"),
                fields,
            )  # fmt: skip
    return len(rows)


def log_export(session: Session, reader: str, what: str) -> int:
    """An export of the whole register is a read of every person in it: one log row each."""
    return session.execute(
        text("INSERT INTO key_person_reads (reader, role, person_id, what, in_full) "
             "SELECT :reader, 'admin', id, :what, true FROM key_people"),
        {"reader": reader[:100], "what": what[:100]},
    ).rowcount  # fmt: skip
