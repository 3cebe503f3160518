"""The issue's "done means": an Open311 report appears routed, walks to ``evaluated`` with the right roles,
its log shows every step, and the statistics and ranking move accordingly."""

from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from etl.reference import load_reference_data
from geoservice.app import create_app
from geoservice.infra.database import transaction
from geoservice.open311.clients import add_client
from layers.models import Role
from tests.etl.tiny_city import EAST, WEST, X0, Y0, D
from tests.geoservice.signin import sign_in
from tests.geoservice.test_locate_api import load_tiny_city


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    load_tiny_city(empty_db, at="2026-01-01T00:00:00+08:00")
    with transaction(empty_db) as session:
        load_reference_data(session)
    with TestClient(create_app(engine=empty_db)) as client:
        yield client


def test_an_open311_report_walks_the_closed_loop(client: TestClient, empty_db: Engine):
    with transaction(empty_db) as session:
        key = add_client(session, "随手拍")
    dispatcher = sign_in(client, empty_db, Role.dispatcher, "dispatcher")
    supervisor = sign_in(client, empty_db, Role.supervisor, "supervisor")
    month = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")

    def stats() -> tuple[dict, dict, dict]:
        counts = client.get("/v1/stats/counts", params={"by": "status"}, headers=supervisor).json()
        perf = client.get("/v1/stats/performance", headers=supervisor).json()["rows"][0]
        ranking = client.get("/v1/stats/ranking", params={"month": month, "level": "community"},
                             headers=supervisor).json()  # fmt: skip
        return {r["key"]: r["events"] for r in counts["rows"]}, perf, {r["code"]: r for r in ranking["rows"]}

    before_counts, before_perf, before_rank = stats()
    assert before_counts == {} and before_perf["handled"] == 0
    assert before_rank[WEST]["events"] == before_rank[EAST]["events"] == 0

    form = {"api_key": key, "service_code": "city_management.garbage", "lat": Y0 + 0.5 * D, "long": X0 + 1.5 * D,
            "description": "小区门口垃圾堆积"}  # fmt: skip
    posted = client.post("/open311/v2/requests.json", data=form)
    assert posted.status_code == 201, posted.text
    event_id = int(posted.json()[0]["service_request_id"])

    queue = client.get("/v1/events", params={"status": "reported"}, headers=dispatcher).json()["items"]
    [event] = [e for e in queue if e["id"] == event_id]
    assert event["grid_code"] == WEST + "002" and event["community_code"] == WEST and event["department_code"]
    department = event["department_code"]
    handler = sign_in(client, empty_db, Role.handler, "handler", department_code=department)
    assert client.get("/v1/stats/counts", params={"by": "status"}, headers=supervisor).json()["rows"] == [
        {"key": "reported", "name": None, "events": 1}]

    version = event["row_version"]
    walk = [
        (dispatcher, {"action": "accept"}, "accepted"),
        (dispatcher, {"action": "dispatch", "handler_username": "handler"}, "dispatched"),
        (handler, {"action": "start"}, "handling"),
        (handler, {"action": "feedback", "note": "已清运"}, "handled"),
        (dispatcher, {"action": "verify"}, "verified"),
        (dispatcher, {"action": "archive"}, "archived"),
        (dispatcher, {"action": "evaluate", "satisfaction": 5, "comment": "很及时"}, "evaluated"),
    ]
    for auth, step, status in walk:
        # The wrong role is refused before anything changes.
        wrong = handler if auth is dispatcher else dispatcher
        if step["action"] not in ("accept",):
            refused = client.post(f"/v1/events/{event_id}/transitions", json={**step, "expected_version": version},
                                  headers=wrong)  # fmt: skip
            assert refused.status_code in (403, 404, 409), (step, refused.text)
        response = client.post(f"/v1/events/{event_id}/transitions", json={**step, "expected_version": version},
                               headers=auth)  # fmt: skip
        assert response.status_code == 200, (step, response.text)
        assert response.json()["status"] == status
        version = response.json()["row_version"]

    log = client.get(f"/v1/events/{event_id}/log", headers=supervisor).json()["entries"]
    assert [e["action"] for e in log] == ["report", "accept", "dispatch", "start", "feedback", "verify", "archive",
                                          "evaluate"]  # fmt: skip
    assert [e["to_status"] for e in log][-1] == "evaluated" and log[0]["actor"] == "open311:随手拍"
    assert {e["actor"] for e in log[1:]} == {"dispatcher", "handler"}

    [public_view] = client.get(f"/open311/v2/requests/{event_id}.json").json()
    assert public_view["status"] == "closed" and "evaluated" in public_view["status_notes"]

    after_counts, after_perf, after_rank = stats()
    assert after_counts == {"evaluated": 1}
    assert after_perf["handled"] == 1 and after_perf["on_time_rate"] == 1.0 and after_perf["mean_satisfaction"] == 5
    assert after_perf["reopen_rate"] == 0.0 and after_perf["mean_handling_h"] >= 0
    assert after_rank[WEST]["events"] == 1 and after_rank[WEST]["on_time_rate"] == 1.0
    assert after_rank[WEST]["mean_satisfaction"] == 5 and after_rank[EAST]["events"] == 0
