"""The one way a step is written to ``event_log`` (append-only): every step, whoever takes it.

Transitions, the deadline sweep, supervision, co-tasks and merges all log through ``log_step`` so
that the audit trail (and everything that reads it: notifications, the history view) has one shape.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

LOG = text(
    "INSERT INTO event_log (event_id, at, actor, role, action, from_status, to_status, note, details) "
    "VALUES (:id, :at, :actor, :role, :action, :from_status, :to_status, :note, CAST(:details AS jsonb))"
)


def log_step(
    session: Session,
    event_id: int,
    *,
    at: datetime,
    actor: str,
    role: str,
    action: str,
    from_status: str,
    to_status: str,
    note: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Append one row; ``details`` is stored as JSON (dates as ISO strings, Chinese as itself)."""
    session.execute(
        LOG,
        {
            "id": event_id, "at": at, "actor": actor, "role": role, "action": action, "from_status": from_status,
            "to_status": to_status, "note": note,
            "details": json.dumps(details or {}, ensure_ascii=False, default=_iso),
        },
    )  # fmt: skip


def _iso(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
