"""Duty lists and visits (issue 18): duties from the pack, visits recorded once, overdue duties for the worker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from geoservice.field.duties import load_duties
from geoservice.infra.database import transaction
from geoservice.media.settings import MediaSettings
from geoservice.media.store import open_store
from layers.models import Role
from tests.geoservice.events_city import COMMUNITY_A, COMMUNITY_B, GRIDS, TOWN_A, TOWN_B, centre, events_city_client
from tests.geoservice.photo_files import photo
from tests.geoservice.signin import sign_in

DUTIES = [
    {"code": "rental_check", "name": "出租房屋走访", "level": "grid", "every_days": "7", "region_code": "",
     "description": ""},
    {"code": "key_place_check", "name": "重点场所检查", "level": "community", "every_days": "30", "region_code": "",
     "description": ""},
    {"code": "b_only", "name": "乙镇专项", "level": "grid", "every_days": "7", "region_code": TOWN_B,
     "description": ""},
]  # fmt: skip


@pytest.fixture
def client(empty_db: Engine, tmp_path: Path) -> Iterator[TestClient]:
    with events_city_client(empty_db) as client:
        client.app.state.media_store = open_store(MediaSettings(home=tmp_path))
        with transaction(empty_db) as session:
            load_duties(session, DUTIES)
        yield client


@pytest.fixture
def people(client: TestClient, empty_db: Engine) -> dict[str, dict[str, str]]:
    return {
        "worker": sign_in(client, empty_db, Role.grid_worker, "worker-a", region_code=COMMUNITY_A),
        "dispatcher": sign_in(client, empty_db, Role.dispatcher, region_code=TOWN_A),
        "dispatcher_b": sign_in(client, empty_db, Role.dispatcher, "disp-b", region_code=TOWN_B),
        "supervisor": sign_in(client, empty_db, Role.supervisor),
        "planner": sign_in(client, empty_db, Role.planner),
    }


def duties(client: TestClient, auth: dict) -> dict[tuple[str, str], dict]:
    response = client.get("/v1/me/duties", headers=auth)
    assert response.status_code == 200, response.text
    return {(i["duty_code"], i["unit_code"]): i for i in response.json()["items"]}


def test_a_worker_sees_every_duty_of_their_units_and_a_visit_clears_one(client: TestClient, people: dict):
    before = duties(client, people["worker"])
    assert set(before) == {("rental_check", GRIDS[0]), ("rental_check", GRIDS[1]), ("key_place_check", COMMUNITY_A)}
    assert all(i["status"] == "overdue" and i["warning"] == "red" and i["last_visit_at"] is None
               for i in before.values())  # fmt: skip

    now = datetime.now(UTC)
    yesterday = (now - timedelta(days=1)).astimezone().isoformat()
    lon, lat = centre(0)
    body = {"duty_code": "rental_check", "unit_code": GRIDS[0], "visited_at": yesterday, "notes": "3户出租，信息已核对",
            "lon": lon, "lat": lat, "idempotency_key": "phone-7:visit-1"}  # fmt: skip
    first = client.post("/v1/visits", json=body, headers=people["worker"])
    assert first.status_code == 201, first.text
    again = client.post("/v1/visits", json=body, headers=people["worker"])  # the offline queue, once more
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    almost = {**body, "unit_code": GRIDS[1], "visited_at": (now - timedelta(days=6, hours=12)).isoformat(),
              "idempotency_key": "phone-7:visit-2"}  # fmt: skip
    assert client.post("/v1/visits", json=almost, headers=people["worker"]).status_code == 201

    after = duties(client, people["worker"])
    done = after[("rental_check", GRIDS[0])]
    assert done["status"] == "ok" and datetime.fromisoformat(done["due_at"]) == datetime.fromisoformat(
        yesterday
    ) + timedelta(days=7)
    assert after[("rental_check", GRIDS[1])]["status"] == "due_soon"  # half a day left of seven
    assert after[("key_place_check", COMMUNITY_A)]["status"] == "overdue"
    listed = client.get("/v1/me/duties", params={"status": "overdue"}, headers=people["worker"]).json()
    assert listed["counts"] == {"overdue": 1, "due_soon": 1, "ok": 1} and len(listed["items"]) == 1


def test_visits_are_for_your_own_units_and_read_in_scope(client: TestClient, people: dict):
    worker = people["worker"]
    base = {"duty_code": "rental_check", "unit_code": GRIDS[0]}
    for change, title in [
        ({"unit_code": GRIDS[2]}, "Not your unit"),
        ({"duty_code": "no_such_duty"}, "Unknown duty"),
        ({"duty_code": "key_place_check"}, "Not your unit"),  # a community duty needs the community
        ({"place_code": "NOPLACE"}, "Unknown place"),
    ]:
        refused = client.post("/v1/visits", json={**base, **change}, headers=worker)
        assert refused.status_code == 422 and refused.json()["title"] == title, (change, refused.text)
    assert client.post("/v1/visits", json={**base, "lon": 120.5}, headers=worker).status_code == 422
    assert client.post("/v1/visits", json={**base, "visited_at": "2026-12-01T10:00:00"}, headers=worker).status_code == 422
    visit = client.post("/v1/visits", json={"duty_code": "key_place_check", "unit_code": COMMUNITY_A}, headers=worker)
    assert visit.status_code == 201
    url = f"/v1/visits/{visit.json()['id']}"
    for who, status in [("worker", 200), ("dispatcher", 200), ("supervisor", 200), ("dispatcher_b", 404),
                        ("planner", 403)]:  # fmt: skip
        assert client.get(url, headers=people[who]).status_code == status, who
    assert client.post("/v1/visits", json=base, headers=people["dispatcher"]).status_code == 403
    assert client.get("/v1/me/duties", headers=people["dispatcher"]).status_code == 403


def test_a_visit_has_photos_like_an_event(client: TestClient, people: dict, tmp_path: Path):
    lon, lat = centre(0)
    body = {"duty_code": "rental_check", "unit_code": GRIDS[0], "lon": lon, "lat": lat}
    visit = client.post("/v1/visits", json=body, headers=people["worker"]).json()
    url = f"/v1/visits/{visit['id']}/photos"
    data = photo(gps=(lon, lat + 300 / 111_000))  # taken 300 m away: flagged
    files = {"file": ("v.jpg", data, "image/jpeg")}
    first = client.post(url, files=files, headers=people["worker"])
    assert first.status_code == 201, first.text
    stored = first.json()
    assert stored["visit_id"] == visit["id"] and stored["event_id"] is None and stored["gps_flagged"] is True
    assert client.post(url, files=files, headers=people["worker"]).json()["id"] == stored["id"]  # once
    assert (tmp_path / "media" / "display").is_dir()
    for who, status in [("worker", 200), ("dispatcher", 200), ("supervisor", 200), ("dispatcher_b", 404)]:
        assert client.get(stored["url"], headers=people[who]).status_code == status, who
        assert client.get(url, headers=people[who]).status_code == status, who
    other = sign_in(client, client.app.state.engine, Role.grid_worker, "worker-a2", region_code=COMMUNITY_A)
    assert client.post(url, files=files, headers=other).status_code == 404  # not their visit


def test_overdue_duties_warn_the_dispatcher_and_stand_in_the_ranking(client: TestClient, people: dict):
    now = datetime.now(UTC)
    lon, lat = centre(0)
    for unit, days_ago, key in [(GRIDS[0], 1, "v-ok"), (GRIDS[1], 6.5, "v-soon")]:
        body = {"duty_code": "rental_check", "unit_code": unit, "lon": lon, "lat": lat, "idempotency_key": key,
                "visited_at": (now - timedelta(days=days_ago)).isoformat()}  # fmt: skip
        assert client.post("/v1/visits", json=body, headers=people["worker"]).status_code == 201

    def warned(who: str) -> dict | None:
        response = client.get("/map/warning-counts", headers=people[who])
        assert response.status_code == 200, response.text
        return response.json()["duties"]

    # Town A: two grids' rental checks (one done, one due soon) and its community's place check (never done).
    nobody = {"key_people": {"red": 0, "yellow": 0, "total": 0}}  # no key people registered here
    assert warned("dispatcher") == {"red": 1, "yellow": 1, "total": 3, **nobody}
    # Town B: nothing visited, and its own extra duty on both grids.
    assert warned("dispatcher_b") == {"red": 5, "yellow": 0, "total": 5, **nobody}
    assert warned("supervisor") == {"red": 6, "yellow": 1, "total": 8, **nobody}

    month = now.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    ranking = client.get("/v1/stats/ranking", params={"month": month, "level": "community"},
                         headers=people["supervisor"])  # fmt: skip
    assert ranking.status_code == 200, ranking.text
    rows = {r["code"]: (r["duties_total"], r["duties_overdue"]) for r in ranking.json()["rows"]}
    assert rows == {COMMUNITY_A: (3, 1), COMMUNITY_B: (5, 5)}
    mine = client.get("/v1/stats/ranking", params={"month": month, "level": "town"}, headers=people["dispatcher"])
    assert {r["code"]: r["duties_overdue"] for r in mine.json()["rows"]} == {TOWN_A: 1}
    csv = client.get("/v1/stats/ranking", params={"month": month, "level": "town", "format": "csv"},
                     headers=people["supervisor"]).text  # fmt: skip
    assert "duties_total,duties_overdue" in csv.splitlines()[0]
