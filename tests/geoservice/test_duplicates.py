"""Duplicates and merging through the real app: offered on report by family, radius and window; merged once."""

import math
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geoservice.infra.database import make_engine
from layers.models import Role
from tests.conftest import clone_template, drop_database
from tests.geoservice.events_city import TOWN_A, TOWN_B, centre, events_city_client
from tests.geoservice.signin import sign_in

M_PER_DEG_LAT = 110_900.0  # near 32°N; distances are asserted within a metre or two


def near(grid: int, east_m: float = 0.0, north_m: float = 0.0) -> dict[str, float]:
    lon, lat = centre(grid)
    return {"lon": lon + east_m / (M_PER_DEG_LAT * math.cos(math.radians(lat)) * 1.0033),
            "lat": lat + north_m / M_PER_DEG_LAT}  # fmt: skip


@pytest.fixture(scope="module")
def city(cluster) -> Iterator[tuple[TestClient, Engine, dict[str, dict[str, str]]]]:
    """One city and app for the module: the scenarios below build on each other's reports."""
    engine = make_engine(clone_template(cluster, "t_duplicates"))
    with events_city_client(engine) as client:
        people = {
            "admin": sign_in(client, engine, Role.admin),
            "dispatcher": sign_in(client, engine, Role.dispatcher, region_code=TOWN_A),
            "dispatcher_b": sign_in(client, engine, Role.dispatcher, "disp-b", region_code=TOWN_B),
            "handler": sign_in(client, engine, Role.handler, department_code="urban_management"),
            "anonymous": {},
        }
        yield client, engine, people
    engine.dispose()
    drop_database(cluster, "t_duplicates")


def report(client: TestClient, auth: dict, where: dict, category: str = "city_management.garbage") -> dict:
    response = client.post("/v1/events", json={**where, "category": category, "description": "垃圾"}, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


def test_duplicates_are_offered_by_family_radius_and_window(city):
    client, engine, people = city
    first = report(client, people["anonymous"], near(0))
    assert first["possible_duplicates"] == []
    # 15 m away, another subcategory of the same class (城市管理): offered to staff with what it is.
    second = report(client, people["dispatcher"], near(0, east_m=15), "city_management.stall")
    [offered] = second["possible_duplicates"]
    assert offered["id"] == first["id"] and abs(offered["distance_m"] - 15) < 1.5
    assert offered["category"] == "city_management.garbage" and offered["status"] == "reported"
    assert offered["reported_at"] == first["reported_at"]
    # The anonymous public learns ids and distances only, nearest first.
    third = report(client, people["anonymous"], near(0, north_m=10))
    assert [set(d) for d in third["possible_duplicates"]] == [{"id", "distance_m"}] * 2
    assert [d["id"] for d in third["possible_duplicates"]] == [first["id"], second["id"]]
    # 60 m from the first (radius 50 m): not offered; the second is 45 m away and is.
    far = report(client, people["dispatcher"], near(0, east_m=60))
    assert [d["id"] for d in far["possible_duplicates"]] == [second["id"]]
    # Another family at the very same spot: nothing.
    assert report(client, people["dispatcher"], near(0), "public_order.fight")["possible_duplicates"] == []
    # The radius is the category's own (reference API): at 100 m the first is 60 m away, offered again.
    body = {"name": "垃圾乱堆", "parent_code": "city_management", "accept_hours": 4, "handle_hours": 48,
            "duplicate_radius_m": 100, "duplicate_window_hours": 72}  # fmt: skip
    put = client.put("/v1/reference/categories/city_management.garbage", json=body, headers=people["admin"])
    assert put.status_code == 200, put.text
    again = report(client, people["dispatcher"], near(0, east_m=60))
    assert [d["id"] for d in again["possible_duplicates"]][:3] == [far["id"], second["id"], first["id"]]
    # The window: a report older than 72 hours is no longer offered.
    with engine.begin() as conn:
        conn.execute(text("UPDATE events SET reported_at = now() - interval '73 hours' WHERE id = :id"),
                     {"id": far["id"]})  # fmt: skip
    late = report(client, people["dispatcher"], near(0, east_m=60))
    assert far["id"] not in [d["id"] for d in late["possible_duplicates"]]
    # Dispatchers ask again later, in their scope only; the public may not.
    listed = client.get(f"/v1/events/{first['id']}/duplicates", headers=people["dispatcher"])
    assert listed.status_code == 200
    ids = [d["id"] for d in listed.json()["possible_duplicates"]]
    assert ids[:2] == [third["id"], second["id"]] and first["id"] not in ids
    assert client.get(f"/v1/events/{first['id']}/duplicates", headers=people["dispatcher_b"]).status_code == 404
    assert client.get(f"/v1/events/{first['id']}/duplicates").status_code == 401
    bad = client.put("/v1/reference/categories/city_management.garbage", json={**body, "duplicate_radius_m": 0},
                     headers=people["admin"])  # fmt: skip
    assert bad.status_code == 422


def test_merge_follows_the_master_and_refuses_what_breaks_one_hop(city):
    client, engine, people = city
    disp = people["dispatcher"]
    master = report(client, people["anonymous"], near(1))
    duplicate = report(client, people["anonymous"], near(1, east_m=10))
    other = report(client, people["anonymous"], near(1, north_m=10))
    in_town_b = report(client, people["anonymous"], near(2))

    def merge(event: dict, into: int, auth: dict, status: int) -> dict:
        response = client.post(f"/v1/events/{event['id']}/merge", json={"into": into, "note": "同一堆垃圾"},
                               headers=auth)  # fmt: skip
        assert response.status_code == status, response.text
        return response.json()

    merge(master, master["id"], disp, 422)  # not into itself
    merge(in_town_b, master["id"], disp, 404)  # the report is outside the caller's scope
    merge(master, in_town_b["id"], disp, 422)  # … and so is the master
    merge(master, duplicate["id"], people["handler"], 403)  # handlers do not merge
    merged = merge(duplicate, master["id"], disp, 200)
    assert merged["status"] == "merged" and merged["merged_into"] == master["id"]
    assert merged["master"]["id"] == master["id"] and merged["master"]["status"] == "reported"
    assert merged["allowed_actions"] == []
    assert merge(duplicate, master["id"], disp, 200)["row_version"] == merged["row_version"]  # a retry: no change
    merge(duplicate, other["id"], disp, 409)  # merged is terminal
    cycle = merge(master, duplicate["id"], disp, 409)  # the master into its own duplicate
    assert "merged" in cycle["detail"]
    # The generic transitions route does not merge (the master must be named).
    step = client.post(f"/v1/events/{other['id']}/transitions", json={"action": "merge", "expected_version": 1},
                       headers=disp)  # fmt: skip
    assert step.status_code == 422 and "/merge" in step.json()["detail"]
    # Logged on both events.
    dup_log = client.get(f"/v1/events/{duplicate['id']}/log", headers=disp).json()["entries"]
    assert (dup_log[-1]["action"], dup_log[-1]["to_status"], dup_log[-1]["details"]) == (
        "merge", "merged", {"master": master["id"]})  # fmt: skip
    master_log = client.get(f"/v1/events/{master['id']}/log", headers=disp).json()["entries"]
    assert master_log[-1]["action"] == "merged_in" and master_log[-1]["details"] == {"duplicate": duplicate["id"]}
    # Merging the master on: its duplicate follows the new master directly (one hop), and says so in its log.
    merge(master, other["id"], people["admin"], 200)
    read = client.get(f"/v1/events/{duplicate['id']}", headers=disp).json()
    assert read["merged_into"] == other["id"] and read["master"]["id"] == other["id"]
    assert client.get(f"/v1/events/{duplicate['id']}/log", headers=disp).json()["entries"][-1]["action"] == "remerge"
    # Merged reports are no longer offered as duplicates.
    offered = client.get(f"/v1/events/{other['id']}/duplicates", headers=disp).json()["possible_duplicates"]
    assert {master["id"], duplicate["id"]}.isdisjoint(d["id"] for d in offered)
    with engine.connect() as conn:
        statuses = conn.execute(text("SELECT status, count(*) FROM events WHERE id = ANY(:ids) GROUP BY 1"),
                                {"ids": [master["id"], duplicate["id"], other["id"]]}).all()  # fmt: skip
    assert dict(statuses) == {"merged": 2, "reported": 1}
