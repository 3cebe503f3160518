"""Patrols (issue 18): start, idempotent batches of fixes, stop; the track as a line; weekly coverage per grid."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Transformer
from shapely import LineString, Point, box, unary_union
from sqlalchemy import Engine

from geoservice.app import create_app
from geoservice.infra.database import transaction
from geoservice.settings import RoutingSettings
from layers.crs import city_metric_epsg
from layers.models import Role
from tests.etl.tiny_city import X0, Y0, D
from tests.geoservice.events_city import AUTH, COMMUNITY_A, EVENTS, GRIDS, TOWN_A, TOWN_B, load_events_city
from tests.geoservice.signin import sign_in

COVER_M = 30.0


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    load_events_city(empty_db)
    app = create_app(engine=empty_db, auth_settings=AUTH, routing=RoutingSettings(version_check_s=0.2))
    app.state.event_settings = EVENTS
    with TestClient(app) as client:
        yield client


@pytest.fixture
def people(client: TestClient, empty_db: Engine) -> dict[str, dict[str, str]]:
    return {
        "worker": sign_in(client, empty_db, Role.grid_worker, "worker-a", region_code=COMMUNITY_A),
        "worker_2": sign_in(client, empty_db, Role.grid_worker, "worker-a2", region_code=COMMUNITY_A),
        "police": sign_in(client, empty_db, Role.handler, "patrol-1", department_code="police"),
        "dispatcher": sign_in(client, empty_db, Role.dispatcher, region_code=TOWN_A),
        "dispatcher_b": sign_in(client, empty_db, Role.dispatcher, "disp-b", region_code=TOWN_B),
        "supervisor": sign_in(client, empty_db, Role.supervisor),
        "planner": sign_in(client, empty_db, Role.planner),
        "urban": sign_in(client, empty_db, Role.handler, "urban-1", department_code="urban_management"),
    }


def fixes(points: list[tuple[float, float]], first: datetime, step_s: float = 10.0, **extra) -> list[dict]:
    return [{"lon": x, "lat": y, "at": (first + timedelta(seconds=k * step_s)).isoformat(), **extra}
            for k, (x, y) in enumerate(points)]  # fmt: skip


def start(client: TestClient, auth: dict, **body) -> dict:
    response = client.post("/v1/patrols", json=body, headers=auth)
    assert response.status_code in (200, 201), response.text
    return response.json()


def metric(engine: Engine):
    with transaction(engine) as session:
        epsg = city_metric_epsg(session, None)
    to_metric = Transformer.from_crs(4326, epsg, always_xy=True)
    return lambda xy: np.column_stack(to_metric.transform(xy[:, 0], xy[:, 1]))


def transform(fn, geometry):
    return shapely.transform(geometry, fn)


def expected_share(engine: Engine, grid: int, pieces: list) -> float:
    """The same measure computed apart, with shapely in the metric CRS: the check of the SQL."""
    to_metric = metric(engine)
    cell = transform(to_metric, box(X0 + grid * D, Y0, X0 + (grid + 1) * D, Y0 + D))
    swath = unary_union([transform(to_metric, g).buffer(COVER_M) for g in pieces])
    return cell.intersection(swath).area / cell.area


def iso_week(instant: datetime) -> str:
    year, number, _ = instant.astimezone(ZoneInfo("Asia/Shanghai")).isocalendar()
    return f"{year}-W{number:02d}"


def coverage(client: TestClient, auth: dict, **params) -> dict[str, float]:
    response = client.get("/v1/stats/patrol-coverage", params=params, headers=auth)
    assert response.status_code == 200, response.text
    return {g["grid_code"]: g["share"] for g in response.json()["grids"]}


def test_a_patrol_walks_sends_its_fixes_twice_and_stops(client: TestClient, people: dict, empty_db: Engine):
    now = datetime.now(UTC)
    patrol = start(client, people["worker"], idempotency_key="phone-1:patrol-7")
    assert patrol["status"] == "open" and patrol["kind"] == "grid_worker" and patrol["region_code"] == COMMUNITY_A
    again = client.post("/v1/patrols", json={"idempotency_key": "phone-1:patrol-7"}, headers=people["worker"])
    assert again.status_code == 200 and again.json()["id"] == patrol["id"]
    second = client.post("/v1/patrols", json={}, headers=people["worker"])
    assert second.status_code == 409 and second.json()["open_patrol"] == patrol["id"]

    x = X0 + 0.5 * D
    walk = [(x, Y0 + k * D / 10) for k in range(11)]  # south to north through grid 0
    url = f"/v1/patrols/{patrol['id']}/points"
    batch = {"fixes": fixes(walk[:6], now)}
    first = client.post(url, json=batch, headers=people["worker"]).json()
    assert (first["stored"], first["duplicates"], first["ignored"]) == (6, 0, 0)
    overlap = {"fixes": fixes(walk, now) + fixes([(x, Y0)], now + timedelta(days=1))
               + fixes([(x, Y0)], now + timedelta(seconds=5), accuracy_m=500)}  # fmt: skip
    second_batch = client.post(url, json=overlap, headers=people["worker"]).json()
    assert (second_batch["stored"], second_batch["duplicates"], second_batch["ignored"]) == (5, 6, 2)
    track = second_batch["patrol"]["track"]
    assert track["type"] == "LineString"
    assert track["coordinates"] == [pytest.approx(list(p), abs=1e-9) for p in walk]  # in time order, each once
    walked = transform(metric(empty_db), LineString(walk)).length
    assert second_batch["patrol"]["length_m"] == pytest.approx(walked, abs=0.1)
    assert second_batch["patrol"]["point_count"] == 11

    assert client.post(url, json=batch, headers=people["worker_2"]).status_code == 404  # not theirs
    stop = f"/v1/patrols/{patrol['id']}/stop"
    stopped = client.post(stop, headers=people["worker"]).json()
    assert stopped["status"] == "stopped"
    assert client.post(stop, headers=people["worker"]).json() == stopped  # a retried stop
    late = client.post(url, json={"fixes": fixes(walk[:1], now + timedelta(seconds=200))}, headers=people["worker"])
    assert late.status_code == 409 and late.json()["title"] == "Patrol stopped"

    read = f"/v1/patrols/{patrol['id']}"
    for who in ("worker", "dispatcher", "supervisor"):
        assert client.get(read, headers=people[who]).json()["track"] == track, who
    for who in ("dispatcher_b", "worker_2", "police"):
        assert client.get(read, headers=people[who]).status_code == 404, who
    assert client.get(read, headers=people["planner"]).status_code == 403


def test_only_field_forces_patrol_and_bad_fixes_are_refused(client: TestClient, people: dict):
    assert client.post("/v1/patrols", json={}, headers=people["urban"]).status_code == 403  # not the patrol department
    assert client.post("/v1/patrols", json={}, headers=people["dispatcher"]).status_code == 403
    patrol = start(client, people["police"])
    assert patrol["kind"] == "patrol"
    url = f"/v1/patrols/{patrol['id']}/points"
    now = datetime.now(UTC).isoformat()
    for body, status in [
        ({"fixes": [{"lon": 500, "lat": 32.3, "at": now}]}, 422),
        ({"fixes": [{"lon": 120.5, "lat": 32.3, "at": "2026-12-05T10:00:00"}]}, 422),  # no zone
        ({"fixes": []}, 422),
        ({"crs": "EPSG:99999", "fixes": [{"lon": 120.5, "lat": 32.3, "at": now}]}, 422),
    ]:
        response = client.post(url, json=body, headers=people["police"])
        assert response.status_code == status and response.headers["content-type"] == "application/problem+json"


def test_weekly_coverage_is_the_share_within_30_m_of_the_weeks_tracks(
    client: TestClient, people: dict, empty_db: Engine
):
    now = datetime.now(UTC)
    began = now - timedelta(hours=1)
    patrol = start(client, people["worker"], started_at=began.isoformat())
    x = X0 + 0.5 * D
    walk = [(x, Y0 + k * D / 10) for k in range(11)]
    lonely = [(X0 + 1.3 * D, Y0 + 0.5 * D), (X0 + 1.7 * D, Y0 + 0.5 * D)]  # in grid 1, 20 minutes apart
    body = {"fixes": fixes(walk, began) + fixes(lonely, began + timedelta(minutes=10), step_s=1200)}
    assert client.post(f"/v1/patrols/{patrol['id']}/points", json=body, headers=people["worker"]).status_code == 200

    week = iso_week(began)  # the walk's week in the city's time, even in the hour after Monday 00:00 +08:00
    shares = coverage(client, people["supervisor"], week=week)
    assert set(shares) == set(GRIDS)
    assert shares[GRIDS[0]] == pytest.approx(expected_share(empty_db, 0, [LineString(walk)]), abs=1e-3)
    assert 0.04 < shares[GRIDS[0]] < 0.07  # a 60 m swath across a grid about 950 m wide
    # 20 minutes without a fix: two circles, no line between them
    assert shares[GRIDS[1]] == pytest.approx(expected_share(empty_db, 1, [Point(p) for p in lonely]), abs=1e-4)
    assert shares[GRIDS[2]] == shares[GRIDS[3]] == 0

    assert set(coverage(client, people["dispatcher_b"], week=week)) == set(GRIDS[2:])  # their town only
    assert set(coverage(client, people["worker"], week=week)) == set(GRIDS[:2])
    assert set(coverage(client, people["supervisor"], region=COMMUNITY_A, week=week)) == set(GRIDS[:2])
    week_before = coverage(client, people["supervisor"], week=iso_week(began - timedelta(days=7)))
    assert set(week_before) == set(GRIDS) and all(v == 0 for v in week_before.values())
    this_week = client.get("/v1/stats/patrol-coverage", headers=people["supervisor"]).json()
    assert this_week["week"] == iso_week(datetime.now(UTC))  # no week: the current one, in the city's time
    csv = client.get("/v1/stats/patrol-coverage", params={"format": "csv"}, headers=people["dispatcher"])
    assert csv.text.splitlines()[0].startswith("grid_code,grid_name,community_code,area_m2,covered_m2,share")
    assert client.get("/v1/stats/patrol-coverage", params={"week": "2026-W60"},
                      headers=people["supervisor"]).status_code == 422  # fmt: skip
    assert client.get("/v1/stats/patrol-coverage", headers=people["planner"]).status_code == 403
    assert client.get("/v1/stats/patrol-coverage", headers=people["urban"]).status_code == 403
