"""Who holds an event: handing it over (owner columns and ``event_owners`` trail), the unit at a level.

The first owner is set by the database (a ``BEFORE INSERT`` trigger, migration 0008) so every
inserter — reports, Open311, imports, ETL — gets one; every later change goes through ``hand_over``
so the current owner and the history never disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

UNIT = "unit"
DEPARTMENT = "department"
DEPARTMENT_HELD = frozenset({"dispatched", "handling", "reopened"})

CLOSE = text("UPDATE event_owners SET until = :now WHERE event_id = :id AND until IS NULL")
OPEN = text(
    "INSERT INTO event_owners (event_id, owner_kind, owner_code, since, reason) "
    "VALUES (:id, :kind, :code, :now, :reason)"
)
SET = text("UPDATE events SET owner_kind = :kind, owner_code = :code WHERE id = :id")
UNIT_AT = text("SELECT event_unit_code(:level, :grid, :community, :town, :version)")


def hand_over(session: Session, event_id: int, kind: str, code: str | None, now: datetime, reason: str) -> None:
    """Make (``kind``, ``code``) the event's owner from ``now``; a no-op when it already is.

    Runs inside the caller's transaction, which also writes the step and bumps ``row_version``.
    """
    current = session.execute(
        text("SELECT owner_kind, owner_code FROM events WHERE id = :id"), {"id": event_id}
    ).first()
    if current is not None and (current.owner_kind, current.owner_code) == (kind, code):
        return
    session.execute(SET, {"id": event_id, "kind": kind if code else None, "code": code})
    session.execute(CLOSE, {"id": event_id, "now": now})
    if code:
        session.execute(OPEN, {"id": event_id, "kind": kind, "code": code, "now": now, "reason": reason})


def unit_at(session: Session, event: dict[str, Any], level: str) -> str | None:
    """The unit holding ``event`` at ``level``: that level's code, else the next level up that exists."""
    return session.execute(
        UNIT_AT,
        {"level": level, "grid": event["grid_code"], "community": event["community_code"],
         "town": event["town_code"], "version": event["boundary_version_id"]},
    ).scalar()  # fmt: skip


def owner_history(session: Session, event_id: int) -> list[dict[str, Any]]:
    """Every owner the event had, oldest first."""
    rows = session.execute(
        text("SELECT owner_kind, owner_code, since, until, reason FROM event_owners WHERE event_id = :id ORDER BY id"),
        {"id": event_id},
    )
    return [dict(r._mapping) for r in rows]


def served_grids(session: Session, username: str) -> frozenset[str]:
    """The grids a grid worker serves (``user_grids``); empty: their region subtree applies."""
    rows = session.execute(
        text("SELECT ug.grid_code FROM user_grids ug JOIN users u ON u.id = ug.user_id WHERE u.username = :u"),
        {"u": username},
    )
    return frozenset(rows.scalars())
