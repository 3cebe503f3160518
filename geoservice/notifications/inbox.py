"""A person's inbox: list (newest first, keyset paging), count unread, mark read. Always the caller's own rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.errors import NotFound

COLUMNS = "n.id, n.event_id, n.action, n.title, n.body, n.created_at, n.read_at"
OWN = "n.user_id = (SELECT id FROM users WHERE username = :username)"


def list_inbox(
    session: Session, username: str, *, unread: bool = False, before: int | None = None, limit: int = 50
) -> dict[str, Any]:
    """``{"items", "next_cursor"}``: the newest ``limit`` rows older than ``before`` (an id)."""
    where = [OWN] + (["n.read_at IS NULL"] if unread else []) + (["n.id < :before"] if before else [])
    rows = session.execute(
        text(f"SELECT {COLUMNS} FROM notifications n WHERE {' AND '.join(where)} ORDER BY n.id DESC LIMIT :n"),
        {"username": username, "before": before, "n": limit + 1},
    ).mappings().all()  # fmt: skip
    items = [dict(r) for r in rows[:limit]]
    return {"items": items, "next_cursor": str(items[-1]["id"]) if len(rows) > limit else None}


def unread_count(session: Session, username: str) -> int:
    return session.execute(
        text(f"SELECT count(*) FROM notifications n WHERE {OWN} AND n.read_at IS NULL"), {"username": username}
    ).scalar_one()


def mark_read(session: Session, username: str, notification_id: int) -> dict[str, Any]:
    """Mark one of the caller's own notifications read (again: keeps the first time); 404 for anyone else's."""
    row = session.execute(
        text(f"UPDATE notifications n SET read_at = coalesce(n.read_at, now()) WHERE n.id = :id AND {OWN} "
             f"RETURNING {COLUMNS}"),
        {"id": notification_id, "username": username},
    ).mappings().first()  # fmt: skip
    if row is None:
        raise NotFound(f"no notification {notification_id} in your inbox", title="Notification not found")
    return dict(row)


def mark_all_read(session: Session, username: str) -> int:
    """Mark every unread notification of the caller read; how many were."""
    return session.execute(
        text(f"UPDATE notifications n SET read_at = now() WHERE {OWN} AND n.read_at IS NULL"), {"username": username}
    ).rowcount


def since(session: Session, username: str, after: int, limit: int = 100) -> list[dict[str, Any]]:
    """The caller's notifications newer than ``after`` (an id), oldest first: what a live stream sends next."""
    rows = session.execute(
        text(f"SELECT {COLUMNS} FROM notifications n WHERE {OWN} AND n.id > :after ORDER BY n.id LIMIT :n"),
        {"username": username, "after": after, "n": limit},
    ).mappings()  # fmt: skip
    return [dict(r) for r in rows]


def latest_id(session: Session, username: str) -> int:
    return session.execute(
        text(f"SELECT coalesce(max(n.id), 0) FROM notifications n WHERE {OWN}"), {"username": username}
    ).scalar_one()
