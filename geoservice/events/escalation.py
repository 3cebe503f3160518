"""Escalation moves the work: the event goes to the next unit up its own tree, on that level's deadline.

村 → 镇 → 县: grid → community → town → city.

The one way to escalate — a person's ``escalate`` step (``transitions``) and the deadline sweep
(``sweep``) both call ``escalate_one_level``, so the owner, the history, the log row and the new
deadline never depend on who escalated. Unit-held states (reported, accepted, returned, handled)
keep their status; department-held ones (dispatched, handling, reopened) are taken back by the
higher unit: status ``returned``, handler cleared, to be dispatched again from the new level. The
department keeps its read-only view (handlers see events whose ``department_code`` is theirs).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.events.levels import level_hours
from geoservice.events.log import log_step
from geoservice.events.owners import DEPARTMENT_HELD, UNIT, hand_over, unit_at
from geoservice.events.workflow import next_level

LOCK = text(
    "SELECT id, status, escalation_level, escalation_count, grid_code, community_code, town_code, "
    "boundary_version_id, owner_kind, owner_code, accept_due_at FROM events WHERE id = :id FOR UPDATE"
)


def escalate_one_level(
    session: Session,
    event_id: int,
    now: datetime,
    *,
    actor: str,
    role: str,
    note: str,
    details: dict[str, Any] | None = None,
) -> str | None:
    """Hand the event to the next unit up; the new level, or None when it is already at city level."""
    row = session.execute(LOCK, {"id": event_id}).first()
    if row is None:
        return None
    event = dict(row._mapping)
    to_level = next_level(event["escalation_level"])
    if to_level is None:
        return None
    to_owner = unit_at(session, event, to_level)
    changes: dict[str, Any] = {"escalation_level": to_level}
    status = event["status"]
    if status in DEPARTMENT_HELD:
        changes.update(status="returned", handler_username=None)
    hours = level_hours(session, to_level)
    if status == "reported" and hours is not None:
        changes["accept_due_at"] = hours.accept_due(now)  # the new level's accept clock
    assignments = ", ".join(f"{c} = :set_{c}" for c in changes)
    session.execute(
        text(
            f"UPDATE events SET {assignments}, escalation_count = escalation_count + 1, "
            "row_version = row_version + 1, updated_at = :now WHERE id = :id"
        ),
        {**{f"set_{c}": v for c, v in changes.items()}, "now": now, "id": event_id},
    )
    hand_over(session, event_id, UNIT, to_owner, now, f"escalated to {to_level}")
    log_step(
        session, event_id, at=now, actor=actor, role=role, action="escalate", from_status=status,
        to_status=changes.get("status", status), note=note,
        details={**(details or {}), "from_level": event["escalation_level"], "to_level": to_level,
                 "from_owner": _owner(event["owner_kind"], event["owner_code"]), "to_owner": _owner(UNIT, to_owner),
                 "accept_due_at": changes.get("accept_due_at")},
    )  # fmt: skip
    return to_level


def _owner(kind: str | None, code: str | None) -> str | None:
    """An owner as one string for the log: ``unit:320682100200``, ``department:urban_management``."""
    return f"{kind}:{code}" if kind and code else None
