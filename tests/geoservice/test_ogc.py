"""OGC API - Features as real clients read it (bbox, queryables, dates, CRS) and TileJSON's filters.

One city for the module: the events city with grid 0 an L (square 0 and the top half of square 1)
and grid 1 the bottom half of square 1, so grid 0's envelope covers boxes its shape never touches.
GDAL (the OAPIF driver QGIS uses, pyogrio's build) and OWSLib read a real ``geoservice serve``
process on that database, signed in with a bearer token.
"""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import geopandas as gpd
import pyogrio
import pytest
import requests
from fastapi.testclient import TestClient
from owslib.ogcapi.features import Features
from shapely import MultiPolygon, Polygon, box
from sqlalchemy import Engine, text

from etl.load import import_frame
from etl.reference import load_reference_data
from geoservice.boundaries.publish import publish
from geoservice.infra.database import make_engine, transaction
from geoservice.infra.embedded import EmbeddedCluster, free_port
from layers.models import Role
from tests.conftest import clone_template, drop_database
from tests.etl import tiny_city
from tests.etl.tiny_city import X0, Y0, D, square
from tests.geoservice.events_city import GRIDS, events_client, regions
from tests.geoservice.signin import sign_in
from tests.settings import PUBLISHING
from tests.tiles.helpers import tile_of

CGCS2000 = "http://www.opengis.net/def/crs/EPSG/0/4490"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
# Inside grid 1 (bottom half of square 1) and inside grid 0's envelope, but away from grid 0's shape.
BOX = (X0 + 1.2 * D, Y0 + 0.1 * D, X0 + 1.8 * D, Y0 + 0.4 * D)
# Where each event is reported, and when (+08:00, the city's zone): the 30th of November as the city counts it
# holds events 0 and 1; event 2 is on the 30th in UTC but the 1st of December in the city; event 3 the 29th.
EVENTS = [
    ((X0 + 0.5 * D, Y0 + 0.5 * D), "2026-11-30T00:30:00+08:00"),
    ((X0 + 1.5 * D, Y0 + 0.25 * D), "2026-11-30T23:30:00+08:00"),
    ((X0 + 2.5 * D, Y0 + 0.5 * D), "2026-12-01T00:10:00+08:00"),
    ((X0 + 3.5 * D, Y0 + 0.5 * D), "2026-11-29T23:50:00+08:00"),
]


def l_shaped_grids() -> gpd.GeoDataFrame:
    top_of_1 = box(X0 + D, Y0 + 0.5 * D, X0 + 2 * D, Y0 + D)
    x2, x3, half, top = X0 + 2 * D, X0 + 3 * D, Y0 + 0.5 * D, Y0 + D  # grid 2 keeps a vertex where 0 and 1 meet it
    shapes = [
        MultiPolygon([box(X0, Y0, X0 + D, Y0 + D).union(top_of_1)]),
        MultiPolygon([box(X0 + D, Y0, x2, half)]),
        MultiPolygon([Polygon([(x2, Y0), (x3, Y0), (x3, top), (x2, top), (x2, half)])]),
        square(3),
    ]
    rows = [(code, f"网格{k + 1}", code[:12], "张三", "王警官") for k, code in enumerate(GRIDS)]
    return gpd.GeoDataFrame(rows, columns=["code", "name", "community_code", "workers", "officer"],
                            geometry=shapes, crs=4326)  # fmt: skip


@pytest.fixture(scope="module")
def city(cluster: EmbeddedCluster) -> Iterator[tuple[Engine, str]]:
    """The module's database: the L-shaped city, its posts and four events at known times."""
    name = f"t_ogc_{uuid.uuid4().hex[:8]}"
    url = clone_template(cluster, name)
    engine = make_engine(url)
    with transaction(engine) as session:
        load_reference_data(session)
        import_frame(session, "regions", regions(), version="v1")
        import_frame(session, "grids", l_shaped_grids(), version="v1")
        publish(session, "v1", datetime.fromisoformat("2026-01-01T00:00:00+08:00"), **PUBLISHING)
        import_frame(session, "posts", tiny_city.posts())
    yield engine, url
    engine.dispose()
    drop_database(cluster, name)


@pytest.fixture(scope="module")
def client(city: tuple[Engine, str]) -> Iterator[TestClient]:
    engine, _ = city
    with events_client(engine) as client:
        admin = sign_in(client, engine, Role.admin)
        for (lon, lat), _when in EVENTS:
            body = {"lon": lon, "lat": lat, "category": "city_management.garbage", "description": "垃圾"}
            assert client.post("/v1/events", json=body, headers=admin).status_code == 201
        with transaction(engine) as session:
            for k, (_where, when) in enumerate(EVENTS):
                session.execute(text("UPDATE events SET reported_at = :at WHERE id = (SELECT id FROM events "
                                     "ORDER BY id OFFSET :k LIMIT 1)"), {"at": when, "k": k})  # fmt: skip
        client.headers.update(admin)
        yield client


def ids(client: TestClient, collection: str, **params) -> list:
    response = client.get(f"/collections/{collection}/items", params=params)
    assert response.status_code == 200, response.text
    return sorted(f["id"] for f in response.json()["features"])


def event_ids(client: TestClient) -> list[int]:
    return ids(client, "events")  # in the order reported: EVENTS[k] is event_ids[k]


def test_bbox_means_intersects_in_crs84_and_cgcs2000(client: TestClient):
    assert ids(client, "grids", bbox=",".join(map(str, BOX))) == [GRIDS[1]]  # grid 0's envelope meets it, not grid 0
    assert ids(client, "grids", bbox=f"{X0 + 0.2 * D},{Y0 + 0.6 * D},{X0 + 1.5 * D},{Y0 + 0.9 * D}") == GRIDS[:1]
    lat_first = f"{BOX[1]},{BOX[0]},{BOX[3]},{BOX[2]}"  # EPSG:4490 is latitude first
    assert ids(client, "grids", bbox=lat_first, **{"bbox-crs": CGCS2000}) == [GRIDS[1]]
    described = client.get("/collections/grids").json()
    assert {CRS84, CGCS2000} <= set(described["crs"]) and described["storageCrs"] == CRS84
    answer = client.get(f"/collections/grids/items/{GRIDS[1]}", params={"crs": CGCS2000})
    assert answer.headers["content-crs"] == f"<{CGCS2000}>"
    corners = {(round(lon, 6), round(lat, 6)) for lon in (X0 + D, X0 + 2 * D) for lat in (Y0, Y0 + 0.5 * D)}
    ring = answer.json()["geometry"]["coordinates"][0][0]
    assert {(round(lon, 6), round(lat, 6)) for lat, lon in ring} == corners
    plain = client.get("/collections/grids/items", params={"bbox": ",".join(map(str, BOX))})
    assert plain.headers["content-crs"] == f"<{CRS84}>"
    ring = plain.json()["features"][0]["geometry"]["coordinates"][0][0]
    assert {(round(lon, 6), round(lat, 6)) for lon, lat in ring} == corners
    for bad in ({"crs": "http://www.opengis.net/def/crs/EPSG/0/3857"}, {"bbox-crs": "EPSG:4490", "bbox": "1,2,3,4"}):
        refused = client.get("/collections/grids/items", params=bad)
        assert refused.status_code == 400 and "not served" in refused.json()["detail"], refused.text
    # 4490's latitude first: a lon/lat box read as lat/lon has longitudes beyond ±90 as latitudes.
    wrong_order = client.get("/collections/grids/items", params={"bbox": ",".join(map(str, BOX)), "bbox-crs": CGCS2000})
    assert wrong_order.status_code == 400 and "lat within ±90" in wrong_order.json()["detail"]


def test_queryables_describe_and_filter(client: TestClient):
    collection = client.get("/collections/grids").json()
    (link,) = [link["href"] for link in collection["links"] if link["rel"] == "queryables"]
    answer = client.get(link)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/schema+json"
    schema = answer.json()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema" and schema["type"] == "object"
    assert schema["$id"] == "http://testserver/collections/grids/queryables"
    assert schema["properties"]["name"] == {"title": "name", "type": "string"}
    assert set(schema["properties"]) == {"code", "community_code", "name", "officer", "geometry"}
    forces = client.get("/collections/forces/queryables").json()["properties"]
    assert forces["available"]["type"] == "boolean"
    assert ids(client, "grids", name="网格2") == [GRIDS[1]]
    assert ids(client, "grids", name="网格", community_code=GRIDS[0][:12]) == []  # exact, not a prefix
    refused = client.get("/collections/grids/items", params={"workers": "张三"})  # a property, not a queryable
    assert refused.status_code == 400 and "workers is not a parameter" in refused.json()["detail"]
    assert client.get("/collections/roads/queryables").status_code == 404


def test_datetime_takes_the_city_s_days(client: TestClient):
    made = event_ids(client)
    assert len(made) == 4
    assert ids(client, "events", datetime="2026-11-30") == made[:2]
    assert ids(client, "events", datetime="2026-11-30/2026-12-01") == made[:3]
    assert ids(client, "events", datetime="../2026-11-29") == made[3:]
    assert ids(client, "events", datetime="2026-12-01/..") == made[2:3]
    assert ids(client, "events", datetime="2026-11-30T16:10:00Z") == made[2:3]  # an instant: that very time
    assert ids(client, "events", datetime="2026-11-30T00:00:00+08:00/2026-11-30") == made[:2]
    for bad, words in (("2026-11-31", "not a date"), ("2026-12-01/2026-11-30", "after its end")):
        refused = client.get("/collections/events/items", params={"datetime": bad})
        assert refused.status_code == 400 and words in refused.json()["detail"], refused.text


def test_tilejson_carries_its_filters_into_the_tile_urls(client: TestClient):
    asked = {"status": "reported,dispatched", "from": "2026-11-30T00:00:00+08:00"}
    tiles = client.get("/tiles/events.json", params=asked).json()["tiles"]
    (url,) = tiles
    assert parse_qs(urlsplit(url).query) == {name: [value] for name, value in asked.items()}
    z = 14
    x, y = tile_of(*EVENTS[1][0], z)
    tile = url.replace("{z}", str(z)).replace("{x}", str(x)).replace("{y}", str(y))
    assert client.get(tile).status_code == 200
    archived = client.get("/tiles/events.json", params={"status": "archived"}).json()["tiles"][0]
    assert client.get(archived.format(z=z, x=x, y=y)).status_code == 204  # nothing archived: the filter went along
    assert client.get("/tiles/grids.json").json()["tiles"] == ["http://testserver/tiles/grids/{z}/{x}/{y}.mvt"]
    for params, words in (({"level": "station"}, "takes no level"), ({"colour": "red"}, "colour is not a parameter"),
                          ({"status": "lost"}, "unknown status lost")):  # fmt: skip
        refused = client.get("/tiles/events.json", params=params)
        assert refused.status_code == 422 and words in refused.json()["detail"], refused.text


@pytest.fixture(scope="module")
def served(city: tuple[Engine, str], client: TestClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``geoservice serve`` on the module's database, as users run it; yields its base URL."""
    _, url = city
    home = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = {**os.environ, "GEOSERVICE_DATABASE_URL": url, "GEOSERVICE_HOME": str(home),
           "GEOSERVICE_LOG_FORMAT": "text", "GEOSERVICE_POOL_SIZE": "2", "GEOSERVICE_WORKER_THREADS": "4",
           "GEOSERVICE_EVENT_SWEEP_S": "0"}  # fmt: skip
    command = [sys.executable, "-c", "from geoservice.cli import app; app()", "serve", "--port", str(port)]
    log = (home / "serve.log").open("w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/conformance", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            pytest.fail(f"the server did not start: {(home / 'serve.log').read_text()}")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_gdal_and_owslib_read_it_signed_in_with_a_bearer_token(served: str):
    # The admin of the module's fixture signs in to the served process as a QGIS user would before connecting.
    token = requests.post(f"{served}/v1/auth/token", timeout=30,
                          data={"username": "admin-user", "password": "correct horse battery"}).json()  # fmt: skip
    options = {"GDAL_HTTP_AUTH": "BEARER", "GDAL_HTTP_BEARER": token["access_token"]}
    pyogrio.set_gdal_config_options(options)
    try:
        everything = pyogrio.read_dataframe(f"OAPIF:{served}", layer="grids")
        assert sorted(everything["code"]) == GRIDS
        boxed = pyogrio.read_dataframe(f"OAPIF:{served}", layer="grids", bbox=BOX)
        assert list(boxed["code"]) == [GRIDS[1]]
        named = pyogrio.read_dataframe(f"OAPIF:{served}", layer="grids", where="name = '网格3'")
        assert list(named["code"]) == [GRIDS[2]]
        # In CGCS2000 through GDAL (which sends crs= and reads the latitude-first answer back).
        national = pyogrio.read_dataframe(f"OAPIF:{served}", layer="grids", bbox=BOX, CRS="EPSG:4490")
        assert national.crs.to_epsg() == 4490 and list(national["code"]) == [GRIDS[1]]
        assert national.total_bounds == pytest.approx([X0 + D, Y0, X0 + 2 * D, Y0 + 0.5 * D], abs=1e-6)
    finally:
        pyogrio.set_gdal_config_options(dict.fromkeys(options))
    with pytest.raises(Exception, match="401|[Uu]nauthori[sz]ed|Sign in"):  # without the token: refused
        pyogrio.read_dataframe(f"OAPIF:{served}", layer="grids")
    owslib = Features(served, headers={"Authorization": f"Bearer {token['access_token']}"})
    assert owslib.collection_queryables("events")["properties"]["status"]["type"] == "string"
