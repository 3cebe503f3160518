"""The issue's "done means" on the demo city: split a grid, see validation pass and the impact list the
events that move, publish, watch ``/v1/locate`` answer from the new version, roll back, see the old answer.

The demo is copied for this module into a database of its own (``demo_copy``; the shared ``demo_db``
is read-only), and the app runs with its router registry, as a server does.
"""

import time
from collections.abc import Iterator

import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geoservice.app import create_app
from geoservice.settings import RoutingSettings


@pytest.fixture(scope="module")
def client(demo_copy: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine=demo_copy, routing=RoutingSettings(version_check_s=0.2))) as client:
        yield client


def sign_in_demo(client: TestClient, username: str, password: str) -> dict[str, str]:
    response = client.post("/v1/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def event_near_a_grid_edge(engine: Engine) -> tuple[int, float, float, str, tuple[float, float, float, float]]:
    """An event a publish would re-route, lying near the north or south end of its grid."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT e.id, ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat, g.code, ST_XMin(g.geom) AS x0, "
                "ST_YMin(g.geom) AS y0, ST_XMax(g.geom) AS x1, ST_YMax(g.geom) AS y1 "
                "FROM events e JOIN grids g ON g.code = e.grid_code AND g.version_id = e.boundary_version_id "
                "WHERE e.status IN ('reported', 'accepted', 'returned') "
                "ORDER BY least(ST_Y(e.geom) - ST_YMin(g.geom), ST_YMax(g.geom) - ST_Y(e.geom)) "
                "/ (ST_YMax(g.geom) - ST_YMin(g.geom)), e.id LIMIT 1"
            )
        ).one()
    return row.id, row.lon, row.lat, row.code, (row.x0, row.y0, row.x1, row.y1)


def open_events(engine: Engine, code: str) -> list[tuple[int, str, float, float]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, status, ST_X(geom), ST_Y(geom) FROM events WHERE grid_code = :c AND status IN "
                "('reported', 'accepted', 'returned', 'dispatched', 'handling', 'handled', 'verified', 'reopened')"
            ),
            {"c": code},
        ).all()
    return [tuple(r) for r in rows]


def locate(client: TestClient, auth: dict[str, str], lon: float, lat: float) -> tuple[int, str]:
    body = client.get("/v1/locate", params={"lon": lon, "lat": lat}, headers=auth).json()
    return body["version"]["id"], body["grid"]["code"]


def wait_for(client: TestClient, auth: dict[str, str], lon: float, lat: float, version_id: int) -> tuple[int, str]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        answer = locate(client, auth, lon, lat)
        if answer[0] == version_id:
            return answer
        time.sleep(0.05)
    raise AssertionError(f"/v1/locate never answered from version {version_id}")


def test_split_validate_impact_publish_rollback(client: TestClient, demo_copy: Engine):
    planner = sign_in_demo(client, "planner", "planner-demo-2026")
    dispatcher = sign_in_demo(client, "dispatcher", "dispatcher-demo-2026")
    event_id, lon, lat, code, (x0, y0, x1, y1) = event_near_a_grid_edge(demo_copy)

    draft = client.post("/v1/boundary-versions", json={"name": "demo split"}, headers=planner).json()
    grids = client.get(f"/v1/boundary-versions/{draft['id']}/grids", headers=planner).json()["features"]
    grid = shapely.geometry.shape(next(f for f in grids if f["id"] == code)["geometry"])
    # Cut off the end of the grid the event lies in: that small piece becomes a new grid.
    cut = lat - 0.05 * (y1 - y0) if lat > (y0 + y1) / 2 else lat + 0.05 * (y1 - y0)
    line = shapely.LineString([(x0 - 0.001, cut), (x1 + 0.001, cut)])
    edited = client.post(f"/v1/boundary-versions/{draft['id']}/edits", headers=planner,
                         json={"op": "split", "grid": code, "line": shapely.geometry.mapping(line)})  # fmt: skip
    assert edited.status_code == 200, edited.text
    new_codes = edited.json()["added"]
    assert new_codes and all(c[:12] == code[:12] for c in new_codes)

    validation = client.get(f"/v1/boundary-versions/{draft['id']}/validation", headers=dispatcher).json()
    assert validation["valid"] is True, validation["errors"][:3]

    # The open events that move are exactly those now in a new piece (checked here with shapely).
    pieces = client.get(f"/v1/boundary-versions/{draft['id']}/grids", headers=planner).json()["features"]
    shapes = {f["id"]: shapely.geometry.shape(f["geometry"]) for f in pieces if f["id"] in (code, *new_codes)}
    assert shapely.union_all(list(shapes.values())).symmetric_difference(grid).area < 1e-12
    expected = {}
    for i, status, x, y in open_events(demo_copy, code):
        point = shapely.Point(x, y)
        owner = min(c for c, piece in shapes.items() if piece.covers(point))
        if owner != code:
            expected[i] = (owner, "reroute" if status in ("reported", "accepted", "returned") else "keep")
    assert event_id in expected
    new_code = expected[event_id][0]
    impact = client.get(f"/v1/boundary-versions/{draft['id']}/impact", headers=dispatcher).json()
    moving = {e["id"]: (e["to"]["grid_code"], e["action"]) for e in impact["events"] if e["from"]["grid_code"] == code}
    assert moving == expected
    assert sorted(g["code"] for g in impact["grids"]["added"]) == sorted(new_codes)
    assert code in [g["code"] for g in impact["grids"]["changed"]]

    published = client.post(f"/v1/boundary-versions/{draft['id']}/publish", json={}, headers=planner)
    assert published.status_code == 200, published.text
    rerouted = [i for i, (_, action) in expected.items() if action == "reroute"]
    assert sorted(i for i in published.json()["rerouted"] if i in expected) == sorted(rerouted)
    assert wait_for(client, planner, lon, lat, draft["id"]) == (draft["id"], new_code)

    rolled = client.post("/v1/boundary-versions/1/rollback", json={"name": "demo again"}, headers=planner)
    assert rolled.status_code == 200, rolled.text
    again = rolled.json()["version"]["id"]
    assert wait_for(client, planner, lon, lat, again) == (again, code)
    with demo_copy.connect() as conn:
        grid_now, logged = conn.execute(
            text("SELECT e.grid_code, (SELECT count(*) FROM event_log l WHERE l.event_id = e.id "
                 "AND l.action = 'reroute') FROM events e WHERE e.id = :i"),
            {"i": event_id},
        ).one()  # fmt: skip
    assert (grid_now, logged) == (code, 2)  # there and back, each step in the event log
