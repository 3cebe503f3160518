"""Coverage figures on a crafted city where every area, count and distance is known in advance."""

import math
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from geoservice.boundaries.units import UnknownRegion
from geoservice.coverage.crosscheck import FIELDS, postgis_figures
from geoservice.coverage.output import places_csv, report_csv, report_geojson, report_json
from geoservice.coverage.rings import RINGS
from geoservice.coverage.service import coverage_report
from geoservice.infra.database import make_engine, transaction
from geoservice.infra.embedded import EmbeddedCluster
from tests.conftest import clone_template, drop_database
from tests.geoservice.coverage_city import AS_OF, CITY, EAST, RING, TOWN, WEST, load_coverage_city, polygon_area


@pytest.fixture(scope="module")
def city(cluster: EmbeddedCluster) -> Iterator[Engine]:
    """The crafted city, loaded once for the read-only tests of this module."""
    engine = make_engine(clone_template(cluster, "t_coverage_city"))
    load_coverage_city(engine)
    yield engine
    engine.dispose()
    drop_database(cluster, "t_coverage_city")


def report_of(engine: Engine, region: str = TOWN, **kwargs):
    with transaction(engine) as session:
        return coverage_report(session, region, as_of=AS_OF, radii_m=RING, **kwargs)


def test_area_shares_are_exact(city: Engine):
    report = report_of(city)
    assert [c.code for c in report.children] == [WEST, EAST] and report.child_level == "community"
    town, west, east = report.region.levels, report.children[0].levels, report.children[1].levels
    ring_1km, ring_100m = polygon_area(1_000) / 1e6, polygon_area(100) / 1e6
    assert town["central_room"].area_km2 == pytest.approx(32.0, rel=1e-9)
    assert town["central_room"].covered_km2 == pytest.approx(ring_1km, rel=1e-7)
    assert west["central_room"].covered_km2 == pytest.approx(ring_1km, rel=1e-7)
    assert east["central_room"].covered_km2 == pytest.approx(0.0, abs=1e-12)
    # The 128-gon is within 0.1 % of the true circle: πr² inside a 16 km² community.
    assert west["central_room"].area_share == pytest.approx(math.pi / 16, rel=1e-3)
    assert town["central_room"].area_share == pytest.approx(math.pi / 32, rel=1e-3)
    assert east["village_room"].covered_km2 == pytest.approx(ring_100m, rel=1e-7)
    assert town["station"].area_share == pytest.approx(1.0, rel=1e-12)


def test_people_places_and_events_are_counted_by_exact_distance(city: Engine):
    report = report_of(city)
    town, west, east = report.region.levels, report.children[0].levels, report.children[1].levels
    assert (town["central_room"].population, town["central_room"].population_covered) == (200, 100)
    assert town["central_room"].population_share == 0.5
    assert (west["central_room"].population, west["central_room"].population_covered) == (150, 100)
    assert (east["village_room"].population, east["village_room"].population_covered) == (50, 30)
    assert town["station"].population_share == 1.0
    # Four key places in the town (the fifth is across the border); a mall 900 m away is inside.
    assert (town["central_room"].places, town["central_room"].places_outside) == (4, 2)
    assert (west["central_room"].places, west["central_room"].places_outside) == (3, 1)
    assert (town["village_room"].places_outside, town["station"].places_outside) == (4, 0)
    outside = {(p.level, p.code): p for p in report.places_outside}
    assert outside[("central_room", "KP2")].distance_m == pytest.approx(1_100.0, abs=1e-6)
    assert outside[("central_room", "KP2")].post_code == "CR0001"
    assert outside[("central_room", "KP4")].distance_m == pytest.approx(math.hypot(5000, 1000), abs=1e-6)
    assert outside[("central_room", "KP4")].unit_code == EAST
    assert ("central_room", "KP3") not in outside and ("central_room", "KP1") not in outside
    # Events of the twelve months before AS_OF: three (the fourth is older).
    assert (town["central_room"].events, town["central_room"].events_outside) == (3, 2)
    assert (east["central_room"].events, east["central_room"].events_outside) == (1, 1)
    assert (town["village_room"].events_outside, town["station"].events_outside) == (2, 0)


def test_children_add_up_to_the_region(city: Engine):
    report = report_of(city, region=CITY)
    assert [c.code for c in report.children] == [TOWN]
    for level, f in report.region.levels.items():
        t = report.children[0].levels[level]
        assert (f.population, f.places, f.events) == (t.population, t.places, t.events)
        assert f.covered_km2 == pytest.approx(t.covered_km2, rel=1e-9)


def test_postgis_agrees_exactly_here(city: Engine):
    report = report_of(city)
    with transaction(city) as session:
        other = postgis_figures(session, TOWN, AS_OF, RING)
    for unit in [report.region, *report.children]:
        for level, f in unit.levels.items():
            for field in FIELDS:
                assert getattr(f, field) == pytest.approx(other[(unit.code, level)][field], rel=1e-9, abs=1e-12)


def test_a_grid_is_a_region_without_children(city: Engine):
    report = report_of(city, region=WEST + "001")
    assert report.children == [] and report.region.level == "grid"
    assert report.region.levels["central_room"].population == 150
    assert [g.unit_code for g in report.gaps if g.level == "central_room"] == [WEST + "001"]


def test_level_filter_and_outputs(city: Engine):
    report = report_of(city, levels=["central_room"])
    assert report.levels == ["central_room"] and list(report.region.levels) == ["central_room"]
    gaps = report_geojson(report)
    assert [f["properties"]["unit_code"] for f in gaps["features"]] == [WEST, EAST]
    assert gaps["features"][0]["geometry"]["type"] == "Polygon"  # the west square with a round hole
    assert len(gaps["features"][0]["geometry"]["coordinates"]) == 2
    assert gaps["features"][1]["properties"]["gap_km2"] == pytest.approx(16.0, rel=1e-6)
    rows = report_csv(report).splitlines()
    assert rows[0].startswith("code,name,unit_level,role,level") and len(rows) == 1 + 3
    assert rows[1].startswith(f"{TOWN},演示镇,town,region,central_room,1000.0,32.0,")
    assert "KP4" in places_csv(report)
    body = report_json(report)
    assert body["region"] == {"code": TOWN, "name": "演示镇", "level": "town"}
    assert body["metric_crs"] == "EPSG:4549" and body["population_loaded"] is True


def test_without_a_population_layer_people_are_blank(empty_db: Engine):
    load_coverage_city(empty_db, people=False)
    report = report_of(empty_db)
    f = report.region.levels["central_room"]
    assert f.population is None and f.population_share is None and report.population_loaded is False
    assert report_json(report)["region_figures"]["levels"]["central_room"]["population_share"] is None


def test_moving_a_post_changes_the_rings(empty_db: Engine):
    load_coverage_city(empty_db)
    before = report_of(empty_db).children[1].levels["central_room"]
    with transaction(empty_db) as session:  # move the central room into the east community
        session.execute(text("UPDATE police_posts SET geom = ST_Translate(geom, 0.05, 0) WHERE code = 'CR0001'"))
    after = report_of(empty_db).children[1].levels["central_room"]
    assert before.covered_km2 == 0 and after.covered_km2 > 0  # not the cached rings of the old posts
    assert len(RINGS) <= 16


def test_unknown_region(city: Engine):
    with pytest.raises(UnknownRegion, match="no region or grid has code '320682999999'"):
        report_of(city, region="320682999999")
