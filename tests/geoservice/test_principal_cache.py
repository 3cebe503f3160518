"""The per-process cache of signed-in callers: it saves the users lookup, and never outlives a change.

Each test waits for the watcher to be listening (the cache answers nothing before), signs in,
changes the users table the way the CLI does (another transaction, as another process would)
and checks what the API answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text

from geoservice.app import create_app
from geoservice.auth.users import set_disabled
from geoservice.infra.database import transaction
from geoservice.settings import AuthSettings
from layers.models import Role
from tests.geoservice.signin import sign_in
from tests.geoservice.test_locate_api import load_tiny_city

SETTINGS = AuthSettings(secret_key="c" * 40, principal_cache_s=60)


@pytest.fixture
def app(empty_db: Engine) -> Iterator[FastAPI]:
    load_tiny_city(empty_db)
    app = create_app(engine=empty_db, auth_settings=SETTINGS)
    with TestClient(app):
        wait_for(lambda: app.state.principals.trusted, "the users watcher to listen")
        yield app


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app)


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 10.0) -> float:
    """Poll ``condition``; the seconds it took, or fail naming what never happened."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            pytest.fail(f"waited {seconds} s for {what}")
        time.sleep(0.005)
    return time.monotonic() - started


def users_queries(engine: Engine, call: Callable[[], object]) -> int:
    """How many statements reading ``users`` the engine ran during ``call``."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001
        if "FROM users" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return len(seen)


def me(client: TestClient, auth: dict[str, str]) -> int:
    return client.get("/v1/auth/me", headers=auth).status_code


def test_a_known_caller_is_answered_without_reading_users(client: TestClient, empty_db: Engine):
    auth = sign_in(client, empty_db, Role.supervisor, "zhao")
    assert users_queries(empty_db, lambda: me(client, auth)) == 1  # first request: read and remembered
    assert users_queries(empty_db, lambda: [me(client, auth) for _ in range(5)]) == 0
    assert client.get("/v1/auth/me", headers=auth).json()["role"] == "supervisor"


def test_a_disabled_account_stops_as_soon_as_the_change_is_announced(client: TestClient, empty_db: Engine):
    auth = sign_in(client, empty_db, Role.supervisor, "zhao")
    assert me(client, auth) == 200  # now cached
    with transaction(empty_db) as session:
        set_disabled(session, "zhao")
    took = wait_for(lambda: me(client, auth) == 401, "the disabled account to be refused", seconds=2.0)
    assert took < 1.0
    response = client.get("/v1/auth/me", headers=auth)
    assert response.status_code == 401 and "disabled" in response.json()["detail"]
    with transaction(empty_db) as session:
        set_disabled(session, "zhao", disabled=False)
    wait_for(lambda: me(client, auth) == 200, "the enabled account to be let in again", seconds=2.0)


def test_a_changed_role_and_scope_apply_to_tokens_already_issued(client: TestClient, empty_db: Engine):
    auth = sign_in(client, empty_db, Role.admin, "wang")
    assert client.get("/v1/auth/me", headers=auth).json()["role"] == "admin"
    with transaction(empty_db) as session:
        session.execute(
            text("UPDATE users SET role = 'dispatcher', region_code = '320682001000' WHERE username = 'wang'")
        )

    def demoted() -> bool:
        return client.get("/v1/auth/me", headers=auth).json()["role"] == "dispatcher"

    wait_for(demoted, "the new role to apply", seconds=2.0)
    assert client.get("/v1/auth/me", headers=auth).json()["region_code"] == "320682001000"


def test_changes_made_while_the_watcher_is_away_are_not_missed(app: FastAPI, client: TestClient, empty_db: Engine):
    auth = sign_in(client, empty_db, Role.supervisor, "li")
    assert me(client, auth) == 200  # cached
    with empty_db.connect() as conn:  # cut the watcher's connection, as a database restart would
        killed = conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN users_changed' "
                 "AND datname = current_database()")  # fmt: skip
        ).scalar()
    assert killed
    wait_for(lambda: not app.state.principals.trusted, "the cache to stop trusting itself")
    with transaction(empty_db) as session:  # nobody hears this notification
        set_disabled(session, "li")
    assert me(client, auth) == 401  # read from the table while the watcher is away
    wait_for(lambda: app.state.principals.trusted, "the watcher to listen again")
    assert me(client, auth) == 401
    assert users_queries(empty_db, lambda: me(client, auth)) == 0  # cached again, as disabled


def test_with_the_cache_off_every_request_reads_users(empty_db: Engine):
    load_tiny_city(empty_db)
    settings = AuthSettings(secret_key="c" * 40, principal_cache_s=0)
    with TestClient(create_app(engine=empty_db, auth_settings=settings)) as client:
        auth = sign_in(client, empty_db, Role.supervisor, "zhou")
        assert users_queries(empty_db, lambda: [me(client, auth) for _ in range(3)]) == 3
        with transaction(empty_db) as session:
            set_disabled(session, "zhou")
        assert me(client, auth) == 401
