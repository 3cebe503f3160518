"""Open311 client applications and their API keys (only a SHA-256 of each key is stored)."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session


class ClientError(ValueError):
    """A client cannot be created or changed as asked; the message says why."""


def key_digest(api_key: str) -> str:
    """What is stored and looked up: keys are long random strings, so a plain SHA-256 is enough."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def add_client(session: Session, name: str) -> str:
    """Register a client application; returns its new key, which is shown once and never stored."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ClientError("a client name has 1 to 100 characters")
    api_key = secrets.token_urlsafe(32)
    try:
        with session.begin_nested():
            session.execute(text("INSERT INTO api_clients (name, api_key_sha256) VALUES (:n, :k)"),
                            {"n": name, "k": key_digest(api_key)})  # fmt: skip
    except IntegrityError as exc:
        raise ClientError(f"a client called {name!r} exists already") from exc
    return api_key


def client_name(session: Session, api_key: str) -> str | None:
    """The enabled client owning ``api_key``, or None."""
    return session.execute(
        text("SELECT name FROM api_clients WHERE api_key_sha256 = :k AND enabled"), {"k": key_digest(api_key)}
    ).scalar()


def set_enabled(session: Session, name: str, enabled: bool) -> None:
    """Disable (or enable again) a client; its key stops (or starts) working at once."""
    changed = session.execute(text("UPDATE api_clients SET enabled = :e WHERE name = :n"), {"e": enabled, "n": name})
    if not changed.rowcount:
        raise ClientError(f"no client called {name!r}")


def list_clients(session: Session) -> list[dict]:
    """Every client, without key digests."""
    rows = session.execute(text("SELECT name, enabled, created_at FROM api_clients ORDER BY name"))
    return [dict(r._mapping) for r in rows]
