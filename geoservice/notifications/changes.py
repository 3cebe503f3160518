"""Event changes a live stream shows dispatchers, supervisors and admins: logged steps within their scope."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.auth.scope import scope_of, scope_sql
from geoservice.auth.users import Principal
from layers.models import Role

WATCHERS = frozenset({Role.dispatcher, Role.supervisor, Role.admin})


def watches_events(principal: Principal) -> bool:
    """Whether the caller's stream carries event changes besides their own notifications."""
    return principal.role in WATCHERS


def event_changes(session: Session, principal: Principal, after: int, limit: int = 200) -> list[dict[str, Any]]:
    """Steps logged after ``after`` (an ``event_log`` id) on events the caller's scope holds, oldest first."""
    where, params = scope_sql(scope_of(principal))
    rows = session.execute(
        text(f"SELECT l.id AS log_id, l.event_id, l.action, l.at, l.from_status, l.to_status, e.status, "
             f"e.escalation_level, e.grid_code, e.department_code FROM event_log l JOIN events e ON e.id = l.event_id "
             f"WHERE l.id > :after AND {where} ORDER BY l.id LIMIT :n"),
        {**params, "after": after, "n": limit},
    ).mappings()  # fmt: skip
    return [dict(r) for r in rows]


def latest_log_id(session: Session) -> int:
    return session.execute(text("SELECT coalesce(max(id), 0) FROM event_log")).scalar_one()
