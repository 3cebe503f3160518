"""Forces: position throttle and history, staleness, nearest by metric distance, scope, dispatch."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyproj
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from etl.reference import load_reference_data
from geoservice.app import create_app
from geoservice.forces.settings import ForceSettings
from geoservice.infra.database import transaction
from layers.models import Role
from tests.etl.tiny_city import CITY, EAST, WEST, X0, Y0, D
from tests.geoservice.signin import sign_in
from tests.geoservice.test_locate_api import load_tiny_city

GEOD = pyproj.Geod(ellps="WGS84")
EVENT_AT = (X0 + 0.5 * D, Y0 + 0.5 * D)  # in the west village's first grid
SETTINGS = ForceSettings(min_interval_s=10, stale_after_s=600, history_hours=24)


def offset(metres_east: float, metres_north: float = 0.0) -> tuple[float, float]:
    lon, lat, _ = GEOD.fwd(*EVENT_AT, 90, metres_east)
    if metres_north:
        lon, lat, _ = GEOD.fwd(lon, lat, 0, metres_north)
    return lon, lat


def distance(lon: float, lat: float) -> float:
    return GEOD.inv(*EVENT_AT, lon, lat)[2]


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    load_tiny_city(empty_db, at="2026-01-01T00:00:00+08:00")
    with transaction(empty_db) as session:
        load_reference_data(session)
    app = create_app(engine=empty_db)
    app.state.force_settings = SETTINGS
    with TestClient(app) as client:
        yield client


@pytest.fixture
def event(client: TestClient, empty_db: Engine) -> dict:
    dispatcher = sign_in(client, empty_db, Role.dispatcher, "dispatcher")
    body = {"lon": EVENT_AT[0], "lat": EVENT_AT[1], "category": "public_order.fight", "source": "grid_worker",
            "description": "打架斗殴"}  # fmt: skip
    response = client.post("/v1/events", json=body, headers=dispatcher)
    assert response.status_code == 201, response.text
    return {**response.json(), "auth": dispatcher}


def report(client: TestClient, auth: dict, lon: float, lat: float, at: datetime, **extra):
    return client.post("/v1/forces/me/position", json={"lon": lon, "lat": lat, "at": at.isoformat(), **extra},
                       headers=auth)  # fmt: skip


def stored_rows(engine: Engine, username: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM force_positions WHERE username = :u"), {"u": username}).scalar()


def test_positions_are_throttled_but_availability_changes_always_count(client: TestClient, empty_db: Engine):
    auth = sign_in(client, empty_db, Role.grid_worker, "gw", region_code=WEST)
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    first = report(client, auth, *offset(100), t0)
    assert first.status_code == 201 and first.json()["stored"] is True and first.json()["kind"] == "grid_worker"
    soon = report(client, auth, *offset(110), t0 + timedelta(seconds=3))
    assert soon.status_code == 200 and soon.json()["stored"] is False
    assert "throttled" in soon.json()["reason"] and soon.json()["next_stored_after"]
    busy = report(client, auth, *offset(120), t0 + timedelta(seconds=4), available=False)
    assert busy.status_code == 201 and busy.json()["stored"] is True
    later = report(client, auth, *offset(130), t0 + timedelta(seconds=20), available=False)
    assert later.status_code == 201
    older = report(client, auth, *offset(140), t0 + timedelta(seconds=15), available=False)
    assert older.status_code == 200 and older.json()["stored"] is False
    assert stored_rows(empty_db, "gw") == 3


def test_history_keeps_the_last_day(client: TestClient, empty_db: Engine):
    auth = sign_in(client, empty_db, Role.grid_worker, "gw", region_code=WEST)
    with empty_db.begin() as conn:
        conn.execute(text(
            "INSERT INTO force_positions (username, kind, geom, at) VALUES "
            "('gw', 'grid_worker', ST_SetSRID(ST_MakePoint(120.5, 32.3), 4326), now() - interval '30 hours'), "
            "('gw', 'grid_worker', ST_SetSRID(ST_MakePoint(120.5, 32.3), 4326), now() - interval '2 hours')"))
    assert report(client, auth, *offset(10), datetime.now(UTC)).status_code == 201
    assert stored_rows(empty_db, "gw") == 2  # the 30-hour-old fix is gone, the 2-hour-old one kept
    too_old = report(client, auth, *offset(10), datetime.now(UTC) - timedelta(hours=25))
    assert too_old.status_code == 422 and too_old.headers["content-type"] == "application/problem+json"


def test_only_field_forces_report_positions(client: TestClient, empty_db: Engine):
    clerk = sign_in(client, empty_db, Role.handler, "clerk", department_code="urban_management")
    response = report(client, clerk, *offset(10), datetime.now(UTC))
    assert response.status_code == 403 and "patrol" in response.json()["detail"]
    dispatcher = sign_in(client, empty_db, Role.dispatcher, "d2")
    assert report(client, dispatcher, *offset(10), datetime.now(UTC)).status_code == 403
    gw = sign_in(client, empty_db, Role.grid_worker, "gw", region_code=WEST)
    assert report(client, gw, 500.0, 32.3, datetime.now(UTC)).status_code == 422
    assert client.post("/v1/forces/me/position", json={"lon": 1, "lat": 2, "crs": "mars"}, headers=gw).status_code == 422


def test_nearest_forces_by_metric_distance_within_scope(client: TestClient, empty_db: Engine, event: dict):
    now = datetime.now(UTC)
    positions = {
        ("gw-west", Role.grid_worker, WEST): offset(300),
        ("gw-city", Role.grid_worker, CITY): offset(-60, 80),
        ("gw-east", Role.grid_worker, EAST): offset(20),  # closest, but the event is not in their region
        ("patrol-1", Role.handler, None): offset(0, 1500),
        ("patrol-2", Role.handler, None): offset(40),  # stale below
        ("patrol-3", Role.handler, None): offset(500),  # busy below
    }
    for (name, role, region), (lon, lat) in positions.items():
        scope = {"region_code": region} if region else {}
        auth = sign_in(client, empty_db, role, name, **scope)
        at = now - timedelta(minutes=20) if name == "patrol-2" else now - timedelta(seconds=5)
        assert report(client, auth, lon, lat, at, available=name != "patrol-3").status_code == 201
    sign_in(client, empty_db, Role.grid_worker, "gw-silent", region_code=WEST)  # never reported

    body = client.get(f"/v1/events/{event['id']}/nearest-forces", params={"limit": 5}, headers=event["auth"]).json()
    names = [f["username"] for f in body["available"]]
    assert names == ["gw-city", "gw-west", "patrol-1"]
    for force in body["available"]:
        lon, lat = positions[next(k for k in positions if k[0] == force["username"])]
        assert force["distance_m"] == pytest.approx(distance(lon, lat), abs=0.2)
    assert [f["username"] for f in body["busy"]] == ["patrol-3"]
    assert {f["username"]: f["last_seen_at"] is None for f in body["unknown"]} == {"patrol-2": False, "gw-silent": True}
    assert "gw-east" not in str(body)
    two = client.get(f"/v1/events/{event['id']}/nearest-forces", params={"limit": 2}, headers=event["auth"]).json()
    assert [f["username"] for f in two["available"]] == ["gw-city", "gw-west"]


def test_a_dispatcher_outside_the_event_scope_finds_nothing(client: TestClient, empty_db: Engine, event: dict):
    east = sign_in(client, empty_db, Role.dispatcher, "east-dispatcher", region_code=EAST)
    response = client.get(f"/v1/events/{event['id']}/nearest-forces", headers=east)
    assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"


def test_dispatch_to_the_nearest_patrol_goes_through_the_workflow(client: TestClient, empty_db: Engine, event: dict):
    now = datetime.now(UTC)
    patrol = sign_in(client, empty_db, Role.handler, "patrol-1")
    stale = sign_in(client, empty_db, Role.handler, "patrol-2")
    assert report(client, patrol, *offset(200), now - timedelta(seconds=5)).status_code == 201
    assert report(client, stale, *offset(100), now - timedelta(minutes=30)).status_code == 201
    url = f"/v1/events/{event['id']}"
    # Not yet accepted: the workflow refuses the dispatch and says what is allowed.
    early = client.post(f"{url}/nearest-forces/dispatch", json={"username": "patrol-1", "expected_version": 1},
                        headers=event["auth"])  # fmt: skip
    assert early.status_code == 409 and "accept" in str(early.json())
    accepted = client.post(f"{url}/transitions", json={"action": "accept", "expected_version": 1}, headers=event["auth"])
    assert accepted.status_code == 200, accepted.text
    version = accepted.json()["row_version"]
    refused = client.post(f"{url}/nearest-forces/dispatch", json={"username": "patrol-2", "expected_version": version},
                          headers=event["auth"])  # fmt: skip
    assert refused.status_code == 409 and "unknown" in refused.json()["detail"]
    sent = client.post(f"{url}/nearest-forces/dispatch", json={"username": "patrol-1", "expected_version": version},
                       headers=event["auth"])  # fmt: skip
    assert sent.status_code == 200, sent.text
    dispatched = sent.json()["event"]
    assert (dispatched["status"], dispatched["handler_username"], dispatched["department_code"]) == (
        "dispatched", "patrol-1", "police")
    entries = client.get(f"{url}/log", headers=event["auth"]).json()["entries"]
    assert [e["action"] for e in entries][-1] == "dispatch" and "patrol-1" in entries[-1]["note"]
