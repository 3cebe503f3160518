"""The key people register (issue 18): in full for the worker, the community and the police; masked elsewhere; logged."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from layers.models import Role
from tests.geoservice.events_city import COMMUNITY_A, GRIDS, TOWN_A, TOWN_B, events_city_client
from tests.geoservice.signin import sign_in

PERSON = {"name": "李建国", "id_number": "320682198503121234", "phone": "13812345678", "kind": "community_correction",
          "address": "甲村3组15号", "grid_code": GRIDS[0], "responsible_username": "worker-a", "visit_cycle_days": 7,
          "notes": "每周报到"}  # fmt: skip


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    with events_city_client(empty_db) as client:
        yield client


@pytest.fixture
def people(client: TestClient, empty_db: Engine) -> dict[str, dict[str, str]]:
    return {
        "worker": sign_in(client, empty_db, Role.grid_worker, "worker-a", region_code=GRIDS[0]),
        "colleague": sign_in(client, empty_db, Role.grid_worker, "worker-a2", region_code=GRIDS[1]),
        "community": sign_in(client, empty_db, Role.dispatcher, "community-a", region_code=COMMUNITY_A),
        "town": sign_in(client, empty_db, Role.dispatcher, "town-a", region_code=TOWN_A),
        "town_b": sign_in(client, empty_db, Role.dispatcher, "town-b", region_code=TOWN_B),
        "police": sign_in(client, empty_db, Role.handler, "police-1", department_code="police"),
        "urban": sign_in(client, empty_db, Role.handler, "urban-1", department_code="urban_management"),
        "supervisor": sign_in(client, empty_db, Role.supervisor),
        "admin": sign_in(client, empty_db, Role.admin),
        "planner": sign_in(client, empty_db, Role.planner),
        "citizen": sign_in(client, empty_db, Role.public, "citizen"),
    }


def test_a_key_person_is_read_in_full_only_by_their_circle_and_every_read_is_logged(
    client: TestClient, people: dict, empty_db: Engine
):
    added = client.post("/v1/key-people", json=PERSON, headers=people["community"])
    assert added.status_code == 201, added.text
    person = added.json()
    assert person["masked"] is False and person["kind_name"] == "社区矫正对象"  # the community registered them
    url = f"/v1/key-people/{person['id']}"
    for who in ("worker", "community", "police"):
        full = client.get(url, headers=people[who]).json()
        assert full["masked"] is False and full["name"] == "李建国" and full["phone"] == "13812345678", who
    for who in ("town", "supervisor", "admin"):
        masked = client.get(url, headers=people[who]).json()
        assert masked["masked"] is True, who
        assert (masked["name"], masked["id_number"], masked["phone"]) == ("李**", "320***********1234", "138****5678")
        assert masked["address"] == masked["notes"] == "" and masked["grid_code"] == GRIDS[0]
    for who in ("town_b", "urban", "colleague"):  # the colleague's scope is their own grid
        assert client.get(url, headers=people[who]).status_code == 404, who
        assert client.get("/v1/key-people", headers=people[who]).json()["items"] == [], who
    for who, status in (("planner", 403), ("citizen", 403)):
        assert client.get(url, headers=people[who]).status_code == status
    assert client.get(url).status_code == 401
    listed = client.get("/v1/key-people", params={"grid": COMMUNITY_A}, headers=people["town"]).json()["items"]
    assert [p["name"] for p in listed] == ["李**"]

    with empty_db.connect() as conn:
        logged = conn.execute(text("SELECT reader, in_full FROM key_person_reads ORDER BY id")).all()
    assert logged == [("community-a", True), ("worker-a", True), ("community-a", True),
                      ("police-1", True), ("town-a", False), ("supervisor-user", False), ("admin-user", False),
                      ("town-a", False)]  # fmt: skip
    audit = client.get("/v1/key-people/reads", params={"person_id": person["id"]}, headers=people["supervisor"])
    assert len(audit.json()["items"]) == len(logged) and audit.json()["items"][0]["reader"] == "town-a"
    assert client.get("/v1/key-people/reads", headers=people["community"]).status_code == 403


def test_only_staff_of_the_region_register_key_people(client: TestClient, people: dict):
    assert client.post("/v1/key-people", json=PERSON, headers=people["town_b"]).status_code == 403
    assert client.post("/v1/key-people", json=PERSON, headers=people["worker"]).status_code == 403
    for change in ({"kind": "suspicious"}, {"grid_code": "320682100200999"}, {"id_number": "12345"},
                   {"responsible_username": "town-a"}):  # fmt: skip
        refused = client.post("/v1/key-people", json={**PERSON, **change}, headers=people["admin"])
        assert refused.status_code == 422, (change, refused.text)
