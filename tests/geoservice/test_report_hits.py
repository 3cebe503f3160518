"""``POST /v1/events`` answered before FastAPI's routing (``api.report_hits``) answers as the route does."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geoservice.app import create_app
from geoservice.auth.policy import Allow
from geoservice.settings import OperationsSettings
from layers.models import Role
from tests.geoservice.events_city import AUTH, COMMUNITY_A, TOWN_A, centre, events_city_client, load_events_city
from tests.geoservice.signin import sign_in

# What differs between two reports of the same thing: which they are, their times (every ``…_at``),
# and that the second finds the first nearby (the receipt's possible duplicates).
OWN = {"id", "idempotency_key", "possible_duplicates", "follow_token", "follow_url"}


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    with events_city_client(empty_db) as client:
        yield client


@pytest.fixture
def routed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths whose role policy ran: a request answered before routing never reaches it."""
    seen: list[str] = []
    original = Allow.__call__

    @functools.wraps(original)  # FastAPI reads the policy's parameters from its signature
    async def counting(self: Allow, request, token):  # noqa: ANN001, ANN202
        seen.append(request.url.path)
        return await original(self, request, token)

    monkeypatch.setattr(Allow, "__call__", counting)
    return seen


def test_a_report_before_routing_gets_the_routes_answer(client: TestClient, empty_db: Engine, routed: list[str]):
    lon, lat = centre(0)
    body = {"lon": lon, "lat": lat, "category": "city_management.garbage", "description": "垃圾乱堆在路口",
            "reporter_name": "张三丰", "reporter_phone": "13812345678"}  # fmt: skip
    people = {
        "dispatcher": sign_in(client, empty_db, Role.dispatcher, region_code=TOWN_A),
        "grid_worker": sign_in(client, empty_db, Role.grid_worker, region_code=COMMUNITY_A),
        "public": sign_in(client, empty_db, Role.public, "citizen"),
    }
    for who, auth in [*people.items(), ("anonymous", {})]:
        client.get("/v1/auth/me", headers=auth)  # this process now knows the caller
        routed.clear()
        fast = client.post("/v1/events", json={**body, "idempotency_key": f"{who}-1"}, headers=auth)
        assert routed == [], who  # answered before routing
        again = client.post("/v1/events", json={**body, "idempotency_key": f"{who}-1"}, headers=auth)
        # The same report through the route: a key in the header is the route's to reconcile.
        slow = client.post("/v1/events", json=body, headers={**auth, "Idempotency-Key": f"{who}-2"})
        assert routed == ["/v1/events"], who
        assert (fast.status_code, again.status_code, slow.status_code) == (201, 200, 201), (who, fast.text)
        assert again.json()["id"] == fast.json()["id"]
        assert fast.headers["location"] == f"/v1/events/{fast.json()['id']}"
        assert fast.headers["content-type"] == slow.headers["content-type"] == "application/json"
        a, b = fast.json(), slow.json()
        assert a.keys() == b.keys(), who
        same = {k for k in a if k not in OWN and not k.endswith("_at")}
        assert {k: a[k] for k in same} == {k: b[k] for k in same}, who
        assert a["id"] in {d["id"] for d in b["possible_duplicates"]}  # the route's receipt names the first
        assert ("follow_token" in a) == ("follow_token" in b) == (who == "anonymous")
    with empty_db.connect() as conn:
        stored = conn.execute(text("SELECT count(*), count(*) FILTER (WHERE grid_code IS NOT NULL) FROM events")).one()
    assert tuple(stored) == (8, 8)


@pytest.mark.parametrize(
    ("case", "title", "by_route"),
    [
        ({"category": "city_management.unicorns"}, "Unknown category", False),  # refused by the intake
        ({"crs": "mars2000"}, "Unknown coordinate reference system", False),
        ({"lon": "far east"}, "Invalid request", True),  # refused by the model: the route's validation says why
    ],
)
def test_a_refused_report_gets_the_routes_problem_and_nothing_is_stored(
    client: TestClient, empty_db: Engine, routed: list[str], case: dict, title: str, by_route: bool
):
    auth = sign_in(client, empty_db, Role.dispatcher, region_code=TOWN_A)
    client.get("/v1/auth/me", headers=auth)
    lon, lat = centre(0)
    body = {"lon": lon, "lat": lat, "category": "city_management.garbage", **case}
    routed.clear()
    answer = client.post("/v1/events", json=body, headers=auth)
    assert routed == (["/v1/events"] if by_route else [])
    through_route = client.post("/v1/events", json=body, headers={**auth, "Idempotency-Key": "via-route"})
    assert answer.status_code == through_route.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json() == through_route.json() and answer.json()["title"] == title  # the same words
    with empty_db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 0


def test_a_refused_public_report_is_charged_once(empty_db: Engine):
    """The public's rate limit counts a refused report once, whichever path refused it."""
    load_events_city(empty_db)
    app = create_app(engine=empty_db, auth_settings=AUTH, operations=OperationsSettings(public_rate="2/minute"))
    with TestClient(app) as client:
        lon, lat = centre(0)
        body = {"lon": lon, "lat": lat, "category": "city_management.unicorns"}  # refused by the intake
        not_a_number = {**body, "lon": "far east"}  # refused by the model, so by the route
        statuses = [client.post("/v1/events", json=b).status_code for b in (body, not_a_number, body)]
    assert statuses == [422, 422, 429]


def test_what_the_route_must_decide_goes_to_it(client: TestClient, empty_db: Engine):
    """A token nobody knows, a body that is not JSON, a query string: the route's answers, nothing stored."""
    lon, lat = centre(0)
    body = {"lon": lon, "lat": lat, "category": "city_management.garbage"}
    unknown = client.post("/v1/events", json=body, headers={"Authorization": "Bearer nonsense"})
    not_json = client.post("/v1/events", content=b"lon=1", headers={"Content-Type": "text/plain"})
    queried = client.post("/v1/events?x=1", json=body)
    assert [r.status_code for r in (unknown, not_json, queried)] == [401, 422, 422]
    assert all(r.headers["content-type"] == "application/problem+json" for r in (unknown, not_json, queried))
    with empty_db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 0
