"""Importers on good and bad files: every kind of bad input is named, and nothing is written."""

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
from shapely import MultiPolygon, Point, Polygon
from sqlalchemy import Engine, text

from etl.load import ImportRejected, import_layer
from etl.reference import load_reference_data
from etl.writers import read_layer, write_layer
from geoservice.boundaries.publish import publish
from geoservice.infra.database import transaction
from layers.crs import wgs84_to_bd09, wgs84_to_gcj02
from tests.etl import tiny_city
from tests.etl.tiny_city import EAST, WEST, write
from tests.settings import PUBLISHING


def load(engine: Engine, layer: str, path: Path, **options) -> int:
    with transaction(engine) as session:
        return import_layer(session, layer, path, **options).count


def rejected(engine: Engine, layer: str, path: Path, **options) -> list[str]:
    with pytest.raises(ImportRejected) as caught:
        load(engine, layer, path, **options)
    return [str(e) for e in caught.value.errors]


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


@pytest.fixture
def with_regions(empty_db: Engine, tmp_path: Path) -> Engine:
    load(empty_db, "regions", write(tiny_city.regions(), tmp_path / "regions.geojson"), version="v1")
    return empty_db


# --- good files -------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".geojson", ".gpkg", ".shp"])
def test_grids_load_from_every_vector_format(with_regions: Engine, tmp_path: Path, suffix: str):
    assert load(with_regions, "grids", write(tiny_city.grids(), tmp_path / f"grids{suffix}"), version="v1") == 4
    with with_regions.connect() as conn:
        row = conn.execute(
            text("SELECT workers, officer, ST_Area(geom::geography) FROM grids WHERE code = :c"),
            {"c": WEST + "001"},
        ).one()
    assert row[0] == ["张三", "李四"] and row[1] == "王警官"
    assert row[2] == pytest.approx(0.01 * 111_320 * 0.01 * 111_320 * np.cos(np.radians(32.305)), rel=0.01)


def test_posts_load_from_csv(empty_db: Engine, tmp_path: Path):
    frame = tiny_city.posts()
    table = pd.DataFrame({"lon": frame.geometry.x, "lat": frame.geometry.y, "code": frame.code, "name": frame.name,
                          "level": frame.level, "phone": ["110", ""]})  # fmt: skip
    table.to_csv(tmp_path / "posts.csv", index=False)
    assert load(empty_db, "posts", tmp_path / "posts.csv") == 2
    with empty_db.connect() as conn:
        props = conn.execute(text("SELECT properties FROM police_posts WHERE code = 'PS001'")).scalar_one()
    assert props == {"phone": "110"}  # extra columns are kept; empty values dropped


def test_import_goes_into_a_draft_and_publish_puts_it_in_force(with_regions: Engine, tmp_path: Path):
    load(with_regions, "grids", write(tiny_city.grids(), tmp_path / "grids.geojson"), version="v1")
    with transaction(with_regions) as session:
        assert session.execute(text("SELECT status::text FROM boundary_versions")).scalar_one() == "draft"
        info = publish(session, "v1", **PUBLISHING)
    assert info.status == "published" and info.grids == 4
    with pytest.raises(ImportRejected, match="nothing was loaded") as caught:
        load(with_regions, "grids", tmp_path / "grids.geojson", version="v1")
    assert "is published" in str(caught.value.errors[0])


def test_reimporting_posts_upserts_by_code(empty_db: Engine, tmp_path: Path):
    path = write(tiny_city.posts(), tmp_path / "posts.geojson")
    load(empty_db, "posts", path)
    renamed = tiny_city.posts().assign(name=["新派出所", "西村警务室"])
    load(empty_db, "posts", write(renamed, tmp_path / "posts2.geojson"))
    with empty_db.connect() as conn:
        assert conn.execute(text("SELECT name FROM police_posts WHERE code = 'PS001'")).scalar_one() == "新派出所"
    assert count(empty_db, "police_posts") == 2


def test_events_import_is_idempotent_and_places_events(with_regions: Engine, tmp_path: Path):
    load(with_regions, "grids", write(tiny_city.grids(), tmp_path / "grids.geojson"), version="v1")
    with transaction(with_regions) as session:
        publish(session, "v1", pd.Timestamp("2025-01-01T00:00+08:00").to_pydatetime(), **PUBLISHING)
        load_reference_data(session)
    pd.DataFrame(
        {"id": ["a1", "a2"], "lon": [120.505, 120.535], "lat": [32.305, 32.305],
         "category": ["city_management.stall", "environment.noise"],
         "occurred_at": ["2026-03-01T09:30:00+08:00", "2026-03-02T10:00:00"]}
    ).to_csv(tmp_path / "events.csv", index=False)  # fmt: skip
    from geoservice.routing.bulk_events import assign_places

    for _ in range(2):
        with transaction(with_regions) as session:
            import_layer(session, "events", tmp_path / "events.csv")
            assign_places(session)
    with with_regions.connect() as conn:
        rows = conn.execute(text("SELECT grid_code, town_code, occurred_at FROM events ORDER BY grid_code")).all()
    assert [r.grid_code for r in rows] == [WEST + "001", EAST + "002"]
    assert {r.town_code for r in rows} == {tiny_city.TOWN}
    assert rows[1].occurred_at.utcoffset().total_seconds() == 0  # stored as UTC …
    assert rows[1].occurred_at.hour == 2  # … and the naive 10:00 was read as China time (UTC+8)


def test_historic_events_get_one_log_row_per_step_at_its_time(empty_db: Engine, tmp_path: Path):
    with transaction(empty_db) as session:
        load_reference_data(session)
    pd.DataFrame(
        {"id": ["h1", "h2", "h3"], "lon": [120.505] * 3, "lat": [32.305] * 3,
         "category": ["city_management.stall"] * 3, "status": ["archived", "reported", "rejected"],
         "occurred_at": ["2026-03-01T09:00:00+08:00", "2026-03-02T09:00:00+08:00", "2026-03-03T09:00:00+08:00"],
         "accepted_at": ["2026-03-01T09:20:00+08:00", "", ""], "dispatched_at": ["2026-03-01T09:40:00+08:00", "", ""],
         "handling_at": ["2026-03-01T10:00:00+08:00", "", ""], "handled_at": ["2026-03-01T15:00:00+08:00", "", ""],
         "verified_at": ["2026-03-02T08:00:00+08:00", "", ""], "archived_at": ["2026-03-02T12:00:00+08:00", "", ""]}
    ).to_csv(tmp_path / "history.csv", index=False)  # fmt: skip
    load(empty_db, "events", tmp_path / "history.csv")
    load(empty_db, "events", tmp_path / "history.csv")  # stored once, logged once
    with empty_db.connect() as conn:
        log = conn.execute(
            text("SELECT substr(e.idempotency_key, 8), l.action, l.from_status, l.to_status, "
                 "to_char(l.at AT TIME ZONE 'Asia/Shanghai', 'MM-DD HH24:MI') FROM event_log l "
                 "JOIN events e ON e.id = l.event_id ORDER BY l.id")
        ).all()  # fmt: skip
    assert [tuple(r) for r in log] == [
        ("h1", "report", None, "reported", "03-01 09:00"),
        ("h1", "accept", "reported", "accepted", "03-01 09:20"),
        ("h1", "dispatch", "accepted", "dispatched", "03-01 09:40"),
        ("h1", "start", "dispatched", "handling", "03-01 10:00"),
        ("h1", "feedback", "handling", "handled", "03-01 15:00"),
        ("h1", "verify", "handled", "verified", "03-02 08:00"),
        ("h1", "archive", "verified", "archived", "03-02 12:00"),
        ("h2", "report", None, "reported", "03-02 09:00"),
        ("h3", "report", None, "reported", "03-03 09:00"),
        ("h3", "reject", "reported", "rejected", "03-03 09:00"),
    ]


# --- CRS ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("crs", "forward"), [("gcj02", wgs84_to_gcj02), ("bd09", wgs84_to_bd09)])
def test_chinese_sdk_coordinates_are_stored_as_wgs84(empty_db: Engine, tmp_path: Path, crs, forward):
    true_lon, true_lat = 120.5712, 32.3918
    lon, lat = forward(true_lon, true_lat)
    pd.DataFrame({"lon": [float(lon)], "lat": [float(lat)], "code": ["PS9"], "name": ["x"], "level": ["station"]}
                 ).to_csv(tmp_path / "p.csv", index=False)  # fmt: skip
    load(empty_db, "posts", tmp_path / "p.csv", crs=crs)
    with empty_db.connect() as conn:
        x, y = conn.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM police_posts")).one()
    _, _, metres = pyproj.Geod(ellps="WGS84").inv(x, y, true_lon, true_lat)
    assert metres < 0.01
    assert shapely.distance(Point(float(lon), float(lat)), Point(x, y)) > 0.001  # the offset was real


def test_a_declared_projected_crs_is_honoured(empty_db: Engine, tmp_path: Path):
    posts = tiny_city.posts().to_crs(4549)
    write(posts, tmp_path / "posts.gpkg")
    load(empty_db, "posts", tmp_path / "posts.gpkg")
    with empty_db.connect() as conn:
        x, y = conn.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM police_posts WHERE code = 'PS001'")).one()
    expected = tiny_city.posts().geometry.iloc[0]
    assert (x, y) == pytest.approx((expected.x, expected.y), abs=1e-8)


def test_a_crs_that_contradicts_the_file_is_refused(empty_db: Engine, tmp_path: Path):
    write(tiny_city.posts().to_crs(4549), tmp_path / "posts.gpkg")
    from etl.readers import ReadError

    with pytest.raises(ReadError, match="declares EPSG:4549 but --crs gcj02"):
        load(empty_db, "posts", tmp_path / "posts.gpkg", crs="gcj02")
    assert count(empty_db, "police_posts") == 0


# --- bad files: one test per kind, each checks the message and that nothing was written ------------------
def test_missing_required_field(with_regions: Engine, tmp_path: Path):
    path = write(tiny_city.grids().drop(columns=["community_code"]), tmp_path / "g.geojson")
    errors = rejected(with_regions, "grids", path, version="v1")
    assert errors == [
        f"required field(s) missing: community_code (the file has: {', '.join(['code', 'name', 'workers', 'officer'])})"
    ]
    assert count(with_regions, "grids") == 0


def test_empty_required_value(with_regions: Engine, tmp_path: Path):
    frame = tiny_city.grids()
    frame.loc[1, "name"] = ""
    errors = rejected(with_regions, "grids", write(frame, tmp_path / "g.geojson"), version="v1")
    assert errors == [f"feature 1 (code {WEST}002): 'name' is empty"]
    assert count(with_regions, "grids") == 0


def test_wrong_geometry_type(empty_db: Engine, tmp_path: Path):
    frame = tiny_city.posts()
    frame.loc[0, "geometry"] = tiny_city.square(0)
    errors = rejected(empty_db, "posts", write(frame, tmp_path / "p.gpkg"))
    assert errors == ["feature 0 (code PS001): geometry is a MultiPolygon; this layer takes Point"]
    assert count(empty_db, "police_posts") == 0


def test_out_of_range_and_swapped_coordinates(empty_db: Engine, tmp_path: Path):
    pd.DataFrame({"lon": [32.39, 200.0, 120.5], "lat": [120.57, 10.0, 32.4], "code": ["a", "b", "c"],
                  "name": ["a", "b", "c"], "level": ["station"] * 3}).to_csv(tmp_path / "p.csv", index=False)  # fmt: skip
    errors = rejected(empty_db, "posts", tmp_path / "p.csv")
    assert len(errors) == 2
    assert errors[0].startswith("feature 0 (code a): coordinates out of range") and "look swapped" in errors[0]
    assert errors[1].startswith("feature 1 (code b): coordinates out of range") and "--crs" in errors[1]
    assert count(empty_db, "police_posts") == 0


def test_unreadable_csv_coordinates(empty_db: Engine, tmp_path: Path):
    pd.DataFrame({"lon": ["120.5", "东经120"], "lat": ["32.4", "32.4"], "code": ["a", "b"], "name": ["a", "b"],
                  "level": ["station", "station"]}).to_csv(tmp_path / "p.csv", index=False)  # fmt: skip
    errors = rejected(empty_db, "posts", tmp_path / "p.csv")
    assert errors == ["feature 1 (code b): lon/lat '东经120', '32.4' are not numbers"]
    assert count(empty_db, "police_posts") == 0


BOWTIE = MultiPolygon([Polygon([(120.50, 32.30), (120.51, 32.31), (120.51, 32.30), (120.50, 32.31)])])


def test_self_intersection_and_duplicate_code_are_both_named(with_regions: Engine, tmp_path: Path):
    frame = tiny_city.grids()
    frame.loc[0, "geometry"] = BOWTIE
    frame.loc[3, "code"] = frame.loc[2, "code"]
    errors = rejected(with_regions, "grids", write(frame, tmp_path / "g.geojson"), version="v1")
    assert errors[0].startswith(f"feature 0 (code {WEST}001): invalid geometry: Self-intersection")
    assert errors[1] == f"feature 3 (code {EAST}001): duplicate code: also used by feature 2"
    assert count(with_regions, "grids") == 0


def test_fix_repairs_invalid_geometry_and_reports_it(empty_db: Engine, tmp_path: Path):
    places = gpd.GeoDataFrame({"code": ["KP1"], "name": ["学校"], "type": ["school"]}, geometry=[BOWTIE], crs=4326)
    path = write(places, tmp_path / "places.geojson")
    assert "invalid geometry" in rejected(empty_db, "places", path)[0]
    with transaction(empty_db) as session:
        report = import_layer(session, "places", path, fix=True)
    assert report.count == 1
    assert "repaired Self-intersection" in str(report.repairs[0]) and "MultiPolygon" in str(report.repairs[0])
    with empty_db.connect() as conn:
        assert conn.execute(text("SELECT ST_IsValid(geom) FROM key_places")).scalar_one()


def test_overlapping_grids(with_regions: Engine, tmp_path: Path):
    frame = tiny_city.grids()
    frame.loc[1, "geometry"] = MultiPolygon([shapely.box(120.505, 32.30, 120.52, 32.31)])
    errors = rejected(with_regions, "grids", write(frame, tmp_path / "g.geojson"), version="v1")
    assert any(e.startswith(f"feature 0 (code {WEST}001): overlaps grid {WEST}002 by ") for e in errors)
    assert count(with_regions, "grids") == 0


def test_gap_inside_a_community(with_regions: Engine, tmp_path: Path):
    frame = tiny_city.grids()
    frame.loc[1, "geometry"] = MultiPolygon([shapely.box(120.512, 32.30, 120.52, 32.31)])  # 0.002° short
    errors = rejected(with_regions, "grids", write(frame, tmp_path / "g.geojson"), version="v1")
    assert len(errors) == 1
    assert f"grids of community {WEST} leave a gap of" in errors[0] and "near lon 120.51" in errors[0]
    area = float(errors[0].split("gap of ")[1].split(" m²")[0].replace(",", ""))
    assert area == pytest.approx(0.002 * 0.01 * 111_320**2 * np.cos(np.radians(32.305)), rel=0.02)
    assert count(with_regions, "grids") == 0


def test_unknown_community_and_bad_codes(with_regions: Engine, tmp_path: Path):
    frame = tiny_city.grids()
    frame.loc[0, "community_code"] = "320682100299"
    frame.loc[1, "code"] = "3206821002"
    frame.loc[2, "code"] = WEST + "009"
    errors = rejected(with_regions, "grids", write(frame, tmp_path / "g.geojson"), version="v1")
    assert errors == [
        f"feature 0 (code {WEST}001): grid code does not start with its community_code 320682100299",
        f"feature 0 (code {WEST}001): community_code 320682100299 is not a community of this boundary version",
        "feature 1 (code 3206821002): grid codes have 15 digits (community code + serial)",
        f"feature 2 (code {WEST}009): grid code does not start with its community_code {EAST}",
    ]


def test_region_parent_must_exist_and_be_one_level_up(empty_db: Engine, tmp_path: Path):
    frame = tiny_city.regions()
    frame.loc[2, "parent_code"] = tiny_city.CITY
    frame.loc[3, "parent_code"] = "320682999000"
    errors = rejected(empty_db, "regions", write(frame, tmp_path / "r.geojson"), version="v1")
    assert errors == [
        f"feature 2 (code {WEST}): a community's parent must be a town, {tiny_city.CITY} is a city",
        f"feature 3 (code {EAST}): parent_code 320682999000 is neither in the file nor loaded",
    ]
    assert count(empty_db, "regions") == 0 and count(empty_db, "boundary_versions") == 0


def test_station_area_of_an_unknown_station(empty_db: Engine, tmp_path: Path):
    areas = gpd.GeoDataFrame({"code": ["PS404"]}, geometry=[tiny_city.square(0)], crs=4326)
    errors = rejected(empty_db, "station_areas", write(areas, tmp_path / "a.geojson"))
    assert errors == ["feature 0 (code PS404): is not the code of a loaded police station (import posts first)"]


def test_bad_event_rows(empty_db: Engine, tmp_path: Path):
    with transaction(empty_db) as session:
        load_reference_data(session)
    pd.DataFrame({"lon": [120.5] * 3, "lat": [32.3] * 3, "category": ["environment.noise", "weather", "environment.noise"],
                  "occurred_at": ["yesterday", "2026-01-01T00:00:00+08:00", "2026-01-01"],
                  "status": ["", "", "lost"]}).to_csv(tmp_path / "e.csv", index=False)  # fmt: skip
    errors = rejected(empty_db, "events", tmp_path / "e.csv")
    assert errors == [
        "feature 0: occurred_at 'yesterday' is not an ISO 8601 time",
        "feature 1: category 'weather' is not a known category",
        "feature 2: status 'lost' is not one of reported, accepted, rejected, dispatched, returned, handling, "
        "handled, verified, reopened, archived, evaluated",
    ]
    assert count(empty_db, "events") == 0


def test_unknown_layer_and_format(empty_db: Engine, tmp_path: Path):
    with pytest.raises(ValueError, match="unknown layer 'roads'; layers are: regions, grids"):
        load(empty_db, "roads", write(tiny_city.posts(), tmp_path / "p.geojson"))
    (tmp_path / "p.kml").write_text("<kml/>")
    with pytest.raises(ValueError, match="unsupported format '.kml'"):
        load(empty_db, "posts", tmp_path / "p.kml")


# --- export ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".gpkg", ".geojson", ".shp"])
def test_export_then_import_round_trips(with_regions: Engine, tmp_path: Path, suffix: str):
    load(with_regions, "grids", write(tiny_city.grids(), tmp_path / "grids.geojson"), version="v1")
    with transaction(with_regions) as session:
        version = session.execute(text("SELECT id FROM boundary_versions")).scalar_one()
        exported = read_layer(session, "grids", version)
    write_layer(exported, tmp_path / f"out{suffix}")
    back = gpd.read_file(tmp_path / f"out{suffix}")
    original = tiny_city.grids()
    assert list(back["code"]) == list(original["code"])
    assert list(back["workers"].fillna("")) == list(original["workers"])
    # GeoJSON writes 15 significant digits (32.309999999999995 comes back as 32.31); Shapefiles turn
    # rings clockwise and single-part MultiPolygons into Polygons. The shapes themselves are unchanged.
    distances = [shapely.hausdorff_distance(a, b) for a, b in zip(back.geometry, original.geometry, strict=True)]
    assert max(distances) < 1e-12
