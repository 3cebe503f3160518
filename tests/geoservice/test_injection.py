"""SQL-injection strings in every text parameter change nothing: a 4xx problem or an empty answer.

The parameters are read from the app's own OpenAPI document, so a new text filter is covered the
day it is added. After the barrage every table still holds exactly what it held before.
"""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from layers.models import Role
from tests.geoservice.events_city import centre, events_client, load_events_city
from tests.geoservice.signin import sign_in

PAYLOADS = (
    "' OR '1'='1",
    "1; DROP TABLE events; --",
    "%' OR 1=1 --",
    "') UNION SELECT username, password_hash FROM users --",
    "\\'; TRUNCATE event_log; --",
)


@pytest.fixture
def seeded(empty_db: Engine) -> Iterator[tuple[TestClient, dict[str, str]]]:
    load_events_city(empty_db)
    with events_client(empty_db) as client:
        admin = sign_in(client, empty_db, Role.admin)
        for grid in range(4):
            lon, lat = centre(grid)
            body = {"lon": lon, "lat": lat, "category": "city_management.garbage", "description": f"seed {grid}"}
            assert client.post("/v1/events", json=body, headers=admin).status_code == 201
        yield client, admin


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        tables = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'spatial_ref_sys'")
        ).scalars()
        return {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar() for t in tables}


def text_parameters(client: TestClient) -> list[tuple[str, str]]:
    """(path, name) of every string query parameter of every GET operation without path parameters."""
    found = []
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        operation = operations.get("get")
        if operation is None or "{" in path:
            continue
        for parameter in operation.get("parameters", []):
            schema = parameter.get("schema", {})
            kinds = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
            if parameter["in"] == "query" and "string" in kinds and "enum" not in schema:
                found.append((path, parameter["name"]))
    return found


def test_injection_strings_in_every_text_parameter_change_nothing(seeded, empty_db: Engine):
    client, admin = seeded
    parameters = text_parameters(client)
    assert ("/v1/events", "q") in parameters and len(parameters) >= 10
    before = table_counts(empty_db)
    for path, name in parameters:
        for payload in PAYLOADS:
            response = client.get(path, params={name: payload}, headers=admin)
            assert response.status_code < 500, (path, name, payload, response.text[:300])
    assert table_counts(empty_db) == before


@pytest.mark.parametrize("payload", PAYLOADS)
def test_injection_in_the_event_text_filter_finds_nothing(seeded, payload: str):
    client, admin = seeded
    everything = client.get("/v1/events", headers=admin).json()["items"]
    assert len(everything) == 4
    found = client.get("/v1/events", params={"q": payload}, headers=admin)
    assert found.status_code == 200 and found.json()["items"] == []
