"""The impact report of a draft, checked against an independent computation in shapely and pyproj.

The draft moves the eastern 40 % of West 001 to West 002 and cuts East 002 in two. The test knows
the new outlines from that description alone (not from the service), places every place, post,
event and population point in the old and new grids itself (``covers``, smallest code on shared
edges) and measures areas on the ellipsoid.
"""

import csv
import io

import geopandas as gpd
import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely import box
from sqlalchemy import Engine, text

from etl.load import copy_rows, import_frame
from etl.reference import load_reference_data
from geoservice.app import create_app
from geoservice.boundaries.versions import current_version_id
from geoservice.infra.database import transaction
from geoservice.routing.bulk_events import assign_departments, assign_places
from geoservice.routing.loader import load_router
from geoservice.settings import RoutingSettings
from layers.models import Role
from tests.etl import tiny_city
from tests.etl.tiny_city import EAST, WEST, X0, Y0, D
from tests.geoservice.signin import sign_in
from tests.geoservice.test_boundaries_drafts import edit, geodesic_m2, geojson, new_draft
from tests.geoservice.test_locate_api import load_tiny_city
from tests.settings import ROUTING

BEFORE = {code: geom for code, geom in zip(tiny_city.grids()["code"], tiny_city.grids().geometry, strict=True)}
AFTER = {
    WEST + "001": box(X0, Y0, X0 + 0.6 * D, Y0 + D),
    WEST + "002": box(X0 + 0.6 * D, Y0, X0 + 2 * D, Y0 + D),
    EAST + "001": box(X0 + 2 * D, Y0, X0 + 3 * D, Y0 + D),
    EAST + "002": box(X0 + 3 * D, Y0 + 0.3 * D, X0 + 4 * D, Y0 + D),
    EAST + "003": box(X0 + 3 * D, Y0, X0 + 4 * D, Y0 + 0.3 * D),
}
OPEN = {"reported": "reroute", "accepted": "reroute", "returned": "reroute", "dispatched": "keep",
        "handling": "keep", "handled": "keep", "verified": "keep", "reopened": "keep"}  # fmt: skip
STATUSES = [*OPEN, "archived", "evaluated", "rejected"]
RNG = np.random.default_rng(6)


def owner(grids: dict, lon: float, lat: float) -> str:
    point = shapely.Point(lon, lat)
    return min(code for code, geom in grids.items() if shapely.covers(geom, point))


def random_points(n: int) -> np.ndarray:
    return np.column_stack([X0 + RNG.random(n) * 4 * D, Y0 + RNG.random(n) * D])


@pytest.fixture
def city(empty_db: Engine) -> dict:
    load_tiny_city(empty_db, at="2026-01-01T00:00:00+08:00")
    places = random_points(40)
    events = random_points(80)
    population = np.array([(X0 + (i + 0.5) * D / 10, Y0 + (j + 0.5) * D / 5) for i in range(40) for j in range(5)])
    counts = [float(1 + k % 7) for k in range(len(population))]
    statuses = [STATUSES[k % len(STATUSES)] for k in range(len(events))]
    with transaction(empty_db) as session:
        load_reference_data(session)
        frame = gpd.GeoDataFrame(
            {"code": [f"P{k:03d}" for k in range(len(places))] + ["MARKET"],
             "name": [f"场所{k}" for k in range(len(places))] + ["菜市场"],
             "type": ["school"] * len(places) + ["market"]},
            geometry=[*shapely.points(places), box(X0 + 0.7 * D, Y0 + 0.2 * D, X0 + 0.9 * D, Y0 + 0.4 * D)],
            crs=4326,
        )  # fmt: skip
        import_frame(session, "places", frame)
        posts = gpd.GeoDataFrame({"code": ["VR0002"], "name": ["东片警务室"], "level": ["village_room"]},
                                 geometry=[shapely.Point(X0 + 0.7 * D, Y0 + 0.5 * D)], crs=4326)  # fmt: skip
        import_frame(session, "posts", posts)
        for (lon, lat), status in zip(events, statuses, strict=True):
            session.execute(
                text(
                    "INSERT INTO events (geom, category_code, status, occurred_at) "
                    "VALUES (ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 'city_management', :s, now())"
                ),
                {"lon": lon, "lat": lat, "s": status},
            )
        assign_places(session)
        assign_departments(session, load_router(session, current_version_id(session), ROUTING))
        wkb = shapely.to_wkb(shapely.set_srid(shapely.points(population), 4326), hex=True, include_srid=True)
        copy_rows(session, "population", ["count", "geom"], zip(counts, wkb, strict=True))
    return {"places": places, "events": events, "statuses": statuses, "population": population, "counts": counts}


@pytest.fixture
def client(empty_db: Engine, city: dict):
    with TestClient(create_app(engine=empty_db, routing=RoutingSettings(version_check_s=0.2))) as client:
        yield client


def make_draft(client: TestClient, auth: dict[str, str]) -> int:
    draft = new_draft(client, auth)
    area = box(X0 + 0.6 * D, Y0 - 0.001, X0 + D, Y0 + D + 0.001)
    edit(client, auth, draft, {"op": "move_boundary", "from_grid": WEST + "001", "to_grid": WEST + "002",
                               "area": geojson(area)})  # fmt: skip
    line = shapely.LineString([(X0 + 2.9 * D, Y0 + 0.3 * D), (X0 + 4.1 * D, Y0 + 0.3 * D)])
    edit(client, auth, draft, {"op": "split", "grid": EAST + "002", "line": geojson(line)})
    return draft


def test_impact_matches_an_independent_computation(client: TestClient, empty_db: Engine, city: dict):
    auth = sign_in(client, empty_db, Role.planner)
    draft = make_draft(client, auth)
    response = client.get(f"/v1/boundary-versions/{draft}/impact", headers=auth)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["base"]["id"] == 1 and report["draft"]["id"] == draft

    # Grids: which changed, and by how much (geodesic areas; the service measures in EPSG:4549).
    assert [g["code"] for g in report["grids"]["added"]] == [EAST + "003"]
    assert report["grids"]["removed"] == []
    changed = {g["code"]: g for g in report["grids"]["changed"]}
    assert sorted(changed) == [WEST + "001", WEST + "002", EAST + "002"]
    for code, grid in changed.items():
        before, after = geodesic_m2(BEFORE[code]), geodesic_m2(AFTER[code])
        assert grid["area_before_m2"] == pytest.approx(before, rel=1e-3)
        assert grid["area_after_m2"] == pytest.approx(after, rel=1e-3)
        assert grid["area_change_m2"] == pytest.approx(after - before, rel=1e-3)
        assert grid["area_change_pct"] == pytest.approx(100 * (after - before) / before, abs=0.05)
        assert grid["fields"] == ["geometry"]
    assert report["grids"]["added"][0]["area_after_m2"] == pytest.approx(geodesic_m2(AFTER[EAST + "003"]), rel=1e-3)

    # Places (a polygon place by a point on its surface) and posts.
    expected_places = {
        f"P{k:03d}": (owner(BEFORE, lon, lat), owner(AFTER, lon, lat))
        for k, (lon, lat) in enumerate(city["places"])
        if owner(BEFORE, lon, lat) != owner(AFTER, lon, lat)
    }
    expected_places["MARKET"] = (WEST + "001", WEST + "002")
    assert {p["code"]: (p["from"]["grid_code"], p["to"]["grid_code"]) for p in report["places"]} == expected_places
    assert len(expected_places) >= 5
    moved_post = {p["code"]: p for p in report["posts"]}
    assert list(moved_post) == ["VR0002"]
    assert moved_post["VR0002"]["from"] == {"grid_code": WEST + "001", "workers": ["张三", "李四"], "officer": "王警官"}
    assert moved_post["VR0002"]["to"] == {"grid_code": WEST + "002", "workers": ["赵五"], "officer": "王警官"}

    # Open events only, each with what publishing will do with it.
    expected_events = {
        (round(lon, 9), round(lat, 9), status, OPEN[status], owner(BEFORE, lon, lat), owner(AFTER, lon, lat))
        for (lon, lat), status in zip(city["events"], city["statuses"], strict=True)
        if status in OPEN and owner(BEFORE, lon, lat) != owner(AFTER, lon, lat)
    }
    got = {(round(e["lon"], 9), round(e["lat"], 9), e["status"], e["action"], e["from"]["grid_code"],
            e["to"]["grid_code"]) for e in report["events"]}  # fmt: skip
    assert got == expected_events and len(got) >= 5
    assert report["summary"]["events"] == {
        "reroute": sum(e[3] == "reroute" for e in expected_events),
        "keep": sum(e[3] == "keep" for e in expected_events),
    }

    # People moved between grids.
    flows: dict[tuple[str, str], float] = {}
    for (lon, lat), count in zip(city["population"], city["counts"], strict=True):
        old, new = owner(BEFORE, lon, lat), owner(AFTER, lon, lat)
        if old != new:
            flows[(old, new)] = flows.get((old, new), 0.0) + count
    assert {(f["from_grid"], f["to_grid"]): f["people"] for f in report["population"]["flows"]} == flows
    assert report["summary"]["population_moved"] == pytest.approx(sum(flows.values()))


def test_impact_as_csv_and_geojson(client: TestClient, empty_db: Engine):
    auth = sign_in(client, empty_db, Role.dispatcher)  # dispatchers may look at drafts
    planner = sign_in(client, empty_db, Role.planner)
    draft = make_draft(client, planner)
    report = client.get(f"/v1/boundary-versions/{draft}/impact", headers=auth).json()

    as_csv = client.get(f"/v1/boundary-versions/{draft}/impact", params={"format": "csv"}, headers=auth)
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    by_item: dict[str, list[dict]] = {}
    for row in rows:
        by_item.setdefault(row["item"], []).append(row)
    assert len(by_item["grid"]) == 4 and len(by_item["place"]) == len(report["places"])
    assert len(by_item["post"]) == 1 and len(by_item["event"]) == len(report["events"])
    assert sum(float(r["people"]) for r in by_item["population"]) == pytest.approx(
        report["summary"]["population_moved"]
    )
    west = next(r for r in by_item["grid"] if r["code"] == WEST + "001")
    assert float(west["area_change_pct"]) == pytest.approx(-40.0, abs=0.01)

    as_map = client.get(f"/v1/boundary-versions/{draft}/impact", params={"format": "geojson"}, headers=auth)
    assert as_map.headers["content-type"].startswith("application/geo+json")
    layers = [f["properties"]["layer"] for f in as_map.json()["features"]]
    assert layers.count("grids") == 4 and layers.count("events") == len(report["events"])
    grid = next(f for f in as_map.json()["features"] if f["properties"].get("code") == EAST + "003")
    assert shapely.equals(shapely.geometry.shape(grid["geometry"]), AFTER[EAST + "003"])
    bad = client.get(f"/v1/boundary-versions/{draft}/impact", params={"format": "xlsx"}, headers=auth)
    assert bad.status_code == 422


def test_a_scoped_reader_sees_people_and_events_of_their_jurisdiction_only(client: TestClient, empty_db: Engine):
    """A dispatcher of East village reads a draft that also redraws West: West is codes and outlines only."""
    planner = sign_in(client, empty_db, Role.planner)
    east = sign_in(client, empty_db, Role.dispatcher, "east-disp", region_code=EAST)
    draft = make_draft(client, planner)
    full = client.get(f"/v1/boundary-versions/{draft}/impact", headers=planner).json()
    mine = client.get(f"/v1/boundary-versions/{draft}/impact", headers=east).json()

    # Every changed grid is still there (the draft is the whole city's), West's without its team.
    assert [g["code"] for g in mine["grids"]["changed"]] == [g["code"] for g in full["grids"]["changed"]]
    for grid in mine["grids"]["changed"] + mine["grids"]["added"]:
        if not grid["code"].startswith(EAST):
            assert "workers" not in grid["before"] and "officer" not in grid["before"]
    # Moves and events only where East is involved; each listed event is one East may open.
    assert any(not p["from"]["grid_code"].startswith(EAST) for p in full["places"])
    assert all(EAST in (p["from"]["grid_code"][:12], p["to"]["grid_code"][:12]) for p in mine["places"])
    assert mine["posts"] == []  # the West police room moves between two West grids
    east_events = {e["id"] for e in full["events"] if e["from"]["grid_code"].startswith(EAST)}
    assert {e["id"] for e in mine["events"]} == east_events and len(east_events) < len(full["events"])
    for event in mine["events"]:
        assert client.get(f"/v1/events/{event['id']}", headers=east).status_code == 200
    flows = mine["population"]["flows"]
    assert flows and all(EAST in ((f["from_grid"] or "")[:12], (f["to_grid"] or "")[:12]) for f in flows)

    # The same in the exports and the map, and in the version's grids and the diff.
    for fmt in ("csv", "geojson"):
        text_ = client.get(f"/v1/boundary-versions/{draft}/impact", params={"format": fmt}, headers=east).text
        assert "张三" not in text_ and "王警官" not in text_ and "赵五" not in text_
    layers = [f["properties"]["layer"] for f in client.get(
        f"/v1/boundary-versions/{draft}/impact", params={"format": "geojson"}, headers=east).json()["features"]]
    assert layers.count("events") == len(east_events)
    grids = client.get(f"/v1/boundary-versions/{draft}/grids", headers=east).json()["features"]
    team = {f["properties"]["code"]: f["properties"]["workers"] for f in grids}
    assert team[EAST + "001"] == ["钱六"] and team[WEST + "001"] is None
    diff = client.get(f"/v1/boundary-versions/1/diff/{draft}", headers=east).text
    assert "张三" not in diff and "王警官" not in diff
    assert "张三" in client.get(f"/v1/boundary-versions/1/diff/{draft}", headers=planner).text
