"""Vector tiles through the real app on real PostGIS: content, scope, caching, invalidation, bad input."""

from collections import Counter
from collections.abc import Iterator
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from pyproj import Geod
from sqlalchemy import Engine

from etl.load import import_frame
from geoservice.boundaries.publish import publish
from geoservice.infra.database import transaction
from layers.models import Role
from tests.etl.tiny_city import X0, Y0, D
from tests.geoservice import events_city
from tests.geoservice.events_city import COMMUNITY_A, GRIDS, TOWN_A, centre
from tests.geoservice.signin import sign_in
from tests.settings import PUBLISHING
from tests.tiles.helpers import features, tile_of, tile_point_to_lonlat, tiles_client, use_tile_settings

MVT = "application/vnd.mapbox-vector-tile"


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    events_city.load_events_city(empty_db)
    with tiles_client(empty_db) as client:
        yield client


@pytest.fixture
def admin(client: TestClient, empty_db: Engine) -> dict[str, str]:
    return sign_in(client, empty_db, Role.admin)


def tile_url(layer: str, lon: float, lat: float, z: int) -> str:
    x, y = tile_of(lon, lat, z)
    return f"/tiles/{layer}/{z}/{x}/{y}.mvt"


CITY_CENTRE = (X0 + 2 * D, Y0 + 0.5 * D)
CITY_Z = 13  # one tile holds the whole events city


def report(client: TestClient, auth: dict[str, str], grid: int, **fields) -> dict:
    lon, lat = centre(grid)
    body = {"lon": lon, "lat": lat, "category": "city_management.garbage", "description": "垃圾", **fields}
    response = client.post("/v1/events", json=body, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_grid_tile_holds_every_grid_with_its_people_and_places(client: TestClient, admin: dict):
    response = client.get(tile_url("grids", *CITY_CENTRE, CITY_Z), headers=admin)
    found = {f["properties"]["code"]: f for f in features(response, "grids")}
    assert sorted(found) == sorted(GRIDS)
    first = found[GRIDS[0]]["properties"]
    assert first == {"code": GRIDS[0], "name": "网格1", "community_code": COMMUNITY_A, "community": "甲村",
                     "town_code": TOWN_A, "town": "甲镇", "workers": "张三", "officer": "王警官"}  # fmt: skip
    # The polygon lands where the grid is: its vertices, back in degrees, are the square's corners.
    z, (x, y) = CITY_Z, tile_of(*CITY_CENTRE, CITY_Z)
    ring = found[GRIDS[0]]["geometry"]["coordinates"][0]
    corners = [tile_point_to_lonlat(z, x, y, px, py) for px, py in ring]
    lons, lats = [c[0] for c in corners], [c[1] for c in corners]
    pixel_deg = 360 / 2**z / 4096
    assert min(lons) == pytest.approx(X0, abs=pixel_deg) and max(lons) == pytest.approx(X0 + D, abs=pixel_deg)
    assert min(lats) == pytest.approx(Y0, abs=pixel_deg) and max(lats) == pytest.approx(Y0 + D, abs=pixel_deg)


def test_grid_tiles_below_zoom_12_carry_codes_and_names_only(client: TestClient, admin: dict):
    far = features(client.get(tile_url("grids", *CITY_CENTRE, 11), headers=admin), "grids")
    assert sorted(f["properties"]["code"] for f in far) == sorted(GRIDS)
    assert {key for f in far for key in f["properties"]} == {"code", "name", "community_code"}
    near = features(client.get(tile_url("grids", *CITY_CENTRE, 12), headers=admin), "grids")
    assert {key for f in near for key in f["properties"]} >= {"community", "town", "workers", "officer"}


def test_a_tile_outside_the_city_is_empty_and_cheap(client: TestClient, admin: dict):
    for layer in ("grids", "regions", "posts", "rings", "events"):
        response = client.get(tile_url(layer, 116.39, 39.91, 12), headers=admin)  # Beijing
        assert response.status_code == 204 and response.content == b"", layer
        assert response.headers["etag"]


def test_rings_are_drawn_in_metres_around_each_post(client: TestClient, admin: dict):
    post_lon, post_lat = X0 + 0.5 * D, Y0 + 0.5 * D  # the village room of the tiny city, ring 100 m
    z = 17
    x, y = tile_of(post_lon, post_lat, z)
    response = client.get(f"/tiles/rings/{z}/{x}/{y}.mvt", params={"level": "village_room"}, headers=admin)
    [ring] = features(response, "rings")
    assert ring["properties"]["code"] == "VR0001" and ring["properties"]["radius_m"] == 100
    geod = Geod(ellps="WGS84")
    outline = ring["geometry"]["coordinates"][0]
    distances = []
    for px, py in outline:
        lon, lat = tile_point_to_lonlat(z, x, y, px, py)
        distances.append(geod.inv(post_lon, post_lat, lon, lat)[2])
    assert min(distances) == pytest.approx(100, abs=1.0) and max(distances) == pytest.approx(100, abs=1.0)


def test_posts_and_regions_tiles(client: TestClient, admin: dict):
    posts = features(client.get(tile_url("posts", *CITY_CENTRE, CITY_Z), headers=admin), "posts")
    assert {(f["properties"]["code"], f["properties"]["level"]) for f in posts} == {
        ("PS001", "station"), ("VR0001", "village_room")}  # fmt: skip
    stations = client.get(tile_url("posts", *CITY_CENTRE, CITY_Z), params={"level": "station"}, headers=admin)
    assert [f["properties"]["code"] for f in features(stations, "posts")] == ["PS001"]
    regions = features(client.get(tile_url("regions", *CITY_CENTRE, CITY_Z), headers=admin), "regions")
    assert {f["properties"]["level"] for f in regions} == {"city", "town", "community"}
    assert len(regions) == 5


def test_a_dispatcher_sees_only_their_region_in_tiles(client: TestClient, empty_db: Engine, admin: dict):
    for grid in range(4):
        report(client, admin, grid)
    dispatcher = sign_in(client, empty_db, Role.dispatcher, "disp-a", region_code=TOWN_A)
    grids = features(client.get(tile_url("grids", *CITY_CENTRE, CITY_Z), headers=dispatcher), "grids")
    assert sorted(f["properties"]["code"] for f in grids) == GRIDS[:2]
    events = features(client.get(tile_url("events", *CITY_CENTRE, CITY_Z), headers=dispatcher), "events")
    assert sorted(f["properties"]["grid_code"] for f in events) == GRIDS[:2]
    everything = features(client.get(tile_url("events", *CITY_CENTRE, CITY_Z), headers=admin), "events")
    assert sorted(f["properties"]["grid_code"] for f in everything) == GRIDS
    regions = features(client.get(tile_url("regions", *CITY_CENTRE, CITY_Z), headers=dispatcher), "regions")
    assert {f["properties"]["code"] for f in regions} == {TOWN_A, COMMUNITY_A}
    # A planner sees grids but no events, like everywhere else.
    planner = sign_in(client, empty_db, Role.planner)
    assert client.get(tile_url("events", *CITY_CENTRE, CITY_Z), headers=planner).status_code == 204


def test_event_tiles_filter_and_aggregate(client: TestClient, admin: dict):
    made = [report(client, admin, grid % 4) for grid in range(7)]
    low = tile_url("events", *CITY_CENTRE, 9)  # below the cluster zoom: counted over the events in memory
    assert sum(f["properties"]["count"] for f in features(client.get(low, headers=admin), "events")) == 7
    accepted = made[0]
    step = {"action": "accept", "expected_version": accepted["row_version"]}
    assert client.post(f"/v1/events/{accepted['id']}/transitions", json=step, headers=admin).status_code == 200
    counted = features(client.get(low, params={"status": "accepted"}, headers=admin), "events")
    assert sum(f["properties"]["count"] for f in counted) == 1  # the step reached the columns in memory
    one_by_one = features(client.get(tile_url("events", *CITY_CENTRE, CITY_Z), headers=admin), "events")
    assert sorted(f["id"] for f in one_by_one) == sorted(e["id"] for e in made)
    assert {f["properties"]["warning"] for f in one_by_one} <= {"none", "blue", "yellow", "red"}
    only_accepted = client.get(tile_url("events", *CITY_CENTRE, CITY_Z), params={"status": "accepted"}, headers=admin)
    assert [f["id"] for f in features(only_accepted, "events")] == [accepted["id"]]
    other_class = client.get(
        tile_url("events", *CITY_CENTRE, CITY_Z), params={"category": "public_order"}, headers=admin
    )
    assert other_class.status_code == 204
    future = client.get(tile_url("events", *CITY_CENTRE, CITY_Z), params={"from": "2099-01-01T00:00:00+08:00"},
                        headers=admin)  # fmt: skip
    assert future.status_code == 204
    # Offsets Python accepts and PostgreSQL does not (beyond ±15:59) are the same instant in UTC.
    odd = client.get(tile_url("events", *CITY_CENTRE, CITY_Z), params={"from": "2000-01-01T00:00:00+16:00"},
                     headers=admin)  # fmt: skip
    assert len(features(odd, "events")) == 7
    # Who holds an event now: the owner filter (the statistics' owner keys) at both zooms, and on each feature.
    first = client.get(f"/v1/events/{made[0]['id']}", headers=admin).json()
    owner = f"{first['owner_kind']}:{first['owner_code']}"
    held = [e["id"] for e in made if e["grid_code"] == made[0]["grid_code"]]
    owned = features(client.get(tile_url("events", *CITY_CENTRE, CITY_Z), params={"owner": owner}, headers=admin),
                     "events")  # fmt: skip
    assert sorted(f["id"] for f in owned) == sorted(held) and {f["properties"]["owner"] for f in owned} == {owner}
    counted = features(client.get(low, params={"owner": owner}, headers=admin), "events")
    assert sum(f["properties"]["count"] for f in counted) == len(held) < len(made)
    nobody = client.get(low, params={"owner": "department:no-such-department"}, headers=admin)
    assert nobody.status_code == 204
    # Below the cluster zoom the tile carries counts, adding up to every event.
    clusters = features(client.get(tile_url("events", *CITY_CENTRE, 9), headers=admin), "events")
    assert sum(f["properties"]["count"] for f in clusters) == 7
    assert all("status" not in f["properties"] for f in clusters)


def test_a_crowded_tile_above_the_cluster_zoom_carries_counts(client: TestClient, admin: dict, empty_db: Engine):
    """One by one up to ``events_one_by_one_max`` events in the tile; past it, counts per 8-pixel cell."""
    made = [report(client, admin, grid % 4) for grid in range(6)]
    at = Counter((e["lon"], e["lat"]) for e in made)  # the four grid centres, 8-pixel cells apart at z13
    url = tile_url("events", *CITY_CENTRE, CITY_Z)
    use_tile_settings(client, empty_db, events_one_by_one_max=6)
    singly = features(client.get(url, headers=admin), "events")
    assert sorted(f["id"] for f in singly) == sorted(e["id"] for e in made)
    use_tile_settings(client, empty_db, events_one_by_one_max=5)
    crowded = features(client.get(url, headers=admin), "events")
    assert sorted(f["properties"]["count"] for f in crowded) == sorted(at.values())
    assert all("status" not in f["properties"] and not f.get("id") for f in crowded)
    # A filter that leaves few enough brings the events back one by one, in the same tile.
    accepted = made[0]
    step = {"action": "accept", "expected_version": accepted["row_version"]}
    assert client.post(f"/v1/events/{accepted['id']}/transitions", json=step, headers=admin).status_code == 200
    few = features(client.get(url, params={"status": "accepted"}, headers=admin), "events")
    assert [f["id"] for f in few] == [accepted["id"]] and few[0]["properties"]["status"] == "accepted"
    # The count follows the caller's scope: one community's dispatcher has fewer than the threshold.
    dispatcher = sign_in(client, empty_db, Role.dispatcher, "crowd-dispatcher", region_code=COMMUNITY_A)
    theirs = [e["id"] for e in made if e["community_code"] == COMMUNITY_A]
    assert 0 < len(theirs) <= 5
    assert sorted(f["id"] for f in features(client.get(url, headers=dispatcher), "events")) == sorted(theirs)


def test_etag_and_not_modified(client: TestClient, admin: dict):
    url = tile_url("grids", *CITY_CENTRE, CITY_Z)
    first = client.get(url, headers=admin)
    assert first.status_code == 200 and first.headers["x-tile-cache"] == "miss"
    assert "no-cache" in first.headers["cache-control"] and "private" in first.headers["cache-control"]
    again = client.get(url, headers={**admin, "If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b"" and again.headers["x-tile-cache"] == "hit"
    stale = client.get(url, headers={**admin, "If-None-Match": '"something-else"'})
    assert stale.status_code == 200 and stale.content == first.content


def test_a_publish_rebuilds_exactly_the_tiles_it_touches(client: TestClient, admin: dict, empty_db: Engine):
    z = 17
    untouched = tile_url("grids", *centre(0), z)
    touched = tile_url("grids", *centre(3), z)
    before = {url: client.get(url, headers=admin) for url in (untouched, touched)}
    assert [f["properties"]["officer"] for f in features(before[touched], "grids")] == ["王警官"]
    grids = events_city.grids()
    grids.loc[3, "officer"] = "周警官"
    with transaction(empty_db) as session:
        import_frame(session, "regions", events_city.regions(), version="v2")
        import_frame(session, "grids", grids, version="v2")
        publish(session, "v2", datetime.fromisoformat("2026-02-01T00:00:00+08:00"), **PUBLISHING)
    far = client.get(untouched, headers=admin)
    assert far.headers["x-tile-cache"] == "hit" and far.headers["etag"] == before[untouched].headers["etag"]
    near = client.get(touched, headers=admin)
    assert near.headers["x-tile-cache"] == "miss" and near.headers["etag"] != before[touched].headers["etag"]
    assert [f["properties"]["officer"] for f in features(near, "grids")] == ["周警官"]


def test_a_new_event_rebuilds_only_the_tiles_around_it(client: TestClient, admin: dict):
    report(client, admin, 0)
    here, there = tile_url("events", *centre(1), 16), tile_url("events", *centre(3), 16)
    assert features(client.get(here, headers=admin), "events") == []
    quiet = client.get(there, headers=admin)
    report(client, admin, 1)
    assert len(features(client.get(here, headers=admin), "events")) == 1
    still = client.get(there, headers=admin)
    assert still.headers["x-tile-cache"] == "hit" and still.headers["etag"] == quiet.headers["etag"]


def test_tilejson_describes_the_layer(client: TestClient, admin: dict):
    body = client.get("/tiles/grids.json", headers=admin).json()
    assert body["tilejson"] == "3.0.0" and body["minzoom"] <= 12 <= body["maxzoom"]
    assert body["tiles"] == ["http://testserver/tiles/grids/{z}/{x}/{y}.mvt"]
    west, south, east, north = body["bounds"]
    assert (west, south, east, north) == pytest.approx((X0, Y0, X0 + 4 * D, Y0 + D), abs=1e-6)
    assert set(body["vector_layers"][0]["fields"]) >= {"code", "community", "town", "workers", "officer"}
    assert set(client.get("/tiles/events.json", headers=admin).json()["filters"]) == {
        "status", "warning", "category", "from", "to", "owner"}  # fmt: skip


@pytest.mark.parametrize(
    ("url", "params", "status", "words"),
    [
        ("/tiles/roads/12/3419/1661.mvt", {}, 404, "no tile layer"),
        ("/tiles/grids/3/6/3.mvt", {}, 404, "zooms 9..18"),
        ("/tiles/grids/12/5000/1661.mvt", {}, 404, "run from 0 to 4095"),
        ("/tiles/grids/12/3419/1661.mvt", {"status": "reported"}, 422, "takes no status"),
        ("/tiles/events/12/3419/1661.mvt", {"status": "lost"}, 422, "unknown status lost"),
        ("/tiles/events/12/3419/1661.mvt", {"from": "2026-01-01T00:00:00"}, 422, "time zone"),
        ("/tiles/posts/12/3419/1661.mvt", {"level": "castle"}, 422, "unknown level"),
        ("/tiles/events/12/3419/1661.mvt", {"owner": "police"}, 422, "unit:<region or grid code>"),
        ("/tiles/events/12/3419/1661.mvt", {"owner": "team:x"}, 422, "department:<code>"),
        ("/tiles/grids/12/3419/1661.mvt", {"owner": "unit:1"}, 422, "takes no owner"),
        ("/tiles/roads.json", {}, 404, "no tile layer"),
    ],
)
def test_bad_tile_requests_are_clear_problems(client: TestClient, admin: dict, url, params, status, words):
    response = client.get(url, params=params, headers=admin)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert words in response.json()["detail"]


def test_tiles_need_a_signed_in_staff_member(client: TestClient, empty_db: Engine):
    assert client.get(tile_url("grids", *CITY_CENTRE, CITY_Z)).status_code == 401
    citizen = sign_in(client, empty_db, Role.public, "citizen")
    assert client.get(tile_url("grids", *CITY_CENTRE, CITY_Z), headers=citizen).status_code == 403


def test_a_co_department_sees_its_co_handled_events_at_every_zoom(client: TestClient, admin: dict,
                                                                  empty_db: Engine):  # fmt: skip
    event = report(client, admin, 0)
    lead = event["department_code"]
    co = "ecology" if lead != "ecology" else "police"
    helper = sign_in(client, empty_db, Role.handler, "co-handler", department_code=co)
    low, high = tile_url("events", *CITY_CENTRE, 9), tile_url("events", *CITY_CENTRE, CITY_Z)
    assert client.get(low, headers=helper).status_code == 204  # not theirs yet
    for action, fields in (("accept", {}), ("dispatch", {"department_code": lead, "co_departments": [co]})):
        answer = client.post(f"/v1/events/{event['id']}/transitions", headers=admin,
                             json={"action": action, "expected_version": event["row_version"], **fields})  # fmt: skip
        assert answer.status_code == 200, answer.text
        event = answer.json()
    # Counted in memory below the cluster zoom, one by one in SQL above it: the same single event.
    assert sum(f["properties"]["count"] for f in features(client.get(low, headers=helper), "events")) == 1
    assert [f["id"] for f in features(client.get(high, headers=helper), "events")] == [event["id"]]

