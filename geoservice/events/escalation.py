"""One level up the region tree for one event: the single way escalation is applied outside a transition.

A placeholder with the owners work's exact signature, so supervision can escalate overdue orders
today; the owners helper replaces this module (owner hand-over, that level's deadline) at merge.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.events.log import log_step
from geoservice.events.workflow import next_level

LOCK = text("SELECT status, escalation_level FROM events WHERE id = :id FOR UPDATE")
RAISE = text(
    "UPDATE events SET escalation_level = :to_level, escalation_count = escalation_count + 1, "
    "row_version = row_version + 1, updated_at = :now WHERE id = :id"
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
    to_level = next_level(row.escalation_level)
    if to_level is None:
        return None
    session.execute(RAISE, {"to_level": to_level, "now": now, "id": event_id})
    log_step(
        session, event_id, at=now, actor=actor, role=role, action="escalate", from_status=row.status,
        to_status=row.status, note=note, details={**(details or {}), "from_level": row.escalation_level,
                                                  "to_level": to_level},
    )  # fmt: skip
    return to_level
