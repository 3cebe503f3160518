"""Warning colour changes (蓝 → 黄 → 红) seen by the sweep become ``warning`` steps, so the rules can notify.

The colour is computed on read (``events.deadlines``); nothing stores it. To tell people when it
changes, the sweep records each colour it sees on a running clock in ``event_warnings`` keyed by
(event, clock, due time, colour) with ``ON CONFLICT DO NOTHING`` and logs a step only for a new row:
two sweeps (two workers) log a colour once, and a new deadline (a re-dispatch) is a new clock. A colour
skipped between two sweeps (none → red) is not back-filled: people hear the colour it is now.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.events.deadlines import warning_sql
from geoservice.events.log import log_step
from geoservice.settings import EventSettings

COLOUR_ZH = {"blue": "蓝色预警", "yellow": "黄色预警", "red": "红色预警"}
RECORD = text(
    "INSERT INTO event_warnings (event_id, clock, due_at, colour, seen_at) "
    "VALUES (:id, :clock, :due_at, :colour, :now) "
    "ON CONFLICT DO NOTHING RETURNING event_id"
)


def record_warnings(session: Session, now: datetime, settings: EventSettings, *, actor: str, role: str) -> int:
    """Log a ``warning`` step for every running clock whose colour is new; how many were logged."""
    seen = session.execute(
        text(
            f"""
            SELECT c.* FROM (
                SELECT e.id, e.status,
                       CASE WHEN e.status = 'reported' THEN 'accept' ELSE 'handle' END AS clock,
                       CASE WHEN e.status = 'reported' THEN e.accept_due_at ELSE e.handle_due_at END AS due_at,
                       {warning_sql(settings)} AS colour
                  FROM events e WHERE e.status IN ('reported', 'dispatched', 'handling', 'reopened')
            ) c
             WHERE c.colour <> 'none' AND c.due_at IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM event_warnings w WHERE w.event_id = c.id AND w.clock = c.clock
                                  AND w.due_at = c.due_at AND w.colour = c.colour)
             ORDER BY c.id
            """
        ),
        {"now": now},
    ).all()
    logged = 0
    for row in seen:
        params = {"id": row.id, "clock": row.clock, "due_at": row.due_at, "colour": row.colour, "now": now}
        if session.execute(RECORD, params).first() is None:
            continue  # another sweep recorded it first
        logged += 1
        clock = "受理" if row.clock == "accept" else "处置"
        log_step(
            session, row.id, at=now, actor=actor, role=role, action="warning", from_status=row.status,
            to_status=row.status, note=f"{COLOUR_ZH[row.colour]}：{clock}时限 {row.due_at.isoformat()}",
            details={"clock": row.clock, "colour": row.colour, "due_at": row.due_at},
        )  # fmt: skip
    return logged
