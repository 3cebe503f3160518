"""The one-map's page and its own figures through the real app: offline assets, counts per grid, heat, labels."""

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geoservice.infra.database import transaction
from layers.models import Role
from tests.geoservice import events_city
from tests.geoservice.events_city import COMMUNITY_A, COMMUNITY_B, GRIDS, TOWN_A, TOWN_B, centre
from tests.geoservice.signin import sign_in
from tests.tiles.helpers import tiles_client


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    events_city.load_events_city(empty_db)
    with tiles_client(empty_db) as client:
        yield client


@pytest.fixture
def admin(client: TestClient, empty_db: Engine) -> dict[str, str]:
    return sign_in(client, empty_db, Role.admin)


def report(client: TestClient, auth: dict, grid: int) -> int:
    lon, lat = centre(grid)
    body = {"lon": lon, "lat": lat, "category": "city_management.garbage", "description": "垃圾"}
    response = client.post("/v1/events", json=body, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_the_page_is_served_to_anyone_and_loads_nothing_from_elsewhere(client: TestClient):
    response = client.get("/map")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    urls = re.findall(r'<(?:script|link)[^>]*(?:src|href)="([^"]+)"', html)
    assert urls and all(u.startswith("/static/") or u.startswith("data:") for u in urls), urls
    for url in {u for u in urls if u.startswith("/static/")}:
        assert client.get(url).status_code == 200, url
    assert "onemap-config" in html and "onemap.js" in html
    assert "320682" not in html  # no data in the page itself: it comes after sign-in, in the user's scope


def test_open_and_overdue_events_per_grid(client: TestClient, admin: dict, empty_db: Engine):
    ids = [report(client, admin, grid) for grid in (0, 0, 1, 3)]
    with transaction(empty_db) as session:  # the first report's accept deadline has passed
        session.execute(
            text("UPDATE events SET accept_due_at = now() - interval '1 hour' WHERE id = :i"), {"i": ids[0]}
        )
    body = client.get("/map/grid-measures", headers=admin).json()
    assert body["grids"] == {GRIDS[0]: [2, 1], GRIDS[1]: [1, 0], GRIDS[3]: [1, 0]}
    assert body["max_open"] == 2 and body["max_overdue"] == 1
    dispatcher = sign_in(client, empty_db, Role.dispatcher, "disp-b", region_code=TOWN_B)
    assert client.get("/map/grid-measures", headers=dispatcher).json()["grids"] == {GRIDS[3]: [1, 0]}


def test_heat_counts_every_event_in_scope_once(client: TestClient, admin: dict, empty_db: Engine):
    for grid in (0, 0, 2, 3, 3, 3):
        report(client, admin, grid)
    body = client.get("/map/heat", headers=admin).json()
    assert body["events"] == 6 and body["cell_m"] == 200
    assert max(p[2] for p in body["points"]) == 1.0  # the busiest cell (grid 3's centre, 3 events)
    assert client.get("/map/heat", params={"status": "archived"}, headers=admin).json()["events"] == 0
    dispatcher = sign_in(client, empty_db, Role.dispatcher, "disp-a", region_code=TOWN_A)
    assert client.get("/map/heat", headers=dispatcher).json()["events"] == 2
    bad = client.get("/map/heat", params={"status": "lost"}, headers=admin)
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"


def test_labels_name_the_towns_and_communities_in_scope(client: TestClient, admin: dict, empty_db: Engine):
    labels = client.get("/map/labels", headers=admin).json()["labels"]
    assert {(label["code"], label["level"]) for label in labels} == {
        (TOWN_A, "town"), (TOWN_B, "town"), (COMMUNITY_A, "community"), (COMMUNITY_B, "community")}  # fmt: skip
    dispatcher = sign_in(client, empty_db, Role.dispatcher, "disp-a", region_code=TOWN_A)
    assert {label["code"] for label in client.get("/map/labels", headers=dispatcher).json()["labels"]} == {
        TOWN_A, COMMUNITY_A}  # fmt: skip


def test_the_figures_need_a_staff_token(client: TestClient):
    for path in ("/map/grid-measures", "/map/heat", "/map/labels"):
        assert client.get(path).status_code == 401


def test_names_come_from_the_citys_data_and_the_servers_one_table(client: TestClient, empty_db: Engine):
    with transaction(empty_db) as session:  # a city renames a department: the page reads the new name
        session.execute(text("UPDATE departments SET name = '城管执法局（新）' WHERE code = (SELECT min(code) FROM departments)"))
    names = client.get("/map/names").json()  # reference data only: open to the citizens' page too
    assert "城管执法局（新）" in {d["name"] for d in names["departments"].values()}
    with empty_db.connect() as conn:
        categories = dict(conn.execute(text("SELECT code, name FROM categories")).all())
    assert {code: c["name"] for code, c in names["categories"].items()} == categories
    assert names["statuses"]["handling"] == "处置中" and names["warnings"]["red"] == "红色预警"
    assert names["actions"]["dispatch"] == "派遣" and names["roles"]["dispatcher"] == "指挥调度"
    assert names["time_zone"] == "Asia/Shanghai"


def test_each_user_lands_on_their_own_area(client: TestClient, admin: dict, empty_db: Engine):
    city = client.get("/map/area", headers=admin).json()
    assert city["scoped"] is False and city["code"] is None
    dispatcher = sign_in(client, empty_db, Role.dispatcher, "disp-a", region_code=TOWN_A)
    town = client.get("/map/area", headers=dispatcher).json()
    assert town["scoped"] and town["code"] == TOWN_A and town["name"]
    w, s, e, n = town["bounds"]
    cw, cs, ce, cn = city["bounds"]
    assert cw <= w < e <= ce and cs <= s < n <= cn and (e - w) * (n - s) < (ce - cw) * (cn - cs)
    with empty_db.connect() as conn:
        extent = conn.execute(text("SELECT ST_XMin(x), ST_YMin(x), ST_XMax(x), ST_YMax(x) FROM (SELECT "
                                   "ST_Extent(geom)::geometry x FROM grids WHERE code LIKE :p) q"),
                              {"p": TOWN_A[:9] + "%"}).one()  # fmt: skip
    assert town["bounds"] == [round(v, 6) for v in extent]
    assert client.get("/map/area").status_code == 401


def test_warning_counts_follow_the_filters_and_the_scope(client: TestClient, admin: dict, empty_db: Engine):
    ids = [report(client, admin, grid) for grid in (0, 0, 3)]
    with transaction(empty_db) as session:  # the first report's accept deadline has passed: red
        session.execute(text("UPDATE events SET accept_due_at = now() - interval '1 hour' WHERE id = :i"),
                        {"i": ids[0]})  # fmt: skip
    counts = client.get("/map/warning-counts", headers=admin).json()["counts"]
    assert counts["red"] == 1 and counts["total"] == 3
    assert client.get("/map/warning-counts", params={"region": TOWN_B}, headers=admin).json()["counts"]["total"] == 1
    assert client.get("/map/warning-counts", params={"category": "public_order"},
                      headers=admin).json()["counts"]["total"] == 0  # fmt: skip
    dispatcher = sign_in(client, empty_db, Role.dispatcher, "disp-a", region_code=TOWN_A)
    mine = client.get("/map/warning-counts", headers=dispatcher).json()["counts"]
    assert mine["total"] == 2 and mine["red"] == 1
    bad = client.get("/map/warning-counts", params={"status": "lost"}, headers=admin)
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
