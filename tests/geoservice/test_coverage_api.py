"""``/v1/coverage`` and ``/v1/coverage/suggest`` through the real ASGI app, on the crafted city."""

import html
import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from geoservice.api import coverage
from geoservice.app import create_app
from geoservice.infra.database import make_engine
from geoservice.infra.embedded import EmbeddedCluster
from geoservice.settings import AuthSettings, RoutingSettings
from layers.models import Role
from tests.conftest import clone_template, drop_database
from tests.geoservice.coverage_city import AS_OF, EAST, TOWN, WEST, load_coverage_city
from tests.geoservice.signin import sign_in

PROBLEM = "application/problem+json"


def coverage_app(engine: Engine) -> FastAPI:
    app = create_app(engine=engine, routing=RoutingSettings(), auth_settings=AuthSettings(secret_key="k" * 40))
    if not any(getattr(r, "path", "").startswith("/v1/coverage") for r in app.routes):
        app.include_router(coverage.router)  # until app.py includes it
    return app


@pytest.fixture(scope="module")
def engine(cluster: EmbeddedCluster) -> Iterator[Engine]:
    engine = make_engine(clone_template(cluster, "t_coverage_api"))
    load_coverage_city(engine)
    yield engine
    engine.dispose()
    drop_database(cluster, "t_coverage_api")


@pytest.fixture(scope="module")
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(coverage_app(engine)) as client:
        client.headers.update(sign_in(client, engine, Role.supervisor))
        yield client


def get(client: TestClient, path: str = "/v1/coverage", **params):
    return client.get(path, params={"as_of": AS_OF.isoformat(), **params})


def test_json(client: TestClient):
    response = get(client, region=TOWN)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["region"]["code"] == TOWN and [c["code"] for c in body["children"]] == [WEST, EAST]
    central = body["region_figures"]["levels"]["central_room"]
    assert central["population_share"] == 0.5 and central["events_outside"] == 2
    assert {p["code"] for p in body["places_outside"] if p["level"] == "central_room"} == {"KP2", "KP4"}


def test_default_region_is_the_city(client: TestClient):
    assert get(client).json()["region"]["level"] == "city"


def test_geojson_csv_html(client: TestClient):
    gaps = get(client, region=TOWN, level="central_room", format="geojson")
    assert gaps.status_code == 200 and gaps.headers["content-type"] == "application/geo+json"
    assert [f["properties"]["unit_code"] for f in gaps.json()["features"]] == [WEST, EAST]
    table = get(client, region=TOWN, format="csv")
    assert table.headers["content-type"].startswith("text/csv")
    assert table.text.splitlines()[0].startswith("code,name,unit_level,role,level")
    assert len(table.text.splitlines()) == 1 + 3 * 3
    page = get(client, region=TOWN, format="html")
    assert page.headers["content-type"].startswith("text/html")
    assert page.text.count('<svg class="map"') == 3 and page.text.count('<svg class="chart"') == 3
    # Nothing to fetch, in the page or in the map's inlined document: no remote script, style or image.
    assert not re.search(r"<(script|link|img)\b[^>]*\b(src|href)=[\"']?(https?:)?//", html.unescape(page.text))
    assert "<script>" in html.unescape(page.text) and "L.map(" in html.unescape(page.text)


def test_unknown_region_is_a_404_problem(client: TestClient):
    response = get(client, region="320682999999")
    assert response.status_code == 404 and response.headers["content-type"] == PROBLEM
    assert "320682999999" in response.json()["detail"]


@pytest.mark.parametrize(
    "params",
    [{"level": "precinct"}, {"format": "pdf"}, {"as_of": "2026-11-01T00:00:00"}],
)
def test_bad_input_is_a_422_problem(client: TestClient, params: dict):
    response = get(client, **params)
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM


@pytest.mark.parametrize("k", ["0", "51", "five", None])
def test_bad_k_is_a_422_problem(client: TestClient, k: str | None):
    params = {"region": TOWN} if k is None else {"region": TOWN, "k": k}
    response = get(client, "/v1/coverage/suggest", **params)
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM


def test_who_may_ask(client: TestClient, engine: Engine):
    anonymous = client.get("/v1/coverage", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    worker = sign_in(client, engine, Role.grid_worker, region_code=WEST)
    assert client.get("/v1/coverage", headers=worker).status_code == 403


def test_a_dispatcher_sees_only_their_region(client: TestClient, engine: Engine):
    headers = sign_in(client, engine, Role.dispatcher, "west-dispatcher", region_code=WEST)
    own = client.get("/v1/coverage", headers=headers)
    assert own.status_code == 200 and own.json()["region"]["code"] == WEST
    assert client.get("/v1/coverage", params={"region": WEST + "001"}, headers=headers).status_code == 200
    other = client.get("/v1/coverage", params={"region": EAST}, headers=headers)
    assert other.status_code == 403 and other.headers["content-type"] == PROBLEM
    assert client.get("/v1/coverage", params={"region": TOWN}, headers=headers).status_code == 403
    assert client.get("/v1/coverage", params={"region": "320682999999"}, headers=headers).status_code == 404


def test_suggest_two_central_rooms(client: TestClient):
    response = get(client, "/v1/coverage/suggest", region=TOWN, level="central_room", k=2, full="true")
    assert response.status_code == 200, response.text
    body = response.json()
    # Uncovered: 50 people 1.5 km north of the central room, 30 by the east village room, 20 far east.
    assert (body["covered_before"], body["gain"], body["covered_after"], body["total"]) == (100, 80, 180, 200)
    assert [s["gain"] for s in body["sites"]] == [50, 30]
    assert body["solver"]["model"] == "MCLP" and body["solver"]["status"] == "Optimal"
    assert body["full_coverage"]["solver"]["model"] == "LSCP"
    assert body["full_coverage"]["posts_needed"] == 2 and body["full_coverage"]["model"]["unreachable"] == 20
    assert "straight-line" in body["method"]


def test_suggest_for_places_and_events(client: TestClient):
    places = get(client, "/v1/coverage/suggest", region=TOWN, level="central_room", k=1, demand="places").json()
    assert places["total"] == 4 and places["covered_before"] == 2 and places["gain"] == 1
    events = get(client, "/v1/coverage/suggest", region=TOWN, level="central_room", k=2, demand="events").json()
    assert (events["total"], events["covered_before"], events["gain"]) == (3, 1, 2)
    nothing = get(client, "/v1/coverage/suggest", region=TOWN, level="village_room", k=1, demand="events").json()
    assert nothing["gain"] == 0 and nothing["sites"] == []  # no candidate within 100 m of an uncovered event
