"""Co-handling (联合处置): a lead and co-departments, each with its own task, walked through the real API."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from layers.models import Role
from tests.geoservice.events_city import COMMUNITY_A, COMMUNITY_B, centre, events_city_client
from tests.geoservice.signin import sign_in

LEAD = "urban_management"


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    with events_city_client(empty_db) as client:
        yield client


def _step(client: TestClient, auth: dict, event: dict, action: str, status: int = 200, **fields) -> dict:
    body = {"action": action, "expected_version": event["row_version"], **fields}
    response = client.post(f"/v1/events/{event['id']}/transitions", json=body, headers=auth)
    assert response.status_code == status, response.text
    return response.json()


def _task(client: TestClient, auth: dict, event_id: int, department: str, step: str, status: int = 200, **body):
    response = client.post(f"/v1/events/{event_id}/tasks/{department}/{step}", json=body or None, headers=auth)
    assert response.status_code == status, response.text
    return response.json()


def _tasks(client: TestClient, auth: dict, event_id: int) -> dict[str, dict]:
    """The live tasks by department (replaced ones are history)."""
    items = client.get(f"/v1/events/{event_id}/tasks", headers=auth).json()["items"]
    return {t["department_code"]: t for t in items if t["status"] != "replaced"}


def test_lead_and_co_departments_walk_the_loop(client: TestClient, empty_db: Engine):
    dispatcher = sign_in(client, empty_db, Role.dispatcher)
    lead = sign_in(client, empty_db, Role.handler, "lead-h", department_code=LEAD)
    police = sign_in(client, empty_db, Role.handler, "police-h", department_code="police")
    ecology = sign_in(client, empty_db, Role.handler, "eco-h", department_code="ecology")
    emergency = sign_in(client, empty_db, Role.handler, "emerg-h", department_code="emergency")
    lon, lat = centre(0)
    reported = client.post("/v1/events", json={"lon": lon, "lat": lat, "category": "city_management.garbage"},
                           headers=dispatcher)  # fmt: skip
    assert reported.status_code == 201, reported.text
    event = _step(client, dispatcher, reported.json(), "accept")

    # Bad co-departments: each a clear 422, and nothing written.
    for co, says in [(["nope"], "'nope'"), (["police", "police"], "police"), ([LEAD], LEAD)]:
        refused = _step(client, dispatcher, event, "dispatch", 422, department_code=LEAD, co_departments=co)
        assert says in refused["detail"], refused
    assert client.get(f"/v1/events/{event['id']}", headers=dispatcher).json()["row_version"] == event["row_version"]
    assert _step(client, dispatcher, event, "accept", 409)  # still accepted

    event = _step(client, dispatcher, event, "dispatch", department_code=LEAD, co_departments=["police", "ecology"])
    tasks = _tasks(client, dispatcher, event["id"])
    assert {d: t["status"] for d, t in tasks.items()} == {"police": "open", "ecology": "open"}
    assert all(t["due_at"] == event["handle_due_at"] and t["warning"] == "none" for t in tasks.values())

    # A co-department sees the event while its task is live, but works on its task only.
    seen = client.get(f"/v1/events/{event['id']}", headers=police).json()
    assert seen["id"] == event["id"] and seen["allowed_actions"] == []
    assert [e["id"] for e in client.get("/v1/events", headers=police).json()["items"]] == [event["id"]]
    assert client.get(f"/v1/events/{event['id']}", headers=emergency).status_code == 404
    assert _step(client, police, event, "start", 403)["detail"].startswith("department police co-handles")
    assert _task(client, police, event["id"], "police", "start")["status"] == "handling"
    assert _task(client, police, event["id"], "police", "start")["status"] == "handling"  # a retry changes nothing
    _task(client, police, event["id"], "ecology", "start", 403)  # not police's task

    # The lead sends it back; the re-dispatch replaces the live tasks.
    event = _step(client, lead, event, "return", note="路段属开发区管理")
    event = _step(client, dispatcher, event, "dispatch", department_code=LEAD, co_departments=["ecology", "emergency"])
    tasks = _tasks(client, dispatcher, event["id"])
    assert {d: t["status"] for d, t in tasks.items()} == {"ecology": "open", "emergency": "open"}
    assert client.get(f"/v1/events/{event['id']}", headers=police).status_code == 404  # its task was replaced
    assert client.get(f"/v1/events/{event['id']}", headers=emergency).status_code == 200

    event = _step(client, lead, event, "start")
    blocked = _step(client, lead, event, "feedback", 409)
    assert blocked["open_co_tasks"] == ["ecology", "emergency"]
    assert "ecology (open)" in blocked["detail"] and "emergency (open)" in blocked["detail"]

    # Each task keeps its own clock: an overdue one is red.
    with empty_db.begin() as conn:
        conn.execute(text("UPDATE event_tasks SET due_at = now() - interval '1 minute' "
                          "WHERE event_id = :id AND department_code = 'emergency' AND status = 'open'"),
                     {"id": event["id"]})  # fmt: skip
    tasks = _tasks(client, dispatcher, event["id"])
    assert (tasks["emergency"]["warning"], tasks["emergency"]["overdue"]) == ("red", True)
    assert (tasks["ecology"]["warning"], tasks["ecology"]["overdue"]) == ("none", False)

    _task(client, ecology, event["id"], "ecology", "feedback", 409, note="已清运")  # start it first
    _task(client, ecology, event["id"], "ecology", "start")
    _task(client, ecology, event["id"], "ecology", "feedback", 422)  # a note is required
    done = _task(client, ecology, event["id"], "ecology", "feedback", note="已清运")
    assert done["status"] == "fed_back" and done["fed_back_by"] == "eco-h" and done["warning"] == "none"
    assert client.get(f"/v1/events/{event['id']}", headers=ecology).status_code == 404  # fed back: no longer theirs
    blocked = _step(client, lead, event, "feedback", 409)
    assert blocked["open_co_tasks"] == ["emergency"]

    _task(client, dispatcher, event["id"], "emergency", "start")  # dispatchers may move a task too
    _task(client, emergency, event["id"], "emergency", "feedback", note="无安全隐患")
    _task(client, dispatcher, event["id"], "nope", "start", 404)
    event = _step(client, lead, event, "feedback")
    assert event["status"] == "handled"

    log = client.get(f"/v1/events/{event['id']}/log", headers=dispatcher).json()["entries"]
    task_steps = [(e["action"], e["details"]["department"], e["actor"]) for e in log if e["action"].startswith("co_")]
    assert task_steps == [
        ("co_task_start", "police", "police-h"),
        ("co_task_start", "ecology", "eco-h"),
        ("co_task_feedback", "ecology", "eco-h"),
        ("co_task_start", "emergency", "dispatcher-user"),
        ("co_task_feedback", "emergency", "emerg-h"),
    ]
    dispatches = [e["details"]["co_departments"] for e in log if e["action"] == "dispatch"]
    assert dispatches == [["police", "ecology"], ["ecology", "emergency"]]


def test_a_department_lists_its_live_co_tasks_and_a_lost_feedback_answer_can_be_asked_again(
    client: TestClient, empty_db: Engine
):
    """``/v1/queue/cotasks``: the co-department's work (the phone's list), scoped; a resent feedback is harmless."""
    dispatcher = sign_in(client, empty_db, Role.dispatcher)
    other = sign_in(client, empty_db, Role.dispatcher, "disp-b", region_code=COMMUNITY_B)
    police = sign_in(client, empty_db, Role.handler, "police-h", department_code="police")
    ecology = sign_in(client, empty_db, Role.handler, "eco-h", department_code="ecology")
    worker = sign_in(client, empty_db, Role.grid_worker, "worker-a", region_code=COMMUNITY_A)
    lon, lat = centre(0)
    event = client.post("/v1/events", json={"lon": lon, "lat": lat, "category": "city_management.garbage"},
                        headers=dispatcher).json()  # fmt: skip
    event = _step(client, dispatcher, event, "accept")
    event = _step(client, dispatcher, event, "dispatch", department_code=LEAD, co_departments=["police"])

    mine = client.get("/v1/queue/cotasks", headers=police).json()
    assert mine["counts"]["total"] == 1 and sum(mine["counts"][c] for c in ("none", "blue", "yellow", "red")) == 1
    [task] = mine["items"]
    assert (task["event_id"], task["department_code"], task["status"]) == (event["id"], "police", "open")
    assert task["category_code"] == "city_management.garbage" and task["event_status"] == "dispatched"
    assert task["place"] == "甲村 网格1" and task["due_at"] == event["handle_due_at"]
    assert task["warning"] == "none" and task["overdue"] is False
    assert client.get("/v1/queue/cotasks", headers=ecology).json()["items"] == []  # not ecology's task
    assert [t["event_id"] for t in client.get("/v1/queue/cotasks", headers=dispatcher).json()["items"]] == [event["id"]]
    assert client.get("/v1/queue/cotasks", headers=other).json()["items"] == []  # outside that dispatcher's scope
    assert client.get("/v1/queue/cotasks", headers=worker).status_code == 403  # co-tasks are departments' work
    assert client.get("/v1/queue/cotasks?limit=0", headers=police).status_code == 422

    _task(client, police, event["id"], "police", "start")
    assert client.get("/v1/queue/cotasks", headers=police).json()["items"][0]["status"] == "handling"
    done = _task(client, police, event["id"], "police", "feedback", note="已到场维持秩序")
    assert client.get(f"/v1/events/{event['id']}", headers=police).status_code == 404  # no longer theirs to see
    again = _task(client, police, event["id"], "police", "feedback", note="已到场维持秩序")  # the answer was lost
    assert again["status"] == "fed_back" and again["fed_back_at"] == done["fed_back_at"]
    _task(client, police, event["id"], "police", "feedback", 404, note="另一段话")  # other words: still not theirs
    assert client.get("/v1/queue/cotasks", headers=police).json()["items"] == []
    log = client.get(f"/v1/events/{event['id']}/log", headers=dispatcher).json()["entries"]
    assert [e["action"] for e in log if e["action"].startswith("co_")] == ["co_task_start", "co_task_feedback"]


def test_a_handlers_list_pages_through_led_and_co_handled_events_alike(client: TestClient, empty_db: Engine):
    """A handler's list reads the events it leads and those it co-handles apart, then as one page (issue 22)."""
    dispatcher = sign_in(client, empty_db, Role.dispatcher)
    police = sign_in(client, empty_db, Role.handler, "police-h", department_code="police")
    plan = [  # category, lead department, co-departments
        ("city_management.garbage", "police", []),
        ("environment.noise", LEAD, ["police"]),
        ("city_management.stall", "police", []),
        ("city_management.garbage", LEAD, ["police", "ecology"]),
        ("environment.noise", "ecology", []),  # not police's at all
        ("city_management.stall", "police", []),
    ]
    made = []
    for k, (category, lead, co) in enumerate(plan):
        lon, lat = centre(k % 3)
        reported = client.post("/v1/events", json={"lon": lon, "lat": lat, "category": category}, headers=dispatcher)
        assert reported.status_code == 201, reported.text
        event = _step(client, dispatcher, reported.json(), "accept")
        made.append(_step(client, dispatcher, event, "dispatch", department_code=lead, co_departments=co))
    theirs = [made[k]["id"] for k in (5, 3, 2, 1, 0)]  # newest first

    def pages(**params) -> list[int]:
        seen, cursor = [], None
        while True:
            query = {"limit": 2, **params, **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/events", params=query, headers=police)
            assert page.status_code == 200, page.text
            seen += [e["id"] for e in page.json()["items"]]
            if (cursor := page.json()["next_cursor"]) is None:
                return seen

    assert pages() == theirs
    assert pages(sort="id") == sorted(theirs)
    assert pages(category="city_management") == [made[k]["id"] for k in (5, 3, 2, 0)]
    assert pages(category="environment") == [made[1]["id"]]  # the ecology-led noise report is not police's
    assert pages(category="city_management.stall") == [made[5]["id"], made[2]["id"]]
    assert pages(category="public_order") == []
    assert pages(category="city_management", status="dispatched") == [made[k]["id"] for k in (5, 3, 2, 0)]
