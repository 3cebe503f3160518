"""Following reports through the real app: follow tokens, public notes (and Open311's status notes), my reports,
area subscriptions and who follows an event."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geoservice.events.followers import followers
from geoservice.infra.database import make_engine, transaction
from geoservice.notifications import fanout
from geoservice.notifications.settings import NotifySettings
from geoservice.open311.clients import add_client
from layers.models import Role
from tests.conftest import clone_template, drop_database
from tests.etl.tiny_city import X0, Y0, D
from tests.geoservice.events_city import TOWN_A, centre
from tests.geoservice.signin import sign_in
from tests.geoservice.test_duplicates import near, report
from tests.geoservice.test_notifications import city_client, step


@pytest.fixture(scope="module")
def city(cluster) -> Iterator[tuple[TestClient, Engine, dict[str, dict[str, str]], str]]:
    engine = make_engine(clone_template(cluster, "t_follow"))
    # The fan-out loops off: the tests drain the queue themselves. With them on, a loop could hold a
    # step (SKIP LOCKED) past the test's drain, and the inbox was read before that step's row existed.
    with city_client(engine, NotifySettings(in_server=False)) as client:
        people = {
            "dispatcher": sign_in(client, engine, Role.dispatcher, region_code=TOWN_A),
            "citizen": sign_in(client, engine, Role.public, "citizen"),
            "walker": sign_in(client, engine, Role.public, "walker"),
            "neighbour": sign_in(client, engine, Role.public, "neighbour"),
            "anonymous": {},
        }
        with transaction(engine) as session:
            key = add_client(session, "随手拍")
        yield client, engine, people, key
    engine.dispose()
    drop_database(cluster, "t_follow")


def test_a_reporter_follows_public_notes_and_the_master_after_a_merge(city):
    client, engine, people, key = city
    disp = people["dispatcher"]
    master = report(client, people["anonymous"], near(0))
    token = master["follow_token"]
    assert master["follow_url"] == f"/v1/follow/{token}"
    with engine.connect() as conn:  # only the hash is stored
        stored = conn.execute(text("SELECT follow_token_sha256 FROM events WHERE id = :id"), {"id": master["id"]})
        assert stored.scalar_one() not in (None, token)
    # One public note, one private.
    accepted = client.post(f"/v1/events/{master['id']}/transitions", headers=disp, json={
        "action": "accept", "expected_version": 1, "note": "已受理，今日清运", "public_note": True}).json()  # fmt: skip
    dispatched = client.post(f"/v1/events/{master['id']}/transitions", headers=disp, json={
        "action": "dispatch", "expected_version": accepted["row_version"], "note": "内部：找王队长"})  # fmt: skip
    assert dispatched.status_code == 200, dispatched.text
    followed = client.get(f"/v1/follow/{token}").json()
    assert followed["status"] == "dispatched" and followed["accepted_at"] and followed["dispatched_at"]
    assert [n["note"] for n in followed["public_notes"]] == ["已受理，今日清运"]
    assert not {"description", "lon", "lat", "reporter_name", "department_code", "grid_code"} & set(followed)
    assert client.get("/v1/follow/" + "0" * 64).status_code == 404
    # An Open311 report beside it: the receipt offers the master; the master's request shows the public note only.
    form = {"api_key": key, "service_code": "city_management.garbage", "lat": str(near(0, north_m=8)["lat"]),
            "long": str(near(0, north_m=8)["lon"]), "description": "路口垃圾"}  # fmt: skip
    posted = client.post("/open311/v2/requests.json", data=form)
    assert posted.status_code == 201, posted.text
    [receipt] = posted.json()
    assert receipt["possible_duplicates"][0]["service_request_id"] == str(master["id"])
    assert 7 < receipt["possible_duplicates"][0]["distance_m"] < 9 and "相似报告" in receipt["service_notice"]
    [request] = client.get(f"/open311/v2/requests/{master['id']}.json").json()
    assert "已受理，今日清运" in request["status_notes"] and "王队长" not in request["status_notes"]
    # Merged, the Open311 request and a signed-in reporter's follow-up both show the master's progress.
    walked = report(client, people["walker"], near(0, east_m=5))
    assert "follow_token" not in walked  # signed in: GET /v1/me/reports instead
    for duplicate in (int(receipt["service_request_id"]), walked["id"]):
        merged = client.post(f"/v1/events/{duplicate}/merge", json={"into": master["id"]}, headers=disp)
        assert merged.status_code == 200, merged.text
    [request] = client.get(f"/open311/v2/requests/{receipt['service_request_id']}.json").json()
    assert request["status"] == "open" and f"#{master['id']}" in request["status_notes"]
    opened = client.get("/open311/v2/requests.json", params={"status": "open"}).json()
    assert receipt["service_request_id"] in {r["service_request_id"] for r in opened}
    assert "已受理，今日清运" in request["status_notes"] and "王队长" not in request["status_notes"]
    [mine] = client.get("/v1/me/reports", headers=people["walker"]).json()["items"]
    assert mine["id"] == walked["id"] and mine["status"] == "merged"
    assert mine["master"]["status"] == "dispatched" and mine["master"]["public_notes"][0]["note"] == "已受理，今日清运"
    assert client.get("/v1/me/reports").status_code == 401
    assert client.get("/v1/me/reports", headers=disp).status_code == 403
    # A citizen cannot publish a note.
    own = report(client, people["citizen"], near(3))
    refused = client.post(f"/v1/events/{own['id']}/transitions", headers=people["citizen"], json={
        "action": "evaluate", "expected_version": 1, "note": "x", "public_note": True, "satisfaction": 5})  # fmt: skip
    assert refused.status_code == 422 and "staff" in refused.json()["detail"]
    with transaction(engine) as session:
        assert followers(session, master["id"]) == ["walker"]


def test_area_subscriptions_match_by_place_and_category(city):
    client, engine, people, _ = city
    lon, lat = centre(1)
    circle = client.post(
        "/v1/subscriptions",
        headers=people["citizen"],
        json={"circle": {"lon": lon, "lat": lat, "radius_m": 300}, "categories": ["city_management"]},
    )
    assert circle.status_code == 201, circle.text
    assert circle.json()["radius_m"] == 300 and 0.27 < circle.json()["area_km2"] < 0.29  # π·0.3² km²
    square = {"type": "Polygon", "coordinates": [[[X0 + 3 * D, Y0], [X0 + 4 * D, Y0], [X0 + 4 * D, Y0 + D],
                                                  [X0 + 3 * D, Y0 + D], [X0 + 3 * D, Y0]]]}  # grid 3  # fmt: skip
    assert client.post("/v1/subscriptions", json={"area": square}, headers=people["neighbour"]).status_code == 201
    wrong_kind = client.post(
        "/v1/subscriptions",
        headers=people["neighbour"],
        json={"circle": {"lon": lon, "lat": lat, "radius_m": 300}, "categories": ["public_order"]},
    )
    assert wrong_kind.status_code == 201
    # Bad geometry and limits: 422, nothing stored.
    bowtie = {"type": "Polygon", "coordinates": [[[X0, Y0], [X0 + D, Y0 + D], [X0 + D, Y0], [X0, Y0 + D], [X0, Y0]]]}
    open_ring = {"type": "Polygon", "coordinates": [[[X0, Y0], [X0 + D, Y0], [X0 + D, Y0 + D], [X0, Y0 + D]]]}
    huge = {"type": "Polygon", "coordinates": [[[120, 32], [121, 32], [121, 33], [120, 33], [120, 32]]]}
    for body in ({"area": bowtie}, {"area": open_ring}, {"area": huge}, {"area": {"type": "Point", "coordinates": [1, 2]}},
                 {"circle": {"lon": lon, "lat": lat, "radius_m": 50_000}}, {"circle": {"lon": 200, "lat": lat, "radius_m": 9}},
                 {"area": square, "categories": ["no_such"]}, {}):  # fmt: skip
        response = client.post("/v1/subscriptions", json=body, headers=people["neighbour"])
        assert response.status_code == 422, (body, response.text)
    assert client.post("/v1/subscriptions", json={"area": square}).status_code == 401
    # An event in grid 1 of the class 城市管理 reaches the circle's subscriber, not the others.
    event = report(client, people["anonymous"], near(1, east_m=100), "city_management.stall")
    with transaction(engine) as session:
        assert followers(session, event["id"]) == ["citizen"]
    # Listing and deleting one's own; another's is not found.
    listed = client.get("/v1/subscriptions", headers=people["neighbour"]).json()["items"]
    assert len(listed) == 2 and listed[0]["area"]["type"] == "Polygon"
    assert client.delete(f"/v1/subscriptions/{listed[0]['id']}", headers=people["citizen"]).status_code == 404
    assert client.delete(f"/v1/subscriptions/{listed[0]['id']}", headers=people["neighbour"]).status_code == 204
    assert len(client.get("/v1/subscriptions", headers=people["neighbour"]).json()["items"]) == 1
    # Ten per account.
    smalls = [{"circle": {"lon": lon, "lat": lat, "radius_m": 10 + k}} for k in range(11)]
    statuses = [client.post("/v1/subscriptions", json=b, headers=people["walker"]).status_code for b in smalls]
    assert statuses == [201] * 10 + [409]
    # A retried request (the same area and categories) gets the stored one back, even at the limit.
    retried = client.post("/v1/subscriptions", json=smalls[3], headers=people["walker"])
    assert retried.status_code == 200 and retried.json()["radius_m"] == 13


def test_followers_hear_the_progress_the_public_may_read(city):
    """Subscribers and the reporters of merged reports are told in their inbox, without private notes."""
    client, engine, people, _ = city
    disp = people["dispatcher"]
    here = near(1, north_m=-150)  # in town A, the dispatcher's
    watcher = sign_in(client, engine, Role.public, "watcher")
    merger = sign_in(client, engine, Role.public, "merger")
    assert client.post("/v1/subscriptions", headers=watcher,
                       json={"circle": {**here, "radius_m": 50}}).status_code == 201  # fmt: skip
    master = report(client, people["anonymous"], here)
    duplicate = report(client, merger, {"lon": here["lon"], "lat": here["lat"] + 5e-5})
    assert client.post(f"/v1/events/{duplicate['id']}/merge", json={"into": master["id"]}, headers=disp).status_code == 200
    event = step(client, disp, master, "accept", note="已安排今日清运", public_note=True)
    handler = sign_in(client, engine, Role.handler, "cleaner", department_code=event["department_code"])
    event = step(client, disp, event, "dispatch", handler_username="cleaner", note="内部：找王队长")
    event = step(client, handler, event, "start", note="内部：车辆已出发")
    step(client, handler, event, "feedback", note="已清运完毕", public_note=True)
    fanout.drain(engine, NotifySettings(in_server=False))

    def inbox(auth: dict) -> list[tuple[int, str, str]]:
        items = client.get("/v1/inbox", params={"limit": 50}, headers=auth).json()["items"]
        return [(n["event_id"], n["title"], n["body"]) for n in reversed(items)]

    m, d = master["id"], duplicate["id"]
    heard = inbox(watcher)  # both reports are in the area; the dispatch has no public note: not told
    assert [(e, t) for e, t, _ in heard] == [
        (m, f"新事件上报 #{m}"), (d, f"新事件上报 #{d}"), (m, f"您关注的事件 #{m} 已受理"),
        (m, f"您关注的事件 #{m} 正在处置"), (m, f"事件 #{m} 已处置完毕，待核查")]  # fmt: skip
    assert "已安排今日清运" in heard[2][2] and "已清运完毕" in heard[4][2]
    # No private note, no description (the reports' description is "垃圾"; the category's name may hold the word).
    assert not any("内部" in body or "垃圾" in body.split(" · ") for _, _, body in heard)
    told_merger = inbox(merger)  # their report was merged: they hear the master from then on
    assert [(e, t) for e, t, _ in told_merger] == [
        (d, f"事件 #{d} 已与同类事件合并"), (m, f"您关注的事件 #{m} 已受理"),
        (m, f"您关注的事件 #{m} 正在处置"), (m, f"事件 #{m} 已处置完毕，待核查")]  # fmt: skip
    # A public note on a step whose row names no public audience still reaches the followers.
    returned = client.post(f"/v1/events/{m}/transitions", headers=disp, json={
        "action": "reopen", "expected_version": client.get(f"/v1/events/{m}", headers=disp).json()["row_version"],
        "note": "复查发现仍有残留，继续清运", "public_note": True})  # fmt: skip
    assert returned.status_code == 200, returned.text
    fanout.drain(engine, NotifySettings(in_server=False))
    last = inbox(watcher)[-1]
    assert last[:2] == (m, f"您关注的事件 #{m} 有新进展") and "继续清运" in last[2]
    assert inbox(merger)[-1] == last
    assert [n["event_id"] for n in client.get("/v1/inbox", headers=handler).json()["items"]][0] == m  # staff too
