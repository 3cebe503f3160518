"""Users: argon2-hashed passwords, roles, scopes; created by ``geoservice users add`` or the demo."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geoservice.auth.passwords import hash_matches, hash_password
from geoservice.errors import Forbidden, InvalidInput
from layers.enums import Role

SCOPED_BY_REGION = {Role.dispatcher, Role.grid_worker}


class UserError(ValueError):
    """A user cannot be created or changed as asked; the message says why."""


class PasswordChangeRequired(Forbidden):
    """The right one-time password, which must be replaced before the account signs in."""

    title = "Password change required"


@dataclass(frozen=True)
class Principal:
    """The caller of a request: a signed-in user, or the anonymous public."""

    username: str
    role: Role
    region_code: str | None = None
    department_code: str | None = None

    @property
    def anonymous(self) -> bool:
        return self.username == ANONYMOUS.username


ANONYMOUS = Principal("anonymous", Role.public)


def add_user(
    session: Session,
    username: str,
    password: str,
    role: Role,
    *,
    region_code: str | None = None,
    department_code: str | None = None,
    display_name: str = "",
) -> Principal:
    """Create a user; scoped roles must name their region (dispatcher, grid worker) or department (handler)."""
    if len(password) < 8:
        raise UserError("passwords have at least 8 characters")
    if role in SCOPED_BY_REGION and not region_code:
        raise UserError(f"a {role} is scoped to a region: give its code (--region)")
    if role == Role.handler and not department_code:
        raise UserError("a handler belongs to a department: give its code (--department)")
    if region_code is not None:
        _check_region(session, region_code)
    if (
        department_code
        and not session.execute(text("SELECT 1 FROM departments WHERE code = :c"), {"c": department_code}).first()
    ):
        raise UserError(f"no department with code {department_code!r}")
    try:
        with session.begin_nested():
            session.execute(
                text(
                    "INSERT INTO users (username, password_hash, role, region_code, department_code, display_name) "
                    "VALUES (:u, :h, :r, :region, :dept, :name)"
                ),
                {
                    "u": username,
                    "h": hash_password(password),
                    "r": role.value,
                    "region": region_code,
                    "dept": department_code,
                    "name": display_name,
                },  # fmt: skip
            )
    except IntegrityError as exc:
        raise UserError(f"a user called {username!r} exists already") from exc
    return Principal(username, role, region_code, department_code)


def _check_region(session: Session, code: str) -> None:
    """A scope is a region (12 digits) or one grid (15 digits) of some boundary version, past or draft too."""
    if not (code.isascii() and code.isdigit() and len(code) in (12, 15)):
        raise UserError(f"{code!r} is not a region code (12 digits) or a grid code (15 digits)")
    layer = "regions" if len(code) == 12 else "grids"
    if session.execute(text(f"SELECT 1 FROM {layer} WHERE code = :c LIMIT 1"), {"c": code}).first() is None:
        raise UserError(f"no {'region' if layer == 'regions' else 'grid'} with code {code} in any boundary version")


def authenticate(session: Session, username: str, password: str) -> Principal | None:
    """The user if the password is right and the account enabled; None otherwise (no hint which)."""
    row = session.execute(
        text(
            "SELECT password_hash, role, region_code, department_code, disabled, must_change_password "
            "FROM users WHERE username = :u"
        ),
        {"u": username},
    ).first()
    if row is None:
        hash_password(password)  # same work as a real check: timing does not reveal which usernames exist
        return None
    if not hash_matches(row.password_hash, password):
        return None
    if row.disabled:
        return None
    if row.must_change_password:  # said only to whoever knows the one-time password
        raise PasswordChangeRequired(
            "this account still has its one-time password: set your own first (POST /v1/auth/password)"
        )
    return Principal(username, Role(row.role), row.region_code, row.department_code)


def password_matches(session: Session, username: str, password: str) -> bool:
    """Whether an enabled account has this password (a one-time one included); no hint which part failed."""
    row = session.execute(
        text("SELECT password_hash FROM users WHERE username = :u AND NOT disabled"), {"u": username}
    ).first()
    if row is None:
        hash_password(password)  # same work as a real check
        return False
    return hash_matches(row.password_hash, password)


def set_password(session: Session, username: str, current: str, new: str) -> None:
    """Replace a password whose current value the caller has checked (``auth.throttle.change_own_password``)."""
    if len(new) < 8 or new == current:
        raise InvalidInput("the new password has at least 8 characters and differs from the current one")
    session.execute(
        text("UPDATE users SET password_hash = :h, must_change_password = false WHERE username = :u"),
        {"h": hash_password(new), "u": username},
    )


def active_principal(session: Session, username: str) -> Principal | None:
    """The current role and scope of an enabled user (tokens are checked against it on every use)."""
    row = session.execute(
        text("SELECT role, region_code, department_code FROM users WHERE username = :u AND NOT disabled"),
        {"u": username},
    ).first()
    return None if row is None else Principal(username, Role(row.role), row.region_code, row.department_code)


def list_users(session: Session) -> list[dict]:
    """Every user without the password hash."""
    rows = session.execute(
        text("SELECT username, role::text AS role, region_code, department_code, disabled FROM users ORDER BY username")
    )
    return [dict(r._mapping) for r in rows]


def set_disabled(session: Session, username: str, disabled: bool = True) -> None:
    """Disable (or enable) an account; its tokens stop working at once."""
    updated = session.execute(
        text("UPDATE users SET disabled = :d WHERE username = :u"), {"d": disabled, "u": username}
    ).rowcount
    if not updated:
        raise UserError(f"no user called {username!r}")
