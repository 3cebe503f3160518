"""Create a user of a role and sign in through the real token endpoint; returns the auth header."""

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geoservice.auth.users import add_user
from geoservice.infra.database import transaction
from layers.models import Role

SCOPES = {
    Role.dispatcher: {"region_code": "320682000000"},
    Role.grid_worker: {"region_code": "320682000000"},
    Role.handler: {"department_code": "police"},
}


def sign_in(client: TestClient, engine: Engine, role: Role, username: str | None = None, **scope) -> dict[str, str]:
    username = username or f"{role}-user"
    with transaction(engine) as session:
        if (
            role == Role.handler
            and not session.execute(text("SELECT 1 FROM departments WHERE code = 'police'")).first()
        ):
            session.execute(text("INSERT INTO departments (code, name) VALUES ('police', '市公安局')"))
        add_user(session, username, "correct horse battery", role, **{**SCOPES.get(role, {}), **scope})
    response = client.post("/v1/auth/token", data={"username": username, "password": "correct horse battery"})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
