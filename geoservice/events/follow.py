"""Following a report: the reporter's token, public progress notes, and what a follower may read.

An anonymous reporter gets a follow token in the report's answer. It is an HMAC of the event's
stored idempotency key under the service's secret, so a retried report (same key) hands back the
same token, while the database keeps only its SHA-256 (``events.follow_token_sha256``): a dump
leaks no working link. What a token shows is the report's status, dates and public notes — or,
once merged, its master's — and nothing else: no description, place, names or department.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.events.transitions import PUBLIC_NOTE

DATES = ("reported_at", "accepted_at", "dispatched_at", "handling_at", "handled_at", "verified_at", "archived_at",
         "evaluated_at", "updated_at")  # fmt: skip
PROGRESS = f"SELECT id, status, {', '.join(DATES)}, merged_into, merged_at FROM events"
NOTES = text(
    "SELECT at, to_status AS status, note FROM event_log "
    f"WHERE event_id = ANY(:ids) AND (details->>'{PUBLIC_NOTE}')::boolean ORDER BY at, id"
)


def follow_token(secret: str, idempotency_key: str) -> str:
    """The token of the event stored under ``idempotency_key`` (always set: ``auto:<uuid>`` without one)."""
    return hmac.new(secret.encode(), f"follow:{idempotency_key}".encode(), hashlib.sha256).hexdigest()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_follow_token(session: Session, event_id: int, secret: str) -> str:
    """The event's follow token, its hash stored the first time (a retry gets the same token back)."""
    key = session.execute(text("SELECT idempotency_key FROM events WHERE id = :id"), {"id": event_id}).scalar_one()
    token = follow_token(secret, key)
    session.execute(
        text("UPDATE events SET follow_token_sha256 = :h WHERE id = :id AND follow_token_sha256 IS NULL"),
        {"h": token_hash(token), "id": event_id},
    )
    return token


def public_notes(session: Session, event_ids: list[int]) -> list[dict[str, Any]]:
    """The notes staff marked public on these events, oldest first (private notes never leave staff views)."""
    return [dict(r._mapping) for r in session.execute(NOTES, {"ids": event_ids})]


def progress(session: Session, event_id: int) -> dict[str, Any] | None:
    """Status, dates and public notes of an event — and, when merged, its master's in ``master``."""
    row = session.execute(text(f"{PROGRESS} WHERE id = :id"), {"id": event_id}).first()
    if row is None:
        return None
    view = dict(row._mapping)
    view["public_notes"] = public_notes(session, [event_id])
    if view["merged_into"] is not None:
        view["master"] = master_block(session, view["merged_into"])
    return view


def master_block(session: Session, master_id: int) -> dict[str, Any]:
    """What a merged report shows of its master: its status, dates and public notes."""
    row = session.execute(text(f"{PROGRESS} WHERE id = :id"), {"id": master_id}).one()
    block = {k: v for k, v in row._mapping.items() if k not in ("merged_into", "merged_at")}
    block["public_notes"] = public_notes(session, [master_id])
    return block


def followed(session: Session, token: str) -> dict[str, Any] | None:
    """The progress of the report behind a follow token; None for a token no report has."""
    event_id = session.execute(
        text("SELECT id FROM events WHERE follow_token_sha256 = :h"), {"h": token_hash(token)}
    ).scalar()
    return None if event_id is None else progress(session, event_id)


def my_reports(session: Session, username: str, limit: int = 100) -> list[dict[str, Any]]:
    """A signed-in citizen's own reports, newest first, each with its progress (and master's, if merged)."""
    rows = session.execute(
        text(
            "SELECT id, category_code, description FROM events WHERE reporter_username = :u "
            "ORDER BY reported_at DESC, id DESC LIMIT :limit"
        ),
        {"u": username, "limit": limit},
    ).all()
    answer = []
    for row in rows:
        view = progress(session, row.id)
        assert view is not None
        answer.append({**view, "category_code": row.category_code, "description": row.description})
    return answer
