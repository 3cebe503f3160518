"""Reference data edited after the load: admins change departments, deadlines and rules; routers follow."""

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from layers.models import Role
from tests.geoservice import test_route_explain
from tests.geoservice.signin import sign_in

NEAR = test_route_explain.NEAR
explain_client = test_route_explain.client  # the tiny city with a school, a dispatcher signed in


@pytest.fixture
def admin(explain_client: TestClient, empty_db: Engine) -> dict[str, str]:
    return sign_in(explain_client, empty_db, Role.admin, "admin-li")


def _explain(client: TestClient) -> dict:
    return client.get("/v1/route/explain", params={**NEAR, "category": "public_order.dispute"}).json()


def test_an_admins_new_department_and_rule_route_the_next_event(
    explain_client: TestClient,
    admin: dict[str, str],
    empty_db: Engine,
):
    client = explain_client
    assert _explain(client)["department"] == "police"  # the default school rule
    put = client.put("/v1/reference/departments/school_safety", headers=admin,
                     json={"name": "校园安全办", "kind": "office", "parent_code": "education", "duty_phone": "12345"})  # fmt: skip
    assert put.status_code == 200, put.text
    assert put.json()["parent_code"] == "education"
    rule = client.post(
        "/v1/reference/routing-rules",
        headers=admin,
        json={"category_code": "public_order.dispute", "department_code": "school_safety", "place_type": "school",
              "place_distance_m": 300, "priority": 50, "description": "学校周边纠纷由校园安全办处置"},
    )  # fmt: skip
    assert rule.status_code == 201, rule.text
    deadline = time.monotonic() + 5
    while _explain(client)["department"] != "school_safety" and time.monotonic() < deadline:
        time.sleep(0.05)  # the running router rebuilds on NOTIFY, without a restart
    body = _explain(client)
    assert (body["department"], body["rule_id"]) == ("school_safety", rule.json()["id"])
    changes = client.get("/v1/reference/changes", headers=admin).json()
    assert [(c["actor"], c["table_name"], c["key"], c["action"]) for c in changes] == [
        ("admin-li", "routing_rules", str(rule.json()["id"]), "create"),
        ("admin-li", "departments", "school_safety", "create"),
    ]
    assert changes[0]["before"] is None and changes[0]["after"]["department_code"] == "school_safety"


def test_deadlines_change_with_an_audit_row_of_before_and_after(explain_client: TestClient, admin: dict[str, str]):
    client = explain_client
    body = {"name": "火灾", "parent_code": "public_safety", "accept_hours": 0.25, "handle_hours": 4,
            "small_matter": False, "urgent_accept_hours": 0.1, "urgent_handle_hours": 2}  # fmt: skip
    assert client.put("/v1/reference/categories/public_safety.fire", headers=admin, json=body).status_code == 200
    fire = next(c for c in client.get("/v1/reference/categories").json() if c["code"] == "public_safety.fire")
    assert (fire["accept_hours"], fire["urgent_accept_hours"], fire["urgent_handle_hours"]) == (0.25, 0.1, 2.0)
    change = client.get("/v1/reference/changes", headers=admin).json()[0]
    assert change["action"] == "update" and change["before"]["urgent_accept_hours"] is None
    assert change["after"]["urgent_handle_hours"] == 2.0


def test_only_admins_change_and_bad_changes_write_nothing(
    explain_client: TestClient, admin: dict[str, str], empty_db: Engine
):
    client = explain_client  # signed in as a dispatcher
    refused = client.put("/v1/reference/departments/x", json={"name": "x"})
    assert refused.status_code == 403
    unknown = client.post("/v1/reference/routing-rules", headers=admin,
                          json={"category_code": "public_order", "department_code": "nobody"})  # fmt: skip
    assert unknown.status_code == 422 and "no department with code 'nobody'" in unknown.json()["detail"]
    cycle = client.put("/v1/reference/departments/police", headers=admin,
                       json={"name": "市公安局", "parent_code": "police"})  # fmt: skip
    assert cycle.status_code == 422 and "cycle" in cycle.json()["detail"]
    half = client.put("/v1/reference/categories/public_order", headers=admin,
                      json={"name": "社会治安", "accept_hours": 2, "handle_hours": 72, "urgent_accept_hours": 1})  # fmt: skip
    assert half.status_code == 422
    with empty_db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM reference_changes")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM departments WHERE code IN ('x', 'nobody')")).scalar_one() == 0
