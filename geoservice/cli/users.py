"""``geoservice users``: accounts, roles and scopes."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from geoservice.auth.throttle import unlock
from geoservice.auth.users import UserError, add_user, list_users, set_disabled
from geoservice.cli.output import console, fail
from geoservice.errors import NotFound
from geoservice.infra.database import open_database, transaction
from layers.models import Role

users_app = typer.Typer(help="People who sign in: roles and scopes.")


@users_app.command("add")
def users_add(
    username: str,
    role: Annotated[Role, typer.Option(help="what the user may do")],
    region: Annotated[str | None, typer.Option(help="region code a dispatcher or grid worker is scoped to")] = None,
    department: Annotated[str | None, typer.Option(help="department code of a handler")] = None,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)] = "",
) -> None:
    """Create a user (the password is asked for, or given with --password)."""
    try:
        with transaction(open_database()) as session:
            add_user(session, username, password, role, region_code=region, department_code=department)
    except UserError as exc:
        raise fail(str(exc)) from exc
    console.print(f"added {username} ({role})")


@users_app.command("list")
def users_list() -> None:
    """Every user, role, scope and state."""
    with transaction(open_database()) as session:
        rows = list_users(session)
    table = Table("username", "role", "region", "department", "state")
    for u in rows:
        table.add_row(u["username"], u["role"], u["region_code"] or "", u["department_code"] or "",
                      "disabled" if u["disabled"] else "active")  # fmt: skip
    console.print(table)


@users_app.command("disable")
def users_disable(username: str) -> None:
    """Disable an account; its tokens stop working at once."""
    try:
        with transaction(open_database()) as session:
            set_disabled(session, username)
    except UserError as exc:
        raise fail(str(exc)) from exc
    console.print(f"disabled {username}")


@users_app.command("unlock")
def users_unlock(username: str) -> None:
    """Lift an account's sign-in delay or lock (after too many failed sign-ins) at once."""
    try:
        with transaction(open_database()) as session:
            had = unlock(session, username)
    except NotFound as exc:
        raise fail(str(exc)) from exc
    console.print(f"unlocked {username}" if had else f"{username} was not locked")
