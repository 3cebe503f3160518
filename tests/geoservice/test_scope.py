"""Jurisdiction: a scoped user never receives an object just outside their scope, on any surface.

Two towns side by side; one event in each of their four grids. A dispatcher of town A, a grid
worker of town A's community and a handler of another department ask every way there is: lists,
reads by id, logs, GeoJSON, statistics and their CSV exports, the coverage report, nearest forces.
Whatever comes back must be about town A (or the handler's department) only.
"""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geoservice.infra.database import transaction
from layers.models import Role
from tests.geoservice.events_city import COMMUNITY_A, TOWN_A, TOWN_B, centre, events_client, load_events_city
from tests.geoservice.signin import sign_in


@pytest.fixture
def city(empty_db: Engine) -> Iterator[tuple[TestClient, dict[str, dict[str, str]], dict[str, list[int]]]]:
    load_events_city(empty_db)
    with events_client(empty_db) as client:
        with transaction(empty_db) as session:
            session.execute(text("INSERT INTO departments (code, name) VALUES ('water', '水务局') ON CONFLICT DO NOTHING"))
        people = {
            "admin": sign_in(client, empty_db, Role.admin),
            "dispatcher_a": sign_in(client, empty_db, Role.dispatcher, "disp-a", region_code=TOWN_A),
            "worker_a": sign_in(client, empty_db, Role.grid_worker, "worker-a", region_code=COMMUNITY_A),
            "handler_water": sign_in(client, empty_db, Role.handler, "water-1", department_code="water"),
        }
        ids: dict[str, list[int]] = {TOWN_A: [], TOWN_B: []}
        for grid in range(4):
            lon, lat = centre(grid)
            body = {"lon": lon, "lat": lat, "category": "city_management.garbage", "description": f"grid {grid}",
                    "reporter_name": "张三", "reporter_phone": "13800000000"}  # fmt: skip
            answer = client.post("/v1/events", json=body, headers=people["admin"]).json()
            ids[answer["town_code"]].append(answer["id"])
        assert len(ids[TOWN_A]) == len(ids[TOWN_B]) == 2
        yield client, people, ids


def test_lists_and_geojson_hold_only_the_scope(city):
    client, people, ids = city
    for who in ("dispatcher_a", "worker_a"):
        listed = client.get("/v1/events", headers=people[who]).json()["items"]
        assert sorted(e["id"] for e in listed) == sorted(ids[TOWN_A])
        features = client.get("/v1/events", params={"format": "geojson"}, headers=people[who]).json()["features"]
        assert {f["properties"]["town_code"] for f in features} == {TOWN_A}
    assert client.get("/v1/events", headers=people["handler_water"]).json()["items"] == []


def test_reads_by_id_outside_the_scope_do_not_exist(city):
    client, people, ids = city
    outside = ids[TOWN_B][0]
    for who in ("dispatcher_a", "worker_a", "handler_water"):
        for path in (f"/v1/events/{outside}", f"/v1/events/{outside}/log"):
            assert client.get(path, headers=people[who]).status_code == 404, (who, path)
        step = {"action": "accept", "expected_version": 1, "note": "not mine"}
        assert client.post(f"/v1/events/{outside}/transitions", json=step, headers=people[who]).status_code == 404
    assert client.get(f"/v1/events/{ids[TOWN_A][0]}", headers=people["dispatcher_a"]).status_code == 200


def test_statistics_and_their_exports_count_only_the_scope(city):
    client, people, ids = city
    everything = client.get("/v1/stats/counts", params={"by": "town"}, headers=people["admin"]).json()
    assert everything["total"] == 4
    mine = client.get("/v1/stats/counts", params={"by": "town"}, headers=people["dispatcher_a"]).json()
    assert mine["total"] == 2 and [r["key"] for r in mine["rows"]] == [TOWN_A]
    exported = client.get("/v1/stats/counts", params={"by": "grid", "format": "csv"}, headers=people["dispatcher_a"])
    rows = exported.text.strip().splitlines()[1:]
    assert len(rows) == 2 and all(r.startswith(TOWN_A[:9]) for r in rows)
    water = client.get("/v1/stats/counts", params={"by": "status"}, headers=people["handler_water"]).json()
    assert water["total"] == 0


def test_the_reporter_is_masked_outside_the_events_own_people(city):
    client, people, ids = city
    inside = client.get(f"/v1/events/{ids[TOWN_A][0]}", headers=people["dispatcher_a"]).json()
    assert inside["reporter_name"] == "张三"
    seen_by_worker = client.get(f"/v1/events/{ids[TOWN_A][0]}", headers=people["worker_a"]).json()
    assert seen_by_worker["reporter_phone"] != "13800000000" and "张三" not in str(seen_by_worker)


def test_coverage_outside_the_region_is_refused(city):
    client, people, _ = city
    assert client.get("/v1/coverage", params={"region": TOWN_B}, headers=people["dispatcher_a"]).status_code == 403
    mine = client.get("/v1/coverage", headers=people["dispatcher_a"])
    assert mine.status_code == 200 and mine.json()["region"]["code"] == TOWN_A
