"""OGC API - Features through the real app: QGIS-style requests with OWSLib over HTTP, paging, scope, errors."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from fastapi.testclient import TestClient
from owslib.ogcapi.features import Features
from sqlalchemy import Engine

from geoservice.app import create_app
from layers.models import Role
from tests.etl.tiny_city import X0, Y0, D
from tests.geoservice import events_city
from tests.geoservice.events_city import AUTH, EVENTS, GRIDS, TOWN_A, centre
from tests.geoservice.signin import sign_in
from tests.webmap.live_server import live_server


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    events_city.load_events_city(empty_db)
    app = create_app(engine=empty_db, auth_settings=AUTH)
    app.state.event_settings = EVENTS
    with TestClient(app) as client:
        yield client


@pytest.fixture
def admin(client: TestClient, empty_db: Engine) -> dict[str, str]:
    return sign_in(client, empty_db, Role.admin)


def report(client: TestClient, auth: dict, grid: int) -> dict:
    lon, lat = centre(grid)
    body = {"lon": lon, "lat": lat, "category": "city_management.garbage", "description": "垃圾"}
    response = client.post("/v1/events", json=body, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


def test_owslib_reads_the_layers_like_qgis(client: TestClient, empty_db: Engine, admin: dict):
    made = [report(client, admin, grid) for grid in range(4)]
    with live_server(client.app) as url:
        api = Features(url, headers=admin)
        conformance = api.conformance()["conformsTo"]
        assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conformance
        assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in conformance
        ids = [c["id"] for c in api.collections()["collections"]]
        assert ids == ["regions", "grids", "posts", "places", "events", "forces"]
        grids = api.collection("grids")
        assert grids["extent"]["spatial"]["bbox"][0] == pytest.approx([X0, Y0, X0 + 4 * D, Y0 + D], abs=1e-9)
        # A bbox holding only the two western grids (touching the third's edge is not enough to leave it out:
        # && is a bounding-box test, and the third grid's box touches this one).
        page = api.collection_items("grids", bbox=[X0 + 0.1 * D, Y0 + 0.1 * D, X0 + 1.9 * D, Y0 + 0.9 * D])
        assert [f["id"] for f in page["features"]] == GRIDS[:2]
        first = page["features"][0]
        assert first["geometry"]["type"] == "MultiPolygon"
        assert first["properties"]["workers"] == ["张三"] and first["properties"]["officer"] == "王警官"
        one = api.collection_item("grids", GRIDS[3])
        assert one["id"] == GRIDS[3] and one["properties"]["community_code"] == GRIDS[3][:12]
        # Paging as QGIS does it: follow the next links until there are none.
        seen, page = [], api.collection_items("events", limit=3)
        assert page["numberMatched"] == 4 and page["numberReturned"] == 3
        seen += [f["id"] for f in page["features"]]
        nxt = [link["href"] for link in page["links"] if link["rel"] == "next"]
        assert len(nxt) == 1
        follow = requests.get(nxt[0], headers=admin, timeout=30).json()  # as QGIS does: the link as given
        seen += [f["id"] for f in follow["features"]]
        assert not [link for link in follow["links"] if link["rel"] == "next"]
        assert sorted(seen) == sorted(e["id"] for e in made)
        event = api.collection_item("events", str(made[0]["id"]))
        assert event["properties"]["grid_code"] == GRIDS[0]
        assert "reporter_name" not in event["properties"] and "reporter_phone" not in event["properties"]


def test_datetime_and_property_filters(client: TestClient, admin: dict):
    made = [report(client, admin, grid) for grid in range(3)]
    now = datetime.now(UTC)
    past = (now - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    future = (now + timedelta(days=1)).isoformat().replace("+00:00", "Z")

    def ids(**params) -> list[int]:
        response = client.get("/collections/events/items", params=params, headers=admin)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/geo+json"
        return sorted(f["id"] for f in response.json()["features"])

    assert ids(datetime=f"{past}/..") == sorted(e["id"] for e in made)
    assert ids(datetime=f"../{past}") == []
    assert ids(datetime="2000-01-01T00:00:00+16:00/..") == sorted(e["id"] for e in made)  # beyond PostgreSQL's ±15:59
    assert ids(datetime=f"{past}/{future}", grid_code=GRIDS[1]) == [made[1]["id"]]
    assert ids(status="reported") == sorted(e["id"] for e in made)
    assert ids(status="archived") == []
    posts = client.get("/collections/posts/items", params={"level": "station"}, headers=admin).json()
    assert [f["id"] for f in posts["features"]] == ["PS001"]


def test_limit_is_capped_not_refused(client: TestClient, admin: dict):
    body = client.get("/collections/grids/items", params={"limit": 1_000_000}, headers=admin).json()
    assert body["numberReturned"] == 4 and not [link for link in body["links"] if link["rel"] == "next"]


def test_a_dispatcher_lists_only_their_region(client: TestClient, empty_db: Engine, admin: dict):
    for grid in range(4):
        report(client, admin, grid)
    dispatcher = sign_in(client, empty_db, Role.dispatcher, "disp-a", region_code=TOWN_A)
    grids = client.get("/collections/grids/items", headers=dispatcher).json()
    assert [f["id"] for f in grids["features"]] == GRIDS[:2] and grids["numberMatched"] == 2
    events = client.get("/collections/events/items", headers=dispatcher).json()
    assert sorted(f["properties"]["grid_code"] for f in events["features"]) == GRIDS[:2]
    assert client.get(f"/collections/grids/items/{GRIDS[3]}", headers=dispatcher).status_code == 404
    posts = client.get("/collections/posts/items", headers=dispatcher).json()
    # The tiny city's station stands in town B, its village room in town A.
    assert [f["id"] for f in posts["features"]] == ["VR0001"]


@pytest.mark.parametrize(
    ("path", "params", "status", "words"),
    [
        ("/collections/roads/items", {}, 404, "no collection"),
        ("/collections/grids/items", {"bbox": "1,2,3"}, 400, "four numbers"),
        ("/collections/grids/items", {"bbox": "10,50,20,40"}, 400, "min lat"),
        ("/collections/grids/items", {"limit": "many"}, 400, "whole number"),
        ("/collections/grids/items", {"limit": "0"}, 400, "at least 1"),
        ("/collections/grids/items", {"colour": "red"}, 400, "colour is not a parameter"),
        ("/collections/grids/items", {"datetime": "2026-01-01T00:00:00Z"}, 400, "have no time"),
        ("/collections/events/items", {"datetime": "2026-01-01T00:00:00"}, 400, "needs a zone"),
        ("/collections/events/items", {"datetime": "2026-02-01T00:00:00Z/2026-01-01T00:00:00Z"}, 400, "after its end"),
        ("/collections/grids/items", {"crs": "http://www.opengis.net/def/crs/EPSG/0/3857"}, 400, "not served"),
        ("/collections/events/items/abc", {}, 404, "whole numbers"),
    ],
)
def test_bad_requests_are_clear_problems(client: TestClient, admin: dict, path, params, status, words):
    response = client.get(path, params=params, headers=admin)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert words in response.json()["detail"]


def test_landing_and_conformance_are_open_the_data_is_not(client: TestClient):
    landing = client.get("/")
    assert landing.status_code == 200
    assert {link["rel"] for link in landing.json()["links"]} >= {"self", "service-desc", "conformance", "data"}
    assert client.get("/conformance").status_code == 200
    assert client.get("/collections").status_code == 401
    assert client.get("/collections/grids/items").status_code == 401
