"""The closed loop through the real app: report, every step with the right roles, the log, scope, bad input."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geoservice.events import text_pairs
from geoservice.events.queries import EventFilters, filter_clauses
from layers.crs import wgs84_to_gcj02
from layers.models import Role
from tests.geoservice.events_city import (
    COMMUNITY_A,
    COMMUNITY_B,
    EVENTS,
    GRIDS,
    TOWN_A,
    TOWN_B,
    centre,
    events_city_client,
)
from tests.geoservice.signin import sign_in


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    with events_city_client(empty_db) as client:
        yield client


@pytest.fixture
def people(client: TestClient, empty_db: Engine) -> dict[str, dict[str, str]]:
    """One account per role; dispatcher and grid worker in town A, the handler in urban management."""
    return {
        "admin": sign_in(client, empty_db, Role.admin),
        "dispatcher": sign_in(client, empty_db, Role.dispatcher, region_code=TOWN_A),
        "dispatcher_b": sign_in(client, empty_db, Role.dispatcher, "disp-b", region_code=TOWN_B),
        "handler": sign_in(client, empty_db, Role.handler, department_code="urban_management"),
        "police": sign_in(client, empty_db, Role.handler, "police-handler", department_code="police"),
        "grid_worker": sign_in(client, empty_db, Role.grid_worker, region_code=COMMUNITY_A),
        "supervisor": sign_in(client, empty_db, Role.supervisor),
        "planner": sign_in(client, empty_db, Role.planner),
        "public": sign_in(client, empty_db, Role.public, "citizen"),
    }


def report(client: TestClient, auth: dict[str, str], grid: int = 0, **fields) -> dict:
    lon, lat = centre(grid)
    body = {"lon": lon, "lat": lat, "category": "city_management.garbage", "description": "垃圾乱堆在路口",
            "reporter_name": "张三丰", "reporter_phone": "13812345678", **fields}  # fmt: skip
    response = client.post("/v1/events", json=body, headers=auth)
    assert response.status_code in (200, 201), response.text
    return response.json()


def step(client: TestClient, auth: dict[str, str], event: dict, action: str, status: int = 200, **fields) -> dict:
    body = {"action": action, "expected_version": event["row_version"], **fields}
    response = client.post(f"/v1/events/{event['id']}/transitions", json=body, headers=auth)
    assert response.status_code == status, response.text
    return response.json()


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def pages(client: TestClient, auth: dict[str, str], **params) -> list[int]:
    """Every event id a list gives, two a page, following the cursors to the end."""
    seen, cursor = [], None
    while True:
        page = client.get("/v1/events", params={"limit": 2, **params, **({"cursor": cursor} if cursor else {})},
                          headers=auth).json()  # fmt: skip
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


def test_a_public_report_is_routed_on_arrival(client: TestClient, people: dict):
    event = report(client, people["public"], grid=1)
    assert event["status"] == "reported" and event["escalation_level"] == "grid"
    assert event["grid_code"] == GRIDS[1] and event["community_code"] == COMMUNITY_A and event["town_code"] == TOWN_A
    assert event["department_code"] == "urban_management" and event["rule_id"] is not None
    assert "城管" in event["route_reason"] or str(event["rule_id"]) in event["route_reason"]
    assert event["station_code"] == "PS001" and event["reporter_username"] == "citizen"
    # garbage: accept within 4 h (categories.csv) at normal priority (factor 1.0)
    reported = datetime.fromisoformat(event["reported_at"])
    assert datetime.fromisoformat(event["accept_due_at"]) - reported == timedelta(hours=4)
    assert event["warning"] == "none" and event["overdue"] is False
    assert event["reporter_name"] == "张三丰"  # the reporter sees their own details


def test_gcj02_reports_land_where_they_are(client: TestClient, people: dict):
    lon, lat = centre(2)
    x, y = wgs84_to_gcj02(lon, lat)
    event = report(client, people["dispatcher"], grid=0, lon=float(x), lat=float(y), crs="gcj02", source="video")
    assert event["grid_code"] == GRIDS[2]
    assert event["lon"] == pytest.approx(lon, abs=1e-7) and event["lat"] == pytest.approx(lat, abs=1e-7)


def test_urgent_reports_get_half_the_time(client: TestClient, people: dict):
    event = report(client, people["dispatcher"], priority="urgent", category="public_order.fight")
    reported = datetime.fromisoformat(event["reported_at"])
    assert datetime.fromisoformat(event["accept_due_at"]) - reported == timedelta(hours=0.25)  # 0.5 h × 0.5


def test_the_whole_loop_with_the_right_roles(client: TestClient, people: dict, empty_db: Engine):
    event = report(client, people["public"])
    event = step(client, people["grid_worker"], event, "accept", note="收到")
    assert event["status"] == "accepted" and event["accepted_at"]
    event = step(client, people["dispatcher"], event, "dispatch", handler_username="handler-user")
    assert event["status"] == "dispatched" and event["department_code"] == "urban_management"
    assert event["handler_username"] == "handler-user"
    dispatched = datetime.fromisoformat(event["dispatched_at"])
    assert datetime.fromisoformat(event["handle_due_at"]) - dispatched == timedelta(hours=48)
    event = step(client, people["handler"], event, "start")
    assert event["status"] == "handling"
    event = step(client, people["handler"], event, "feedback", note="已清理")
    assert event["status"] == "handled"
    event = step(client, people["dispatcher"], event, "verify")
    event = step(client, people["dispatcher"], event, "archive")
    assert event["status"] == "archived"
    event = step(client, people["public"], event, "evaluate", satisfaction=5, comment="很快")
    assert event["status"] == "evaluated" and event["satisfaction"] == 5 and event["evaluation_comment"] == "很快"
    assert event["row_version"] == 8 and event["allowed_actions"] == []

    log = client.get(f"/v1/events/{event['id']}/log", headers=people["supervisor"]).json()["entries"]
    assert [(e["action"], e["from_status"], e["to_status"], e["actor"], e["role"]) for e in log] == [
        ("report", None, "reported", "citizen", "public"),
        ("accept", "reported", "accepted", "grid_worker-user", "grid_worker"),
        ("dispatch", "accepted", "dispatched", "dispatcher-user", "dispatcher"),
        ("start", "dispatched", "handling", "handler-user", "handler"),
        ("feedback", "handling", "handled", "handler-user", "handler"),
        ("verify", "handled", "verified", "dispatcher-user", "dispatcher"),
        ("archive", "verified", "archived", "dispatcher-user", "dispatcher"),
        ("evaluate", "archived", "evaluated", "citizen", "public"),
    ]
    assert log[1]["note"] == "收到" and log[4]["note"] == "已清理"
    assert [datetime.fromisoformat(e["at"]) for e in log] == sorted(datetime.fromisoformat(e["at"]) for e in log)


def test_reject_return_reopen_escalate(client: TestClient, people: dict):
    rejected = report(client, people["public"])
    step(client, people["dispatcher"], rejected, "reject", 422)  # a reason is required
    rejected = step(client, people["dispatcher"], rejected, "reject", note="重复上报")
    assert rejected["status"] == "rejected" and rejected["allowed_actions"] == []

    event = report(client, people["public"])
    event = step(client, people["dispatcher"], event, "accept")
    event = step(client, people["dispatcher"], event, "dispatch", department_code="police")
    event = step(client, people["police"], event, "return", note="不属于公安职责")
    assert event["status"] == "returned" and event["handler_username"] is None
    event = step(client, people["dispatcher"], event, "dispatch", department_code="urban_management")
    event = step(client, people["handler"], event, "start")
    event = step(client, people["handler"], event, "feedback")
    event = step(client, people["dispatcher"], event, "reopen", note="现场仍有垃圾")
    assert event["status"] == "reopened" and event["reopen_count"] == 1
    event = step(client, people["handler"], event, "start")
    assert event["status"] == "handling"

    # the department holds it now: the grid worker may not escalate it, the dispatching town may
    assert step(client, people["grid_worker"], event, "escalate", 403, reason="需要村里协调")["title"] == (
        "No longer yours"
    )
    event = step(client, people["dispatcher"], event, "escalate", reason="需要村里协调")
    assert event["escalation_level"] == "community" and event["status"] == "returned"  # taken back from the department
    event = step(client, people["dispatcher"], event, "escalate", note="村里协调不了")
    event = step(client, people["admin"], event, "escalate", note="镇里也不行")  # above the town dispatcher
    assert event["escalation_level"] == "city" and event["escalation_count"] == 3
    problem = step(client, people["admin"], event, "escalate", 409, note="更高?")
    assert "city level" in problem["detail"]


def test_wrong_state_and_wrong_role_say_what_is_allowed(client: TestClient, people: dict, empty_db: Engine):
    event = report(client, people["public"])
    logged = count(empty_db, "event_log")
    wrong_state = step(client, people["dispatcher"], event, "archive", 409)
    assert wrong_state["allowed_actions"] == ["accept", "reject", "escalate", "merge"]
    assert "reported" in wrong_state["detail"] and "accept, reject, escalate" in wrong_state["detail"]
    wrong_role = step(client, people["handler"], event, "accept", 403)
    assert "handler" in wrong_role["detail"] and "dispatcher" in wrong_role["detail"]
    assert step(client, people["supervisor"], event, "accept", 403)["status"] == 403  # read-only
    assert step(client, people["public"], event, "accept", 403)["status"] == 403
    unknown = step(client, people["dispatcher"], event, "teleport", 422)
    assert "accept" in unknown["detail"]
    assert count(empty_db, "event_log") == logged
    after = client.get(f"/v1/events/{event['id']}", headers=people["admin"]).json()
    assert after["status"] == "reported" and after["row_version"] == 1


def test_a_stale_expected_version_is_a_409(client: TestClient, people: dict, empty_db: Engine):
    event = report(client, people["public"])
    step(client, people["dispatcher"], event, "accept")
    stale = step(client, people["dispatcher"], event, "escalate", 409, note="升级")  # still row_version 1
    assert stale["current_version"] == 2 and "changed since you read it" in stale["detail"]
    bad = client.post(f"/v1/events/{event['id']}/transitions", json={"action": "escalate", "note": "x",
                      "expected_version": "two"}, headers=people["dispatcher"])  # fmt: skip
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    missing = client.post(f"/v1/events/{event['id']}/transitions", json={"action": "escalate", "note": "x"},
                          headers=people["dispatcher"])  # fmt: skip
    assert missing.status_code == 422
    assert count(empty_db, "event_log") == 2


def test_evaluation_needs_a_satisfaction_from_1_to_5(client: TestClient, people: dict, empty_db: Engine):
    event = report(client, people["public"])
    with empty_db.begin() as conn:
        conn.execute(text("UPDATE events SET status = 'archived' WHERE id = :id"), {"id": event["id"]})
    step(client, people["public"], event, "evaluate", 422)
    step(client, people["public"], event, "evaluate", 422, satisfaction=6)
    assert step(client, people["public"], event, "evaluate", satisfaction=1)["satisfaction"] == 1


def test_scope_a_dispatcher_of_town_a_never_sees_town_b(client: TestClient, people: dict):
    in_a = report(client, people["public"], grid=0)
    in_b = report(client, people["public"], grid=3, category="public_order.fight")
    mine = {e["id"] for e in client.get("/v1/events", headers=people["dispatcher"]).json()["items"]}
    theirs = {e["id"] for e in client.get("/v1/events", headers=people["dispatcher_b"]).json()["items"]}
    assert mine == {in_a["id"]} and theirs == {in_b["id"]}
    for path in (f"/v1/events/{in_b['id']}", f"/v1/events/{in_b['id']}/log"):
        response = client.get(path, headers=people["dispatcher"])
        assert response.status_code == 404  # not 403: existence does not leak
    assert step(client, people["dispatcher"], in_b, "accept", 404)["status"] == 404
    assert client.get("/v1/events", params={"region": TOWN_B}, headers=people["dispatcher"]).json()["items"] == []
    # handlers see their department, the public their own reports, supervisors everything
    police = {e["id"] for e in client.get("/v1/events", headers=people["police"]).json()["items"]}
    assert police == {in_b["id"]}
    other_citizen = sign_in(client, client.app.state.engine, Role.public, "someone-else")
    assert client.get("/v1/events", headers=other_citizen).json()["items"] == []
    assert client.get(f"/v1/events/{in_a['id']}", headers=other_citizen).status_code == 404
    assert client.get("/v1/events").json()["items"] == []  # the anonymous public follows nothing
    everything = {e["id"] for e in client.get("/v1/events", headers=people["supervisor"]).json()["items"]}
    assert everything == {in_a["id"], in_b["id"]}
    assert client.get("/v1/events", headers=people["planner"]).status_code == 403


def test_reporter_details_are_masked_for_those_who_do_not_act(client: TestClient, people: dict):
    event = report(client, people["public"], grid=0)
    for who in ("dispatcher", "handler", "supervisor", "admin"):
        seen = client.get(f"/v1/events/{event['id']}", headers=people[who]).json()
        assert (seen["reporter_name"], seen["reporter_phone"]) == ("张三丰", "13812345678"), who
    for who in ("grid_worker", "police"):
        seen = client.get("/v1/events", headers=people[who]).json()["items"]
        for e in seen:
            assert (e["reporter_name"], e["reporter_phone"]) == ("张**", "138****5678"), who


def test_bad_reports_are_refused_and_nothing_is_written(client: TestClient, people: dict, empty_db: Engine):
    lon, lat = centre(0)
    good = {"lon": lon, "lat": lat, "category": "city_management.garbage"}
    cases = [
        ({**good, "category": "city_management.unicorns"}, "Unknown category"),
        ({**good, "lon": 200.0}, "Invalid coordinates"),
        ({**good, "lon": lon + 1}, "Outside every grid"),  # 94 km east of the city
        ({**good, "crs": "EPSG:999999"}, "Unknown coordinate reference system"),
        ({**good, "crs": "mars2000"}, "Unknown coordinate reference system"),
        ({**good, "description": "很" * 2001}, "Invalid request"),
        ({**good, "reporter_phone": "call me maybe"}, "Invalid phone number"),
        ({**good, "source": "telepathy"}, "Unknown source"),
        ({**good, "priority": "whenever"}, "Unknown priority"),
        ({**good, "occurred_at": "2026-11-24T09:00:00"}, "Invalid time"),
        ({**good, "occurred_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}, "Invalid time"),
        ({**good, "photos": [{"caption": "no url"}]}, "Invalid request"),
        ({**good, "idempotency_key": "k" * 121}, "Invalid request"),
    ]
    for body, title in cases:
        response = client.post("/v1/events", json=body, headers=people["dispatcher"])
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["title"] == title, (body, response.json())
    public_as_hotline = client.post("/v1/events", json={**good, "source": "hotline_12345"}, headers=people["public"])
    assert public_as_hotline.status_code == 422
    assert count(empty_db, "events") == 0 and count(empty_db, "event_log") == 0


def test_the_same_key_twice_stores_one_event(client: TestClient, people: dict, empty_db: Engine):
    first = client.post("/v1/events", json={"lon": centre(0)[0], "lat": centre(0)[1], "category": "environment.noise",
                        "idempotency_key": "phone-42"}, headers=people["public"])  # fmt: skip
    again = client.post("/v1/events", json={"lon": centre(0)[0], "lat": centre(0)[1], "category": "environment.noise"},
                        headers={**people["public"], "Idempotency-Key": "phone-42"})  # fmt: skip
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    changed = client.post("/v1/events", json={"lon": centre(1)[0], "lat": centre(1)[1], "category": "environment.noise",
                          "idempotency_key": "phone-42"}, headers=people["public"])  # fmt: skip
    assert changed.status_code == 409 and "different report" in changed.json()["detail"]
    # keys belong to their sender: another user's "phone-42" is a new event
    other = client.post("/v1/events", json={"lon": centre(0)[0], "lat": centre(0)[1], "category": "environment.noise",
                        "idempotency_key": "phone-42"}, headers=people["dispatcher"])  # fmt: skip
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    assert count(empty_db, "events") == 2 and count(empty_db, "event_log") == 2


def test_queue_filters_pagination_and_geojson(client: TestClient, people: dict, empty_db: Engine):
    made = [report(client, people["admin"], grid=k % 4, category=c, description=d)
            for k, (c, d) in enumerate([("city_management.garbage", "路口垃圾"), ("public_order.fight", "酒后打架"),
                                        ("city_management.stall", "占道经营 100%"), ("environment.noise", "夜间施工"),
                                        ("city_management.road", "路面塌陷")])]  # fmt: skip
    admin = people["admin"]

    def ids(**params) -> list[int]:
        return [e["id"] for e in client.get("/v1/events", params=params, headers=admin).json()["items"]]

    assert ids() == [e["id"] for e in reversed(made)]  # newest first
    assert ids(category="city_management") == [made[4]["id"], made[2]["id"], made[0]["id"]]
    assert ids(category="city_management.garbage") == [made[0]["id"]]
    assert ids(q="100%") == [made[2]["id"]] and ids(q="打架") == [made[1]["id"]]
    assert ids(department="police") == [made[1]["id"]]
    assert set(ids(region=TOWN_B)) == {made[2]["id"], made[3]["id"]}
    assert ids(region=GRIDS[1]) == [made[1]["id"]]
    lon, lat = centre(0)
    assert ids(bbox=f"{lon - 0.001},{lat - 0.001},{lon + 0.001},{lat + 0.001}") == [made[4]["id"], made[0]["id"]]
    assert ids(sort="id") == [e["id"] for e in made]
    with empty_db.begin() as conn:
        conn.execute(text("UPDATE events SET status = 'accepted' WHERE id = :id"), {"id": made[3]["id"]})
    assert ids(status="accepted") == [made[3]["id"]]
    assert len(ids(status="reported,accepted")) == 5
    later = datetime.fromisoformat(made[2]["reported_at"])
    assert ids(**{"from": later.isoformat(), "sort": "id"}) == [e["id"] for e in made[2:]]

    assert pages(client, admin) == [e["id"] for e in reversed(made)]

    geo = client.get("/v1/events", params={"format": "geojson", "limit": 1}, headers=admin)
    assert geo.headers["content-type"] == "application/geo+json"
    feature = geo.json()["features"][0]
    assert feature["geometry"]["type"] == "Point" and feature["id"] == made[4]["id"]
    assert feature["geometry"]["coordinates"] == pytest.approx(list(centre(0)), abs=1e-9)
    by_accept = client.get("/v1/events", params={"limit": 1}, headers={**admin, "Accept": "application/geo+json"})
    assert by_accept.json()["type"] == "FeatureCollection"
    gcj = client.get(f"/v1/events/{made[0]['id']}", params={"crs": "gcj02"}, headers=admin).json()
    assert (gcj["lon"], gcj["lat"]) == pytest.approx(tuple(float(v) for v in wgs84_to_gcj02(*centre(0))), abs=1e-9)

    for params in ({"status": "lost"}, {"warning": "purple"}, {"bbox": "1,2,3"}, {"sort": "colour"},
                   {"cursor": "garbage"}, {"region": "3206"}, {"from": "2026-01-01T00:00:00"}):  # fmt: skip
        response = client.get("/v1/events", params=params, headers=admin)
        assert response.status_code == 422, (params, response.text)


def test_a_colour_a_status_and_a_category_in_a_queue_page_in_order(client: TestClient, people: dict, empty_db: Engine):
    """The filters read through their own indexes at a million events (migration 0020: a status's
    events and the running ones newest first; a category inside a community by the place alone).
    Whatever the plan, every page must hold exactly the events the filter selects, newest first."""
    kinds = ["city_management.garbage", "public_order.fight", "city_management.road"]
    made = [report(client, people["admin"], grid=k % 4, category=kinds[k % 3], description=f"event {k}")
            for k in range(12)]  # fmt: skip
    # Reported 9 h ago (in the same order); red: due after 8 h, yellow: after 10 h (90 % used),
    # none: after 100 h. Four of each; two closed events have no colour, whatever their deadlines.
    due_after = {"red": 8, "yellow": 10, "none": 100}
    colour = {e["id"]: ("red", "yellow", "none")[k % 3] for k, e in enumerate(made)}
    closed = {made[0]["id"], made[5]["id"]}
    with empty_db.begin() as conn:
        for event_id, name in colour.items():
            conn.execute(text("UPDATE events SET reported_at = reported_at - interval '9 hours', "
                              "accept_due_at = reported_at - interval '9 hours' + make_interval(hours => :h), "
                              "status = :status WHERE id = :id"),
                         {"h": due_after[name], "id": event_id, "status": "archived" if event_id in closed else "reported"})  # fmt: skip

    newest_first = [e["id"] for e in reversed(made)]
    admin = people["admin"]
    for name in ("red", "yellow"):
        expected = [i for i in newest_first if colour[i] == name and i not in closed]
        assert len(expected) >= 3 and pages(client, admin, warning=name) == expected, name
        found = client.get("/v1/events", params={"warning": name, "limit": 50}, headers=admin).json()["items"]
        assert {e["warning"] for e in found} == {name}  # the filter and the colour shown agree
    assert pages(client, admin, status="archived") == [i for i in newest_first if i in closed]
    assert pages(client, admin, status="reported") == [i for i in newest_first if i not in closed]
    mine = [e["id"] for e in reversed(made) if e["grid_code"].startswith(COMMUNITY_A)]
    for category in ("city_management", "city_management.road", "public_order"):
        expected = [e["id"] for e in reversed(made)
                    if e["id"] in mine and e["category_code"].startswith(category)]  # fmt: skip
        assert expected and pages(client, people["grid_worker"], category=category) == expected, category
        assert pages(client, admin, category=category, region=COMMUNITY_A) == expected, category


def test_free_text_finds_what_a_case_blind_substring_finds_in_every_scope(
    client: TestClient, people: dict, empty_db: Engine
):
    """q= is served by the index of character pairs (migration 0018): nothing it finds may differ."""
    texts = [("public_order.fight", "酒后打架，垃圾桶被踢翻"), ("public_order.fight", "Drunk FIGHT at the KTV"),
             ("city_management.garbage", "垃圾乱堆"), ("public_order.fight", "拉圾 (a near miss)"),
             ("public_order.fight", "横幅写着 50%_off"), ("public_order.fight", "垃"),
             ("city_management.garbage", "路口垃圾 fight")]  # fmt: skip
    made = [report(client, people["admin"], grid=k % 4, category=c, description=d) for k, (c, d) in enumerate(texts)]
    assert {e["department_code"] for e in made} == {"police", "urban_management"}

    # A community's queue (the grid worker's) reads words without cased letters with LIKE alone.
    scopes = {"admin": lambda e: True, "police": lambda e: e["department_code"] == "police",
              "handler": lambda e: e["department_code"] == "urban_management",
              "grid_worker": lambda e: e["community_code"] == COMMUNITY_A}  # fmt: skip
    for who, in_scope in scopes.items():
        for words in ("垃圾", "垃", "圾桶被踢", "fight", "Fight", "t a", "%_", "0%_O", "打架", "火星", "50%"):
            found = client.get("/v1/events", params={"q": words}, headers=people[who]).json()["items"]
            expected = [e["id"] for e in reversed(made) if words.lower() in e["description"].lower() and in_scope(e)]
            assert [e["id"] for e in found] == expected, (who, words)
    assert {e["community_code"] for e in made} == {COMMUNITY_A, COMMUNITY_B}

    clauses, params = filter_clauses(EventFilters(text="垃圾"), EVENTS)
    with empty_db.begin() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = conn.execute(text(f"EXPLAIN SELECT e.id FROM events e WHERE {' AND '.join(clauses)}"), params)
        assert "ix_events_description_bigrams" in "\n".join(plan.scalars())


def test_a_common_pair_is_left_out_of_the_index_question_not_out_of_the_answer(
    client: TestClient, people: dict, empty_db: Engine
):
    """The index is asked for a word's rare pairs only (events.text_pairs); LIKE still checks the word."""
    made = [report(client, people["admin"], grid=k % 4, description=f"巡查发现{'现金' if k % 5 == 0 else '垃圾'}{k}")
            for k in range(20)]  # fmt: skip
    with empty_db.begin() as conn:
        conn.execute(text("ANALYZE events"))  # the pairs' statistics: 发现 in every description, 现金 in 4
    text_pairs._shares.clear()  # what an earlier test's database said under the same URL
    with Session(empty_db) as session:
        asked = text_pairs.pairs_to_ask(session, "发现现金")
    assert asked and "发现" not in asked and set(asked) <= {"现现", "现金"}
    found = client.get("/v1/events", params={"q": "发现现金"}, headers=people["admin"]).json()["items"]
    assert [e["id"] for e in found] == [e["id"] for e in reversed(made) if "发现现金" in e["description"]]
    assert len(found) == 4


def test_a_community_queue_pages_in_order_with_every_sort(client: TestClient, people: dict):
    """A grid worker's queue (one community) and a community filter are sorted apart from the time index
    (bench.big_events: that is what keeps them fast at a million events); the order and the pages
    must be those of any other list."""
    made = [report(client, people["admin"], grid=k % 4, description=f"event {k}") for k in range(9)]
    mine = [e["id"] for e in made if e["grid_code"].startswith(COMMUNITY_A)]
    assert len(mine) == 5

    for auth, params in ((people["grid_worker"], {}), (people["admin"], {"region": COMMUNITY_A})):
        assert pages(client, auth, **params) == list(reversed(mine))
        assert pages(client, auth, sort="id", **params) == mine
        assert pages(client, auth, sort="-id", **params) == list(reversed(mine))
        assert pages(client, auth, sort="reported_at", **params) == mine
    # a colour: only running clocks have one, closed events never ("none" still lists them)
    admin = people["admin"]
    assert {e["id"] for e in client.get("/v1/events", params={"warning": "none", "limit": 500},
                                         headers=admin).json()["items"]} == {e["id"] for e in made}  # fmt: skip
    assert client.get("/v1/events", params={"warning": "red,yellow,blue"}, headers=admin).json()["items"] == []
