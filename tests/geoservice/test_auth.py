"""Sign-in, tokens, and the role × route matrix generated from the app's own routes."""

import logging
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from geoservice.app import create_app
from geoservice.auth.tokens import TokenError, issue_token, read_token
from geoservice.auth.users import UserError, add_user, set_disabled
from geoservice.infra.database import transaction
from geoservice.settings import AuthSettings, OperationsSettings
from layers.models import Role
from tests.etl.tiny_city import WEST
from tests.geoservice.signin import sign_in
from tests.geoservice.test_locate_api import load_tiny_city

SETTINGS = AuthSettings(secret_key="x" * 40, token_ttl_minutes=5)


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    load_tiny_city(empty_db)
    # The matrix asks every route as the anonymous public too: more requests than the public's rate
    # allows per minute, which is not what it checks (the rate limit has its own tests).
    wide = OperationsSettings(public_rate="100000/minute")
    with TestClient(create_app(engine=empty_db, auth_settings=SETTINGS, operations=wide)) as client:
        yield client


def operations(client: TestClient) -> list[tuple[str, str, dict]]:
    """(method, path, operation) for every operation the app publishes."""
    paths = client.get("/openapi.json").json()["paths"]
    return [(method.upper(), path, op) for path, ops in paths.items() for method, op in ops.items()]


def test_every_operation_declares_its_roles(client: TestClient):
    missing = [f"{m} {p}" for m, p, op in operations(client) if not op.get("x-roles")]
    assert missing == [], f"operations without a policy (declare them with **policy(...)): {missing}"


def test_role_route_matrix(client: TestClient, empty_db: Engine):
    """Every role, and a narrowly scoped user of every scoped role, against every published operation."""
    callers: list[tuple[Role | None, dict[str, str]]] = [(role, sign_in(client, empty_db, role)) for role in Role]
    callers += [
        (Role.dispatcher, sign_in(client, empty_db, Role.dispatcher, "community-disp", region_code=WEST)),
        (Role.grid_worker, sign_in(client, empty_db, Role.grid_worker, "one-grid", region_code=WEST + "001")),
        (Role.handler, sign_in(client, empty_db, Role.handler, "police-2", department_code="police")),
        (Role.public, sign_in(client, empty_db, Role.public, "citizen")),
        (None, {}),  # the anonymous public, no token at all
    ]
    checked = 0
    for method, path, op in operations(client):
        allowed = set(op["x-roles"])
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        for role, auth in callers:
            status = client.request(method, concrete, headers=auth).status_code
            assert status < 500, (method, path, role, status)
            if role is None and op.get("x-signed-in"):  # the public role, but only with an account
                assert status == 401, (method, path, role, status)
            elif (role or Role.public) in allowed:
                assert status not in (401, 403), (method, path, role, status)
            else:
                assert status == (401 if role is None else 403), (method, path, role, status)
            checked += 1
    assert checked == len(operations(client)) * len(callers) >= 8 * 12
    assert ("POST", "/v1/users/{username}/unlock") in {(m, p) for m, p, _ in operations(client)}


def test_wrong_password_and_unknown_user_look_the_same(client: TestClient, empty_db: Engine):
    sign_in(client, empty_db, Role.planner, "li")
    wrong = client.post("/v1/auth/token", data={"username": "li", "password": "not it at all"})
    unknown = client.post("/v1/auth/token", data={"username": "nobody", "password": "not it at all"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


def test_a_name_no_account_can_have_is_refused_without_a_server_error(client: TestClient):
    for name in ("x" * 300, "a\x00b"):
        response = client.post("/v1/auth/token", data={"username": name, "password": "not it at all"})
        assert response.status_code == 422 and "at most 100 characters" in response.json()["detail"]


def test_disabled_accounts_cannot_sign_in(client: TestClient, empty_db: Engine):
    """Tokens already issued stop too: tests/geoservice/test_principal_cache.py."""
    sign_in(client, empty_db, Role.supervisor, "zhao")
    with transaction(empty_db) as session:
        set_disabled(session, "zhao")
    assert (
        client.post("/v1/auth/token", data={"username": "zhao", "password": "correct horse battery"}).status_code == 401
    )


def test_expired_and_forged_tokens_are_refused(client: TestClient, empty_db: Engine):
    sign_in(client, empty_db, Role.admin, "wang")
    old, _ = issue_token("wang", SETTINGS, now=datetime.now(UTC) - timedelta(minutes=6))
    expired = client.get("/v1/auth/me", headers={"Authorization": f"Bearer {old}"})
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]
    forged, _ = issue_token("wang", AuthSettings(secret_key="y" * 40))
    assert client.get("/v1/auth/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401



def test_a_token_checked_once_still_expires_and_needs_its_key():
    """Signatures are checked once per process (geoservice.auth.tokens); expiry and key are not skipped."""
    ttl = timedelta(minutes=SETTINGS.token_ttl_minutes)
    token, _ = issue_token("wang", SETTINGS, now=datetime.now(UTC) - ttl + timedelta(seconds=2))
    assert read_token(token, SETTINGS) == "wang" == read_token(token, SETTINGS)
    with pytest.raises(TokenError, match="not valid"):
        read_token(token, AuthSettings(secret_key="y" * 40))  # the same string, another key
    time.sleep(2.1)
    with pytest.raises(TokenError, match="expired"):
        read_token(token, SETTINGS)

def test_scoped_roles_need_their_scope(empty_db: Engine):
    with transaction(empty_db) as session, pytest.raises(UserError, match="scoped to a region"):
        add_user(session, "d", "long enough pw", Role.dispatcher)
    with transaction(empty_db) as session, pytest.raises(UserError, match="belongs to a department"):
        add_user(session, "h", "long enough pw", Role.handler)


def test_production_refuses_a_missing_secret():
    with pytest.raises(ValueError, match="GEOSERVICE_SECRET_KEY must be set"):
        AuthSettings(environment="production")


def test_workers_starting_together_agree_on_the_development_key(tmp_path):
    """Without GEOSERVICE_SECRET_KEY each process reads the key kept under its home, made by the first."""
    script = "import sys; from geoservice.settings import AuthSettings; print(AuthSettings(home=sys.argv[1]).signing_key())"
    starts = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    keys = {process.communicate(timeout=60)[0].strip() for process in starts}
    assert len(keys) == 1 and len(keys.pop()) >= 40
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no drafts left behind
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


THROTTLE = AuthSettings(
    secret_key="x" * 40, signin_free_failures=2, signin_delay_s=1.0, signin_max_delay_s=1.0,
    signin_lock_after=5, signin_address_lock_after=50, signin_lock_s=3600,
)  # fmt: skip


def test_failed_sign_ins_are_delayed_then_locked_across_workers_until_an_admin_unlocks(
    empty_db: Engine, caplog: pytest.LogCaptureFixture
):
    """Two apps on one database stand for two API worker processes: the count is shared."""
    load_tiny_city(empty_db)
    with (
        TestClient(create_app(engine=empty_db, auth_settings=THROTTLE)) as one,
        TestClient(create_app(engine=empty_db, auth_settings=THROTTLE)) as two,
    ):
        admin = sign_in(one, empty_db, Role.admin, "boss")
        sign_in(one, empty_db, Role.planner, "li")

        def attempt(client: TestClient, password: str):
            return client.post("/v1/auth/token", data={"username": "li", "password": password})

        right = "correct horse battery"
        with caplog.at_level(logging.WARNING, logger="geoservice.signin"):
            assert [attempt(one, "guess one").status_code, attempt(two, "guess two").status_code] == [401, 401]
            assert attempt(one, "guess three").status_code == 401  # the third earns a delay
        delayed = attempt(two, right)  # even the right password waits: nothing is checked meanwhile
        assert delayed.status_code == 429 and delayed.json()["title"] == "Sign-in delayed"
        assert int(delayed.headers["retry-after"]) >= 1
        failed = [r for r in caplog.records if r.getMessage() == "sign-in failed"]
        assert len(failed) == 3 and {r.username for r in failed} == {"li"}
        assert failed[-1].account_failures == 3 and "guess" not in caplog.text

        for k in (4, 5):
            time.sleep(1.05)
            assert attempt(one if k % 2 else two, f"guess {k}").status_code == 401
        time.sleep(1.05)
        locked = attempt(one, right)
        assert locked.status_code == 429 and locked.json()["title"] == "Sign-in locked"
        assert int(locked.headers["retry-after"]) > 3000

        lifted = two.post("/v1/users/li/unlock", headers=admin)
        assert lifted.status_code == 200 and lifted.json() == {"username": "li", "was_throttled": True}
        time.sleep(1.05)  # the address's own delay (its failures are not cleared by an unlock)
        assert attempt(one, right).status_code == 200
        for nobody in ("nobody", "a%00b"):
            assert two.post(f"/v1/users/{nobody}/unlock", headers=admin).status_code == 404



def test_changing_a_password_is_throttled_like_signing_in(empty_db: Engine):
    """The password-change route checks the current password: guessing through it meets the same count."""
    load_tiny_city(empty_db)
    with TestClient(create_app(engine=empty_db, auth_settings=THROTTLE)) as client:
        sign_in(client, empty_db, Role.planner, "li")

        def change(current: str):
            body = {"username": "li", "current_password": current, "new_password": "a brand new secret"}
            return client.post("/v1/auth/password", json=body)

        assert [change(f"guess {k}").status_code for k in range(3)] == [422, 422, 422]
        delayed = change("correct horse battery")  # the third failure earned a delay: nothing is checked
        assert delayed.status_code == 429 and int(delayed.headers["retry-after"]) >= 1
        time.sleep(1.05)
        assert client.post("/v1/auth/token", data={"username": "li", "password": "guess 4"}).status_code == 401
        assert change("correct horse battery").status_code == 429  # one count for both routes
        time.sleep(1.05)
        assert change("correct horse battery").status_code == 204
        token = client.post("/v1/auth/token", data={"username": "li", "password": "a brand new secret"})
        assert token.status_code == 200
