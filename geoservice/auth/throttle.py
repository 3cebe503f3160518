"""The sign-in throttle: a growing delay, then a lock, per account name and per client address.

Kept in PostgreSQL (``signin_throttle``), not in a process, so that several API workers (and
servers) share it: a guesser spread over workers meets the same count. An account name is
counted as typed, known or not, so the answers never tell which names exist. The first
``signin_free_failures`` failures cost nothing; each further one makes the next attempt wait
``signin_delay_s``, doubling up to ``signin_max_delay_s``; at ``signin_lock_after`` failures of
one account (``signin_address_lock_after`` of one address) it is locked for ``signin_lock_s``,
unless an admin lifts the lock first (``geoservice users unlock``, ``POST /v1/users/{name}/unlock``).
A failure older than ``signin_window_s`` since the one before starts the count again; a success
clears the account's count (not the address's, which a guesser could otherwise reset with an
account of their own). While waiting or locked, attempts are refused without checking the
password and are not counted. Failed sign-ins are logged (name, address, count), never the password.
"""

from __future__ import annotations

import logging
import math

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.auth.users import Principal, authenticate, password_matches, set_password
from geoservice.errors import InvalidInput, NotFound, TooManyAttempts
from geoservice.settings import AuthSettings

log = logging.getLogger("geoservice.signin")
MAX_USERNAME = 100  # users.username is String(100)


def sign_in(session: Session, username: str, password: str, address: str, settings: AuthSettings) -> Principal | None:
    """The user if the password is right, None if not (the failure counted and logged).

    Raises ``TooManyAttempts`` while the account or the address waits out a delay or a lock, and
    ``InvalidInput`` for a name no account can have (PostgreSQL text holds no NUL; names are short).
    """
    _check_name(username)
    _refuse_while_throttled(session, username, address)
    principal = authenticate(session, username, password)
    if principal is not None:
        _clear_account(session, username)
        return principal
    _failed(session, username, address, settings)
    return None


def _check_name(username: str) -> None:
    if len(username) > MAX_USERNAME or "\x00" in username:
        raise InvalidInput(f"a username has at most {MAX_USERNAME} characters and no NUL byte")


def _failed(session: Session, username: str, address: str, settings: AuthSettings) -> None:
    """Count a failed password check against the account and the address, and log it (never the password)."""
    counts = {
        kind: _count_failure(session, kind, subject, lock_after, settings)
        for kind, subject, lock_after in (
            ("account", username, settings.signin_lock_after),
            ("address", address, settings.signin_address_lock_after),
        )
    }  # fmt: skip
    log.warning(
        "sign-in failed",
        extra={"username": username, "address": address, "account_failures": counts["account"],
               "address_failures": counts["address"]},
    )  # fmt: skip


def change_own_password(
    session: Session, username: str, current: str, new: str, address: str, settings: AuthSettings
) -> bool:
    """Set a new password after checking the current one, under the same throttle as signing in.

    Checking a password is checking a password: without the throttle this route would let a guesser
    try passwords (one-time ones included) as fast as it can send them. False when the current
    password is wrong (the failure counted): the caller answers after committing, so the count stays.
    """
    _check_name(username)
    _refuse_while_throttled(session, username, address)
    if not password_matches(session, username, current):
        _failed(session, username, address, settings)
        return False
    set_password(session, username, current, new)
    _clear_account(session, username)
    return True


def unlock(session: Session, username: str) -> bool:
    """Lift an account's lock and delay (an admin's call); False when it had none."""
    possible = len(username) <= MAX_USERNAME and "\x00" not in username
    known = possible and session.execute(text("SELECT 1 FROM users WHERE username = :u"), {"u": username}).first()
    if not known:
        raise NotFound(f"no user called {username!r}", title="No such user")
    removed = _clear_account(session, username)
    log.info("sign-in lock lifted", extra={"username": username, "had_lock": bool(removed)})
    return bool(removed)


def _clear_account(session: Session, username: str) -> int:
    query = text("DELETE FROM signin_throttle WHERE kind = 'account' AND subject = :u")
    return session.execute(query, {"u": username}).rowcount


def _refuse_while_throttled(session: Session, username: str, address: str) -> None:
    rows = session.execute(
        text(
            "SELECT kind, locked_until > now() AS locked, "
            "  extract(epoch FROM greatest(blocked_until, locked_until) - now()) AS wait_s "
            "FROM signin_throttle WHERE ((kind = 'account' AND subject = :u) OR (kind = 'address' AND subject = :a)) "
            "AND greatest(blocked_until, locked_until) > now() ORDER BY wait_s DESC"
        ),
        {"u": username, "a": address},
    ).all()
    if not rows:
        return
    row = rows[0]
    wait = max(1, math.ceil(float(row.wait_s)))
    what = "this account" if row.kind == "account" else "your address"
    if row.locked:
        detail = f"too many failed sign-ins: {what} is locked for {wait} s, or until an admin lifts the lock"
        raise TooManyAttempts(detail, title="Sign-in locked", retry_after_s=wait)
    detail = f"too many failed sign-ins from {what}: try again in {wait} s"
    raise TooManyAttempts(detail, title="Sign-in delayed", retry_after_s=wait)


def _count_failure(session: Session, kind: str, subject: str, lock_after: int, settings: AuthSettings) -> int:
    """Count one failure (atomically: workers may count the same row at once) and set the wait it earns."""
    failures = session.execute(
        text(
            "INSERT INTO signin_throttle AS t (kind, subject, failures, last_failure_at) VALUES (:k, :s, 1, now()) "
            "ON CONFLICT (kind, subject) DO UPDATE SET last_failure_at = now(), failures = CASE "
            "  WHEN t.last_failure_at < now() - make_interval(secs => :window) THEN 1 ELSE t.failures + 1 END "
            "RETURNING failures"
        ),
        {"k": kind, "s": subject, "window": settings.signin_window_s},
    ).scalar_one()
    blocked_s, locked_s = wait_after(failures, lock_after, settings)
    session.execute(
        text(
            "UPDATE signin_throttle SET "
            "  blocked_until = CASE WHEN :blocked > 0 THEN now() + make_interval(secs => :blocked) END, "
            "  locked_until = CASE WHEN :locked > 0 THEN now() + make_interval(secs => :locked) ELSE locked_until END "
            "WHERE kind = :k AND subject = :s"
        ),
        {"k": kind, "s": subject, "blocked": blocked_s, "locked": locked_s},
    )
    return int(failures)


def wait_after(failures: int, lock_after: int, settings: AuthSettings) -> tuple[float, float]:
    """(delay, lock) in seconds earned by the ``failures``-th failure in a row; 0: none."""
    if failures >= lock_after:
        return 0.0, settings.signin_lock_s
    extra = failures - settings.signin_free_failures
    if extra <= 0:
        return 0.0, 0.0
    return min(settings.signin_delay_s * 2 ** (extra - 1), settings.signin_max_delay_s), 0.0

