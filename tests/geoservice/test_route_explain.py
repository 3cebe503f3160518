"""``/v1/route/explain``: every candidate rule for a place and category, the winner first, with reasons."""

from collections.abc import Iterator

import geopandas as gpd
import pytest
from fastapi.testclient import TestClient
from shapely import Point
from sqlalchemy import Engine

from etl.load import import_frame
from etl.reference import load_reference_data
from geoservice.app import create_app
from geoservice.infra.database import transaction
from layers.models import Role
from tests.etl.tiny_city import WEST, X0, Y0, D
from tests.geoservice.signin import sign_in
from tests.geoservice.test_locate_api import load_tiny_city

SCHOOL = Point(X0 + 0.5 * D, Y0 + 0.5 * D)
NEAR = {"lon": X0 + 0.5 * D + 100 / 94_100, "lat": Y0 + 0.5 * D}  # ~100 m east of the school
FAR = {"lon": X0 + 3.5 * D, "lat": Y0 + 0.5 * D}  # ~2.8 km east


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    load_tiny_city(empty_db)
    with transaction(empty_db) as session:
        load_reference_data(session)
        school = gpd.GeoDataFrame(
            {"code": ["KP1"], "name": ["西村小学"], "type": ["school"]}, geometry=[SCHOOL], crs=4326
        )
        import_frame(session, "places", school)
    with TestClient(create_app(engine=empty_db)) as client:
        client.headers.update(sign_in(client, empty_db, Role.dispatcher))
        yield client


def test_near_a_school_a_fight_goes_to_the_police_by_the_school_rule(client: TestClient):
    body = client.get("/v1/route/explain", params={**NEAR, "category": "public_order.dispute"}).json()
    assert body["location"]["grid"]["code"] == WEST + "001"
    assert (body["department"], body["rule_id"]) == ("police", 4)
    candidates = body["candidates"]
    assert [c["rule_id"] for c in candidates] == [4, 2, 1]
    assert [c["won"] for c in candidates] == [True, False, False]
    assert any("nearest school 西村小学 is 100 m away (within 200 m)" in r for r in candidates[0]["reasons"])


def test_far_from_schools_the_subcategory_rule_wins(client: TestClient):
    body = client.get("/v1/route/explain", params={**FAR, "category": "public_order.dispute"}).json()
    assert (body["department"], body["rule_id"]) == ("civil_affairs", 2)
    school_rule = next(c for c in body["candidates"] if c["rule_id"] == 4)
    assert school_rule["matched"] is False
    assert any("(beyond 200 m)" in r for r in school_rule["reasons"])


def test_unknown_category_is_a_422(client: TestClient):
    response = client.get("/v1/route/explain", params={**FAR, "category": "weather"})
    assert response.status_code == 422
    assert "no routing rule knows 'weather'" in response.json()["detail"]


def test_the_public_may_not_see_the_rules(client: TestClient):
    client.headers.pop("Authorization")
    response = client.get("/v1/route/explain", params={**FAR, "category": "public_order.dispute"})
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
