"""Key people's visits (issue 18): due by each person's cycle for the responsible worker, read and logged as the person."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geoservice.media.settings import MediaSettings
from geoservice.media.store import open_store
from layers.models import Role
from tests.geoservice.events_city import COMMUNITY_A, GRIDS, TOWN_A, TOWN_B, centre, events_city_client
from tests.geoservice.photo_files import photo
from tests.geoservice.signin import sign_in

PERSON = {"name": "李建国", "id_number": "320682198503121234", "phone": "13812345678", "kind": "community_correction",
          "address": "甲村3组15号", "grid_code": GRIDS[0], "responsible_username": "worker-a", "visit_cycle_days": 7,
          "notes": "每周报到"}  # fmt: skip
ELDER = {**PERSON, "name": "王秀英", "id_number": "320682194001011111", "kind": "elderly_alone", "visit_cycle_days": 30,
         "notes": ""}  # fmt: skip
OTHERS = {**PERSON, "name": "张伟", "id_number": "320682199001012222", "grid_code": GRIDS[1],
          "responsible_username": "worker-a2"}  # fmt: skip


@pytest.fixture
def client(empty_db: Engine, tmp_path: Path) -> Iterator[TestClient]:
    with events_city_client(empty_db) as client:
        client.app.state.media_store = open_store(MediaSettings(home=tmp_path))
        yield client


@pytest.fixture
def people(client: TestClient, empty_db: Engine) -> dict[str, dict[str, str]]:
    return {
        "worker": sign_in(client, empty_db, Role.grid_worker, "worker-a", region_code=GRIDS[0]),
        "colleague": sign_in(client, empty_db, Role.grid_worker, "worker-a2", region_code=GRIDS[1]),
        "community_worker": sign_in(client, empty_db, Role.grid_worker, "worker-c", region_code=COMMUNITY_A),
        "community": sign_in(client, empty_db, Role.dispatcher, "community-a", region_code=COMMUNITY_A),
        "town": sign_in(client, empty_db, Role.dispatcher, "town-a", region_code=TOWN_A),
        "town_b": sign_in(client, empty_db, Role.dispatcher, "town-b", region_code=TOWN_B),
        "supervisor": sign_in(client, empty_db, Role.supervisor),
    }


def register(client: TestClient, people: dict, *persons: dict) -> list[int]:
    ids = []
    for person in persons:
        added = client.post("/v1/key-people", json=person, headers=people["community"])
        assert added.status_code == 201, added.text
        ids.append(added.json()["id"])
    return ids


def reads(engine: Engine, what_like: str) -> list[tuple[str, int, bool]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT reader, person_id, in_full FROM key_person_reads WHERE what LIKE :w "
                                 "ORDER BY id"), {"w": what_like}).all()  # fmt: skip
    return [tuple(r) for r in rows]


def my_list(client: TestClient, auth: dict, **params: str) -> dict:
    response = client.get("/v1/me/duties", params=params, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_responsible_worker_sees_their_key_people_due_and_a_visit_clears_one(
    client: TestClient, people: dict, empty_db: Engine
):
    convict, elder, other = register(client, people, PERSON, ELDER, OTHERS)
    before = my_list(client, people["worker"])
    assert before["items"] == []  # no duty list loaded: only the people
    assert [i["key_person_id"] for i in before["key_people"]] == [convict, elder]  # not the colleague's person
    assert all(i["status"] == "overdue" and i["warning"] == "red" and i["last_visit_at"] is None
               for i in before["key_people"])  # fmt: skip
    shown = before["key_people"][0]["person"]
    assert (shown["masked"], shown["name"], shown["phone"], shown["address"]) == (False, "李建国", "13812345678",
                                                                                   "甲村3组15号")  # fmt: skip
    assert before["key_people_counts"] == {"overdue": 2, "due_soon": 0, "ok": 0}

    now = datetime.now(UTC)
    two_days_ago = (now - timedelta(days=2)).astimezone(ZoneInfo("Asia/Shanghai")).isoformat()
    lon, lat = centre(0)
    body = {"key_person_id": convict, "visited_at": two_days_ago, "notes": "在家，情绪稳定", "lon": lon, "lat": lat,
            "idempotency_key": "phone-7:kp-1"}  # fmt: skip
    first = client.post("/v1/visits", json=body, headers=people["worker"])
    assert first.status_code == 201, first.text
    visit = first.json()
    assert (visit["key_person_id"], visit["duty_code"], visit["unit_code"]) == (convict, None, GRIDS[0])
    again = client.post("/v1/visits", json=body, headers=people["worker"])  # the offline queue, once more
    assert again.status_code == 200 and again.json()["id"] == visit["id"]
    late = {"key_person_id": elder, "visited_at": (now - timedelta(days=25)).isoformat(), "idempotency_key": "kp-2"}
    assert client.post("/v1/visits", json=late, headers=people["worker"]).status_code == 201

    after = {i["key_person_id"]: i for i in my_list(client, people["worker"])["key_people"]}
    assert after[convict]["status"] == "ok"
    assert datetime.fromisoformat(after[convict]["due_at"]) == datetime.fromisoformat(two_days_ago) + timedelta(days=7)
    assert after[elder]["status"] == "due_soon" and after[elder]["warning"] == "yellow"  # 5 days left of 30
    overdue = my_list(client, people["worker"], status="overdue")
    assert overdue["key_people"] == [] and overdue["key_people_counts"] == {"overdue": 0, "due_soon": 1, "ok": 1}
    assert my_list(client, people["colleague"])["key_people"][0]["key_person_id"] == other

    # Each person listed is a read of them; the filtered list answered nobody and logged nobody.
    assert reads(empty_db, "GET /v1/me/duties") == [
        ("worker-a", convict, True), ("worker-a", elder, True),
        ("worker-a", convict, True), ("worker-a", elder, True), ("worker-a2", other, True),
    ]  # fmt: skip
    assert reads(empty_db, "POST /v1/visits") == [("worker-a", convict, True)] * 2 + [("worker-a", elder, True)]


def test_who_visits_a_key_person_and_who_reads_the_visit(client: TestClient, people: dict, empty_db: Engine):
    (convict,) = register(client, people, PERSON)
    for body, title in [
        ({"key_person_id": convict}, "Not your key person"),  # the colleague serves grid 2, not grid 1
        ({"key_person_id": 999_999}, "Not your key person"),  # no such person: the same answer
    ]:
        refused = client.post("/v1/visits", json=body, headers=people["colleague"])
        assert refused.status_code == 422 and refused.json()["title"] == title, refused.text
    for body in ({}, {"key_person_id": convict, "duty_code": "rental_check"}, {"duty_code": "rental_check"},
                 {"key_person_id": 0}):  # fmt: skip
        assert client.post("/v1/visits", json=body, headers=people["worker"]).status_code == 422, body
    wrong = client.post("/v1/visits", json={"key_person_id": convict, "unit_code": GRIDS[1]}, headers=people["worker"])
    assert wrong.status_code == 422 and wrong.json()["title"] == "Not the person's grid"
    assert client.post("/v1/visits", json={"key_person_id": convict}, headers=people["community"]).status_code == 403

    # A worker of the community (serving grid 1) may visit too; the responsible worker reads that visit.
    visit = client.post("/v1/visits", json={"key_person_id": convict, "notes": "门口交谈，无异常"},
                        headers=people["community_worker"])  # fmt: skip
    assert visit.status_code == 201, visit.text
    url = f"/v1/visits/{visit.json()['id']}"
    for who in ("community_worker", "worker", "community"):
        read = client.get(url, headers=people[who])
        assert read.status_code == 200 and read.json()["notes"] == "门口交谈，无异常" and not read.json()["masked"], who
    for who in ("town", "supervisor"):
        read = client.get(url, headers=people[who])
        assert read.status_code == 200 and read.json()["notes"] == "" and read.json()["masked"], who
    for who in ("town_b", "colleague"):
        assert client.get(url, headers=people[who]).status_code == 404, who
    assert reads(empty_db, "GET /v1/visits/%") == [
        ("worker-c", convict, True), ("worker-a", convict, True), ("community-a", convict, True),
        ("town-a", convict, False), ("supervisor-user", convict, False),
    ]  # fmt: skip

    # A photo cannot be masked: only those who read the person in full see it.
    lon, lat = centre(0)
    files = {"file": ("v.jpg", photo(gps=(lon, lat)), "image/jpeg")}
    stored = client.post(f"{url}/photos", files=files, headers=people["community_worker"])
    assert stored.status_code == 201, stored.text
    for who, status in [("worker", 200), ("community", 200), ("town", 404), ("supervisor", 404)]:
        assert client.get(stored.json()["url"], headers=people[who]).status_code == status, who
        assert client.get(f"{url}/photos", headers=people[who]).status_code == status, who
    photo_reads = reads(empty_db, "photo%")  # a refusal answered nothing: no read stands for it
    assert {r[0] for r in photo_reads} == {"worker-c", "worker-a", "community-a"} and all(r[2] for r in photo_reads)


def test_overdue_key_person_visits_warn_the_dispatcher_and_count_in_the_ranking(client: TestClient, people: dict):
    convict, elder, _ = register(client, people, PERSON, ELDER, OTHERS)
    now = datetime.now(UTC)
    for person, days_ago in [(convict, 1), (elder, 26)]:
        body = {"key_person_id": person, "visited_at": (now - timedelta(days=days_ago)).isoformat()}
        assert client.post("/v1/visits", json=body, headers=people["worker"]).status_code == 201

    def warned(who: str) -> dict | None:
        response = client.get("/map/warning-counts", headers=people[who])
        assert response.status_code == 200, response.text
        return response.json()["duties"]

    # Town A holds all three: one visited yesterday (ok), one due soon, the colleague's never visited.
    people_a = {"red": 1, "yellow": 1, "total": 3}
    assert warned("town") == {**people_a, "key_people": people_a}
    assert warned("town_b") is None  # no duty list and no key person there: nothing to warn of
    month = now.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    ranking = client.get("/v1/stats/ranking", params={"month": month, "level": "community"},
                         headers=people["supervisor"])  # fmt: skip
    assert ranking.status_code == 200, ranking.text
    rows = {r["code"]: (r["duties_total"], r["duties_overdue"]) for r in ranking.json()["rows"]}
    assert rows[COMMUNITY_A] == (3, 1)
