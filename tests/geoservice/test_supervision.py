"""Supervision (督办): orders on an event and on a unit's overdue work, replies, escalation of late orders."""

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geoservice.events.supervision import sweep_supervision
from geoservice.infra.database import transaction
from geoservice.stats.filters import LOCAL_TZ
from layers.models import Role
from tests.geoservice.events_city import COMMUNITY_A, TOWN_A, TOWN_B, centre, events_city_client
from tests.geoservice.signin import sign_in


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    with events_city_client(empty_db) as client:
        yield client


def _report(client: TestClient, auth: dict, grid: int) -> dict:
    lon, lat = centre(grid)
    response = client.post("/v1/events", json={"lon": lon, "lat": lat, "category": "environment.noise"}, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


def _order(client: TestClient, auth: dict, event_id: int, status: int, **body) -> dict:
    response = client.post(f"/v1/events/{event_id}/supervision", json=body, headers=auth)
    assert response.status_code == status, response.text
    return response.json()


def _sweep_twice_at_once(engine: Engine, now: datetime) -> list[list[int]]:
    """Two sweeps in two transactions, released together: each claims what the other did not."""
    barrier, results = threading.Barrier(2), [[], []]

    def run(k: int) -> None:
        with transaction(engine) as session:
            barrier.wait()
            results[k] = sweep_supervision(session, now)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_orders_replies_and_escalation_of_late_orders(client: TestClient, empty_db: Engine):
    supervisor = sign_in(client, empty_db, Role.supervisor)
    town_a = sign_in(client, empty_db, Role.dispatcher, "disp-a", region_code=TOWN_A)
    town_b = sign_in(client, empty_db, Role.dispatcher, "disp-b", region_code=TOWN_B)
    planner = sign_in(client, empty_db, Role.planner)
    in_a, in_b = _report(client, town_a, 0), _report(client, town_b, 2)

    # Bad input and the wrong people: clear problems, nothing written.
    _order(client, supervisor, in_a["id"], 422, instruction="尽快处理")  # no deadline
    _order(client, supervisor, in_a["id"], 422, instruction="尽快处理", reply_hours=2,
           reply_due_at="2030-01-01T00:00:00+08:00")  # both  # fmt: skip
    _order(client, supervisor, in_a["id"], 422, instruction="尽快处理", reply_due_at="2020-01-01T00:00:00+08:00")
    _order(client, supervisor, in_a["id"], 422, instruction="", reply_hours=2)
    _order(client, town_a, in_a["id"], 403, instruction="尽快处理", reply_hours=2)
    _order(client, supervisor, 999_999, 404, instruction="尽快处理", reply_hours=2)

    order = _order(client, supervisor, in_a["id"], 201, instruction="尽快处理并回复", reply_hours=2)
    assert order["reply_due_at"] and order["replied_at"] is None and order["overdue"] is False
    assert _order(client, supervisor, in_a["id"], 200, instruction="尽快处理并回复", reply_hours=2)["id"] == order["id"]
    assert _order(client, supervisor, in_a["id"], 409, instruction="另一条", reply_hours=2)["order_id"] == order["id"]

    # Flagged on the event and in the queue of those who act on it.
    seen = client.get(f"/v1/events/{in_a['id']}", headers=town_a).json()
    assert seen["supervised"] is True and seen["supervision_due_at"] == order["reply_due_at"]
    queue = {e["id"]: e["supervised"] for e in client.get("/v1/events", headers=supervisor).json()["items"]}
    assert queue == {in_a["id"]: True, in_b["id"]: False}

    # The list is scoped: issuers see all, others the orders on events they may see.
    def listed(auth: dict) -> list[int]:
        return [o["id"] for o in client.get("/v1/supervision", headers=auth).json()["items"]]

    assert listed(supervisor) == listed(town_a) == [order["id"]] and listed(town_b) == []
    assert client.get("/v1/supervision", headers=planner).status_code == 403

    # The reply comes from someone who acts on the event; outside it the order does not exist.
    assert (
        client.post(f"/v1/supervision/{order['id']}/reply", json={"reply": "已处理"}, headers=town_b).status_code == 404
    )
    assert (
        client.post(f"/v1/supervision/{order['id']}/reply", json={"reply": "x"}, headers=supervisor).status_code == 403
    )
    assert client.post(f"/v1/supervision/{order['id']}/reply", json={"reply": ""}, headers=town_a).status_code == 422
    replied = client.post(f"/v1/supervision/{order['id']}/reply", json={"reply": "已安排今日处理"}, headers=town_a)
    assert replied.status_code == 200 and replied.json()["replied_by"] == "disp-a" and not replied.json()["overdue"]
    again = client.post(f"/v1/supervision/{order['id']}/reply", json={"reply": "已安排今日处理"}, headers=town_a)
    assert again.status_code == 200 and again.json()["replied_at"] == replied.json()["replied_at"]
    assert (
        client.post(f"/v1/supervision/{order['id']}/reply", json={"reply": "改口"}, headers=town_a).status_code == 409
    )
    assert client.get(f"/v1/events/{in_a['id']}", headers=town_a).json()["supervised"] is False
    log = client.get(f"/v1/events/{in_a['id']}/log", headers=town_a).json()["entries"]
    steps = [(e["action"], e["actor"], e["details"].get("order_id")) for e in log if e["action"] != "report"]
    assert steps == [("supervise", "supervisor-user", order["id"]), ("supervision_reply", "disp-a", order["id"])]

    # A unit's overdue work: one order per overdue open event of its subtree, none twice.
    with empty_db.begin() as conn:
        conn.execute(text("UPDATE events SET reported_at = now() - interval '3 hours', "
                          "accept_due_at = now() - interval '1 minute' WHERE id = :id"), {"id": in_b["id"]})  # fmt: skip
    unit = {"unit": TOWN_B, "instruction": "乙镇超期事件限时办结", "reply_hours": 4}
    issued = client.post("/v1/supervision", json=unit, headers=supervisor)
    assert issued.status_code == 201, issued.text
    assert [o["event_id"] for o in issued.json()["orders"]] == [in_b["id"]]
    unit_order = issued.json()["orders"][0]
    retried = client.post("/v1/supervision", json=unit, headers=supervisor).json()
    assert retried["orders"] == [] and retried["already_waiting"] == [unit_order["id"]]
    assert client.post("/v1/supervision", json={**unit, "unit": "320682999000"}, headers=supervisor).status_code == 422
    assert client.post("/v1/supervision", json={**unit, "unit": TOWN_A}, headers=supervisor).json()["orders"] == []

    # Late without a reply: two sweeps at once escalate the event exactly once.
    with empty_db.begin() as conn:
        conn.execute(text("UPDATE supervision_orders SET reply_due_at = now() - interval '1 minute' WHERE id = :id"),
                     {"id": unit_order["id"]})  # fmt: skip
    now = datetime.now(UTC)
    assert sorted(_sweep_twice_at_once(empty_db, now), key=len) == [[], [unit_order["id"]]]
    with transaction(empty_db) as session:
        assert sweep_supervision(session, now + timedelta(minutes=1)) == []
    after = client.get(f"/v1/events/{in_b['id']}", headers=town_b).json()
    assert (after["escalation_level"], after["escalation_count"], after["supervised"]) == ("community", 1, True)
    escalations = [e for e in client.get(f"/v1/events/{in_b['id']}/log", headers=town_b).json()["entries"]
                   if e["action"] == "escalate"]  # fmt: skip
    assert len(escalations) == 1 and escalations[0]["actor"] == "supervision-sweep"
    assert escalations[0]["details"]["order_id"] == unit_order["id"]
    late = client.get("/v1/supervision", params={"waiting": "true"}, headers=town_b).json()["items"]
    assert [(o["id"], o["overdue"], o["escalated_to"]) for o in late] == [(unit_order["id"], True, "community")]

    # Orders count in performance and ranking: one answered on time, one overdue.
    perf = client.get("/v1/stats/performance", params={"by": "town"}, headers=supervisor).json()["rows"]
    figures = {r["key"]: (r["supervision_orders"], r["supervision_on_time"], r["supervision_overdue"]) for r in perf}
    assert figures == {TOWN_A: (1, 1, 0), TOWN_B: (1, 0, 1)}
    month = datetime.now(ZoneInfo(LOCAL_TZ)).strftime("%Y-%m")
    ranking = client.get("/v1/stats/ranking", params={"month": month, "level": "town"}, headers=supervisor).json()
    components = {r["code"]: r["components"]["supervision_overdue"] for r in ranking["rows"]}
    assert components == {TOWN_A: 0.0, TOWN_B: 1.0} and ranking["supervision_penalty"] == 10.0


def test_the_owner_answers_an_order_and_after_an_escalation_the_new_owner_does(client: TestClient,
                                                                               empty_db: Engine):  # fmt: skip
    supervisor = sign_in(client, empty_db, Role.supervisor)
    admin = sign_in(client, empty_db, Role.admin)
    community = sign_in(client, empty_db, Role.dispatcher, "disp-community", region_code=COMMUNITY_A)
    town = sign_in(client, empty_db, Role.dispatcher, "disp-town", region_code=TOWN_A)
    event = _report(client, community, 1)
    for _ in range(2):  # grid → community → town
        answer = client.post(f"/v1/events/{event['id']}/transitions", headers=admin,
                             json={"action": "escalate", "expected_version": event["row_version"], "note": "需协调"})
        assert answer.status_code == 200, answer.text
        event = answer.json()
    assert (event["owner_kind"], event["owner_code"]) == ("unit", TOWN_A)
    order = _order(client, supervisor, event["id"], 201, instruction="请镇街牵头处置", reply_hours=4)
    # The community still reads the event and its order, but no longer holds it: not its reply.
    assert client.get(f"/v1/events/{event['id']}", headers=community).status_code == 200
    refused = client.post(f"/v1/supervision/{order['id']}/reply", json={"reply": "社区已处理"}, headers=community)
    assert refused.status_code == 403, refused.text
    replied = client.post(f"/v1/supervision/{order['id']}/reply", json={"reply": "镇街已牵头"}, headers=town)
    assert replied.status_code == 200 and replied.json()["replied_by"] == "disp-town"
