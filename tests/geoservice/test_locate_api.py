"""``/v1/locate`` through the real ASGI app on the tiny city, where every answer is known exactly."""

from collections.abc import Iterator
from datetime import datetime

import geopandas as gpd
import pyproj
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from etl.load import import_frame
from geoservice.api.locate import LocateAnswer
from geoservice.app import create_app
from geoservice.boundaries.publish import publish
from geoservice.infra.database import transaction
from geoservice.settings import RoutingSettings
from layers.crs import wgs84_to_bd09, wgs84_to_gcj02
from layers.models import Role
from tests.etl import tiny_city
from tests.etl.tiny_city import EAST, TOWN, WEST, X0, Y0, D
from tests.geoservice.signin import sign_in
from tests.settings import PUBLISHING

GEOD = pyproj.Geod(ellps="WGS84")


def load_tiny_city(engine: Engine, version: str = "v1", at: str | None = None, grids: gpd.GeoDataFrame | None = None):
    with transaction(engine) as session:
        import_frame(session, "regions", tiny_city.regions(), version=version)
        import_frame(session, "grids", tiny_city.grids() if grids is None else grids, version=version)
        publish(session, version, None if at is None else datetime.fromisoformat(at), **PUBLISHING)
        import_frame(session, "posts", tiny_city.posts())
        station_area = gpd.GeoDataFrame({"code": ["PS001"]}, geometry=[tiny_city.regions().geometry.iloc[0]], crs=4326)
        import_frame(session, "station_areas", station_area)


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    load_tiny_city(empty_db, at="2026-01-01T00:00:00+08:00")
    app = create_app(engine=empty_db, routing=RoutingSettings(version_check_s=0.2))
    with TestClient(app) as client:
        yield client


def test_a_point_inside_a_grid(client: TestClient, empty_db: Engine):
    staff = sign_in(client, empty_db, Role.dispatcher)
    response = client.get("/v1/locate", params={"lon": X0 + 0.5 * D, "lat": Y0 + 0.5 * D}, headers=staff)
    assert response.status_code == 200
    body = response.json()
    assert body["grid"] == {
        "code": WEST + "001",
        "name": "西村第1网格",
        "workers": ["张三", "李四"],
        "officer": "王警官",
    }
    assert body["service_phone"] == "12345"
    assert body["community"] == {"code": WEST, "name": "西村"}
    assert body["town"] == {"code": TOWN, "name": "演示镇"}
    assert body["city"] == {"code": tiny_city.CITY, "name": "演示市"}
    assert body["version"]["name"] == "v1" and body["snapped_m"] is None
    # The village room stands exactly here; the station is 2 cells east, inside its own jurisdiction.
    assert body["posts"]["village_room"]["code"] == "VR0001"
    assert body["posts"]["village_room"]["distance_m"] == pytest.approx(0.0, abs=0.01)
    assert body["posts"]["village_room"]["within_ring"] is True
    _, _, metres = GEOD.inv(X0 + 0.5 * D, Y0 + 0.5 * D, X0 + 2.5 * D, Y0 + 0.5 * D)
    assert body["station"]["code"] == "PS001" and body["station"]["by"] == "jurisdiction"
    # Gauss-Krüger distances differ from geodesic ones by the zone's scale factor (< 0.1 % here).
    assert body["station"]["distance_m"] == pytest.approx(metres, rel=1e-3)
    assert body["posts"]["central_room"] is None
    LocateAnswer.model_validate(body)  # what the OpenAPI document promises


def test_the_public_gets_a_service_phone_not_names_and_small_batches(client: TestClient, empty_db: Engine):
    """Anonymous and signed-in citizens alike: the grid, community, station and 12345, never the team."""
    citizen = sign_in(client, empty_db, Role.public, "citizen")
    point = {"lon": X0 + 0.5 * D, "lat": Y0 + 0.5 * D}
    for auth in ({}, citizen):
        one = client.get("/v1/locate", params=point, headers=auth).json()
        assert one["grid"] == {"code": WEST + "001", "name": "西村第1网格"} and one["service_phone"] == "12345"
        assert one["community"]["code"] == WEST and one["station"]["code"] == "PS001"
        batch = client.post("/v1/locate", json={"points": [[point["lon"], point["lat"]]] * 100}, headers=auth)
        assert batch.status_code == 200 and len(batch.json()["results"]) == 100
        assert "张三" not in batch.text and "王警官" not in batch.text
        too_many = client.post("/v1/locate", json={"points": [[point["lon"], point["lat"]]] * 101}, headers=auth)
        assert too_many.status_code == 413 and "at most 100" in too_many.json()["detail"]


def test_shared_edge_goes_to_the_smaller_code(client: TestClient):
    on_edge = client.get("/v1/locate", params={"lon": X0 + D, "lat": Y0 + 0.5 * D}).json()
    assert on_edge["grid"]["code"] == WEST + "001"
    between_communities = client.get("/v1/locate", params={"lon": X0 + 2 * D, "lat": Y0 + 0.3 * D}).json()
    assert between_communities["grid"]["code"] == WEST + "002"
    vertex = client.get("/v1/locate", params={"lon": X0 + 3 * D, "lat": Y0}).json()
    assert vertex["grid"]["code"] == EAST + "001"


def test_just_outside_snaps_within_tolerance(client: TestClient):
    lat = Y0 - 30 / 110_574  # about 30 m south of the city's edge
    body = client.get("/v1/locate", params={"lon": X0 + 3.5 * D, "lat": lat}).json()
    assert body["grid"]["code"] == EAST + "002"
    assert body["snapped_m"] == pytest.approx(30, abs=1)


def test_beyond_tolerance_is_a_404_problem_naming_the_nearest_grid(client: TestClient):
    response = client.get("/v1/locate", params={"lon": X0 + 4 * D + 0.002, "lat": Y0 + 0.5 * D})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["nearest_grid"]["code"] == EAST + "002"
    assert problem["distance_m"] == pytest.approx(0.002 * 111_320 * 0.8451, rel=0.01)
    assert "beyond the snap tolerance of 50 m" in problem["detail"]


@pytest.mark.parametrize(("crs", "forward"), [("gcj02", wgs84_to_gcj02), ("bd09", wgs84_to_bd09)])
def test_chinese_map_sdk_coordinates_find_the_same_grid(client: TestClient, crs, forward):
    lon, lat = X0 + 2.8 * D, Y0 + 0.5 * D  # GCJ-02/BD-09 shift this hundreds of metres, into EAST 002
    wgs = client.get("/v1/locate", params={"lon": lon, "lat": lat}).json()
    x, y = forward(lon, lat)
    shifted = client.get("/v1/locate", params={"lon": float(x), "lat": float(y), "crs": crs}).json()
    assert wgs["grid"]["code"] == shifted["grid"]["code"] == EAST + "001"
    assert shifted["point"] == {"lon": float(x), "lat": float(y), "crs": crs}
    naive = client.get("/v1/locate", params={"lon": float(x), "lat": float(y)})  # the offset is hundreds of metres
    assert naive.status_code == 404 or naive.json()["grid"]["code"] != EAST + "001"


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"lon": 200, "lat": 32}, "lon"),
        ({"lon": 120.5, "lat": -91}, "lat"),
        ({"lon": "east", "lat": 32}, "lon"),
        ({"lon": 120.5, "lat": 32.3, "crs": "mars"}, "expected one of wgs84"),
        ({"lon": 120.5, "lat": 32.3, "at": "2026-01-01T00:00:00"}, "time zone"),
    ],
)
def test_bad_input_is_a_422_problem(client: TestClient, params, fragment):
    response = client.get("/v1/locate", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert fragment in response.json()["detail"]


def test_batch_answers_in_order_with_per_point_errors(client: TestClient):
    points = [[X0 + 3.5 * D, Y0 + 0.5 * D], [X0 + 9 * D, Y0], [X0 + 0.5 * D, Y0 + 0.5 * D], [500, 0]]
    response = client.post("/v1/locate", json={"crs": "wgs84", "points": points})
    assert response.status_code == 200
    results = response.json()["results"]
    assert results[0]["grid"]["code"] == EAST + "002"
    assert results[1]["error"]["status"] == 404 and results[1]["error"]["nearest_grid"]["code"] == EAST + "002"
    assert results[2]["grid"]["code"] == WEST + "001"
    assert results[3]["error"]["status"] == 422


def test_batch_accepts_geojson_and_refuses_too_many(client: TestClient):
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {},
                "geometry": {"type": "Point", "coordinates": [X0 + 1.5 * D, Y0 + 0.5 * D]},
            }
        ],
    }
    assert client.post("/v1/locate", json=collection).json()["results"][0]["grid"]["code"] == WEST + "002"
    staff = sign_in(client, client.app.state.engine, Role.dispatcher)
    too_many = client.post("/v1/locate", json={"points": [[X0, Y0]] * 10_001}, headers=staff)
    assert too_many.status_code == 413 and "at most 10,000" in too_many.json()["detail"]
    malformed = client.post("/v1/locate", json={"points": [[X0, "north"], [X0 + 0.5 * D, Y0 + 0.5 * D]]})
    assert malformed.status_code == 200  # one bad pair is an error in its place, not a failed batch
    bad, good = malformed.json()["results"]
    assert bad["error"]["status"] == 422 and "point 0 is not a [lon, lat] pair" in bad["error"]["detail"]
    assert good["grid"]["code"] == WEST + "001"


def test_batch_items_of_every_wrong_shape_are_answered_in_place(client: TestClient):
    inside = [X0 + 0.5 * D, Y0 + 0.5 * D]
    items = [[X0], None, "a", [True, False], [X0, "north"], inside, {"lon": 1}, [X0, Y0, 0]]
    results = client.post("/v1/locate", json={"points": items}).json()["results"]
    assert [("grid" in r, r.get("error", {}).get("status")) for r in results] == [
        (False, 422)] * 5 + [(True, None)] + [(False, 422)] * 2  # fmt: skip
    features = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [inside, inside]}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": inside}},
    ]}  # fmt: skip
    first, second = client.post("/v1/locate", json=features).json()["results"]
    assert first["error"]["status"] == 422 and second["grid"]["code"] == WEST + "001"


@pytest.mark.parametrize(("crs", "forward"), [("gcj02", wgs84_to_gcj02), ("bd09", wgs84_to_bd09)])
def test_batch_takes_the_crs_from_the_query(client: TestClient, crs, forward):
    """``POST /v1/locate?crs=gcj02`` with a body that names no crs: the query's CRS, not WGS84."""
    x, y = forward(X0 + 2.8 * D, Y0 + 0.5 * D)  # shifted hundreds of metres: read as WGS84, another grid
    point = [float(x), float(y)]
    by_query = client.post("/v1/locate", params={"crs": crs}, json={"points": [point]}).json()["results"][0]
    by_body = client.post("/v1/locate", json={"crs": crs, "points": [point]}).json()["results"][0]
    as_wgs84 = client.post("/v1/locate", json={"points": [point]}).json()["results"][0]
    assert by_query["grid"]["code"] == by_body["grid"]["code"] == EAST + "001" and by_query["point"]["crs"] == crs
    assert "error" in as_wgs84 or as_wgs84["grid"]["code"] != EAST + "001"
    same = client.post("/v1/locate", params={"crs": crs.upper()}, json={"crs": crs, "points": [point]})
    assert same.status_code == 200 and same.json()["results"][0]["grid"] == by_body["grid"]
    clash = client.post("/v1/locate", params={"crs": "wgs84"}, json={"crs": crs, "points": [point]})
    assert clash.status_code == 422 and clash.headers["content-type"] == "application/problem+json"
    assert "crs=wgs84" in clash.json()["detail"] and crs in clash.json()["detail"]
    unknown = client.post("/v1/locate", params={"crs": "mars"}, json={"points": [point]})
    assert unknown.status_code == 422


def test_a_published_version_is_answered_without_restart(client: TestClient, empty_db: Engine):
    point = {"lon": X0 + 0.5 * D, "lat": Y0 + 0.5 * D}
    assert client.get("/v1/locate", params=point).json()["version"]["name"] == "v1"
    renamed = tiny_city.grids().assign(name=["甲", "乙", "丙", "丁"])
    load_tiny_city_version(empty_db, "v2", renamed)
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body = client.get("/v1/locate", params=point).json()
        if body["version"]["name"] == "v2":
            break
        time.sleep(0.05)
    assert body["version"]["name"] == "v2" and body["grid"]["name"] == "甲"
    # The past is still answerable from the version then in force.
    past = client.get("/v1/locate", params={**point, "at": "2026-06-01T00:00:00+08:00"}).json()
    assert past["version"]["name"] == "v1" and past["grid"]["name"] == "西村第1网格"
    before = client.get("/v1/locate", params={**point, "at": "2020-01-01T00:00:00+08:00"})
    assert before.status_code == 404 and "no boundary version was in force" in before.json()["detail"]


def load_tiny_city_version(engine: Engine, version: str, grids: gpd.GeoDataFrame) -> None:
    with transaction(engine) as session:
        import_frame(session, "regions", tiny_city.regions(), version=version)
        import_frame(session, "grids", grids, version=version)
        publish(session, version, **PUBLISHING)


def test_readyz_names_the_version_in_force_and_the_routers(client: TestClient):
    body = client.get("/readyz").json()
    assert body["status"] == "ok" and body["postgis"].startswith("3.")
    assert body["boundary_version"] == body["router_version"] is not None
