"""The demo-city builder: exact coverage, nesting, codes, counts, realism knobs, reproducibility."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from etl.codes import grid_serial_order, serials
from etl.demo import DemoCity, build_demo_city
from etl.demo.metric import demo_metric_epsg
from layers.crs import project

ROOT = Path(__file__).parents[2]
BOUNDARY = ROOT / "etl" / "data" / "320682.geojson"
CATEGORIES = ROOT / "etl" / "data" / "categories.csv"
SMALL = dict(n_towns=4, n_communities=30, n_grids=150, n_posts=40, n_places=120, n_events=1000)


def rugao() -> shapely.Geometry:
    return shapely.from_geojson(BOUNDARY.read_text())


def star(cx: float = 118.0, cy: float = 32.0, points: int = 7) -> shapely.Polygon:
    """An irregular county-sized star (lon/lat), rounded so it has curved stretches too."""
    angle = np.linspace(0, 2 * np.pi, 2 * points, endpoint=False)
    radius = np.where(np.arange(2 * points) % 2 == 0, 0.12, 0.06)
    xy = np.column_stack([cx + radius * np.cos(angle) / np.cos(np.radians(cy)), cy + radius * np.sin(angle)])
    return shapely.Polygon(xy).buffer(0.01)


@pytest.fixture(scope="module")
def city() -> DemoCity:
    return build_demo_city(rugao())


@pytest.fixture(scope="module")
def metric(city: DemoCity) -> dict[str, gpd.GeoDataFrame]:
    return {
        name: getattr(city, name).to_crs(city.metric_epsg)
        for name in ("regions", "grids", "posts", "station_areas", "places", "events")
    }


@pytest.fixture(scope="module")
def boundary_m(city: DemoCity) -> shapely.Geometry:
    return project(rugao(), city.metric_epsg)


def internal_segment_lengths(polygons: np.ndarray) -> np.ndarray:
    """Lengths of the segments two polygons share (matched at 1 mm), i.e. along internal edges."""
    rings = shapely.get_rings(shapely.get_parts(polygons))
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    same = ring[:-1] == ring[1:]
    a, b = coords[:-1][same], coords[1:][same]
    qa, qb = np.round(a * 1000).astype(np.int64), np.round(b * 1000).astype(np.int64)
    swap = (qa[:, 0] > qb[:, 0]) | ((qa[:, 0] == qb[:, 0]) & (qa[:, 1] > qb[:, 1]))
    keys = np.column_stack([np.where(swap[:, None], qb, qa), np.where(swap[:, None], qa, qb)])
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    shared = counts[inverse.ravel()] == 2
    return np.hypot(*(a[shared] - b[shared]).T)


# --- the metric CRS -----------------------------------------------------------------------------------
def test_metric_crs_is_the_3_degree_zone(city: DemoCity) -> None:
    assert city.metric_epsg == 4549  # Rugao, 120.57°E → CM 120°E
    assert demo_metric_epsg(118.0) == 4548
    assert demo_metric_epsg(75.2) == 4534 and demo_metric_epsg(134.9) == 4554
    for name in ("regions", "grids", "posts", "station_areas", "places", "events"):
        assert getattr(city, name).crs.to_epsg() == 4326


# --- grids: exact coverage that looks digitised -------------------------------------------------------
def test_grids_are_an_exact_coverage_of_the_city(metric: dict, boundary_m: shapely.Geometry) -> None:
    grids = metric["grids"].geometry.values
    assert shapely.is_valid(grids).all()
    assert set(shapely.get_type_id(grids)) == {shapely.GeometryType.MULTIPOLYGON}
    assert shapely.coverage_is_valid(grids)
    union = shapely.coverage_union_all(grids)
    assert abs(union.area - boundary_m.area) / boundary_m.area < 1e-6
    assert shapely.symmetric_difference(union, boundary_m).area / boundary_m.area < 1e-6
    assert shapely.area(grids).min() >= 5_000


def test_internal_edges_carry_a_vertex_every_20_to_30_m(metric: dict) -> None:
    lengths = internal_segment_lengths(metric["grids"].geometry.values)
    assert 20 <= np.median(lengths) <= 30
    assert np.percentile(lengths, 90) < 36


def test_outer_boundary_is_densified_but_keeps_its_shape(metric: dict, boundary_m: shapely.Geometry) -> None:
    city = metric["regions"].query("level == 'city'").geometry.iloc[0]
    segments = shapely.get_coordinates(shapely.get_exterior_ring(shapely.get_parts(city)[0]))
    steps = np.hypot(*np.diff(segments, axis=0).T)
    assert steps.max() <= 30.0 + 1e-6
    assert shapely.hausdorff_distance(city.boundary, boundary_m.boundary) < 0.05


def test_grids_are_smaller_in_the_centre_than_in_the_countryside(metric: dict) -> None:
    areas = shapely.area(metric["grids"].geometry.values)
    assert np.percentile(areas, 90) / np.percentile(areas, 10) > 8


# --- hierarchy -------------------------------------------------------------------------------------
def test_communities_and_towns_are_exact_unions(metric: dict) -> None:
    regions, grids = metric["regions"], metric["grids"]
    geoms = dict(zip(regions["code"], regions.geometry, strict=True))
    for code, members in grids.groupby("community_code"):
        union = shapely.coverage_union_all(members.geometry.values)
        assert shapely.symmetric_difference(union, geoms[code]).area < 1e-3, code
    communities = regions[regions["level"] == "community"]
    for code, members in communities.groupby("parent_code"):
        union = shapely.coverage_union_all(members.geometry.values)
        assert shapely.symmetric_difference(union, geoms[code]).area < 1e-3, code
    towns = regions[regions["level"] == "town"]
    city = regions[regions["level"] == "city"].geometry.iloc[0]
    assert shapely.coverage_is_valid(towns.geometry.values)
    assert shapely.symmetric_difference(shapely.coverage_union_all(towns.geometry.values), city).area < 1e-3


def test_nesting_and_levels(city: DemoCity) -> None:
    regions = city.regions
    level = dict(zip(regions["code"], regions["level"], strict=True))
    assert (regions["level"] == "city").sum() == 1
    assert regions.loc[regions["level"] == "city", "parent_code"].tolist() == [""]
    for row in regions.itertuples():
        if row.level == "town":
            assert level[row.parent_code] == "city"
        elif row.level == "community":
            assert level[row.parent_code] == "town"
            assert row.code.startswith(row.parent_code[:9])
    assert all(level.get(code) == "community" for code in city.grids["community_code"])
    assert set(shapely.get_type_id(regions.geometry.values)) == {shapely.GeometryType.MULTIPOLYGON}


def test_communities_are_contiguous(metric: dict) -> None:
    communities = metric["regions"].query("level == 'community'").geometry.values
    assert (shapely.get_num_geometries(communities) == 1).mean() > 0.97


def test_codes(city: DemoCity) -> None:
    regions, grids = city.regions, city.grids
    assert regions["code"].is_unique and grids["code"].is_unique
    assert regions["code"].str.fullmatch(r"\d{12}").all()
    assert grids["code"].str.fullmatch(r"\d{15}").all()
    assert (grids["code"].str[:12] == grids["community_code"]).all()
    assert regions.loc[regions["level"] == "city", "code"].iloc[0] == "320682000000"
    towns = regions[regions["level"] == "town"]
    streets = towns[towns["name"].str.endswith("街道")]
    assert sorted(streets["code"].str[6:9]) == ["001", "002", "003"]
    assert (towns.loc[~towns.index.isin(streets.index), "code"].str[6:9].astype(int) >= 100).all()
    assert set(towns["name"]) == {
        "如城街道", "城北街道", "城南街道", "东陈镇", "丁堰镇", "白蒲镇", "下原镇", "九华镇",
        "石庄镇", "长江镇", "吴窑镇", "江安镇", "搬经镇", "磨头镇",
    }  # fmt: skip
    assert regions.loc[regions["code"] == "320682001000", "name"].iloc[0] == "如城街道"
    communities = regions[regions["level"] == "community"]
    assert communities["name"].is_unique
    serial = communities["code"].str[9:].astype(int)
    villages = communities["name"].str.endswith("村")
    assert (serial[villages] >= 200).all() and (serial[~villages] < 200).all()
    assert communities["name"].str.fullmatch(r"..(社区|村)").all()
    community_name = dict(zip(communities["code"], communities["name"], strict=True))
    assert all(
        name.startswith(community_name[code]) for name, code in zip(grids["name"], grids["community_code"], strict=True)
    )
    staff = grids["workers"].str.split(";")
    assert staff.map(len).between(1, 3).all() and grids["officer"].str.len().between(2, 3).all()


def test_grid_serials_follow_reading_order(metric: dict) -> None:
    grids = metric["grids"]
    for _, members in list(grids.groupby("community_code"))[:40]:
        points = shapely.get_coordinates(shapely.point_on_surface(members.geometry.values))
        row = float(np.sqrt(shapely.area(members.geometry.values).mean()))
        expected = serials(points, row)
        assert (members["code"].str[12:].astype(int).to_numpy() == expected).all()


def test_grid_serial_order_numbers_a_lattice_in_reading_order() -> None:
    xs, ys = np.meshgrid([0.0, 1.0, 2.0], [0.0, 1.0, 2.0])
    points = np.column_stack([xs.ravel(), ys.ravel()])
    shuffled = np.random.default_rng(1).permutation(len(points))
    order = grid_serial_order(points[shuffled], row_height=0.9)
    read = points[shuffled][order]
    assert read.tolist() == [[0, 2], [1, 2], [2, 2], [0, 1], [1, 1], [2, 1], [0, 0], [1, 0], [2, 0]]
    jittered = points + np.random.default_rng(2).uniform(-0.1, 0.1, points.shape)
    assert grid_serial_order(jittered).tolist() == [6, 7, 8, 3, 4, 5, 0, 1, 2]
    assert grid_serial_order(np.zeros((0, 2))).tolist() == []


# --- counts --------------------------------------------------------------------------------------------
def test_counts(city: DemoCity) -> None:
    level = city.regions["level"].value_counts()
    assert level["town"] == 14
    assert 250 <= level["community"] <= 350
    assert 1_300 <= len(city.grids) <= 1_700
    assert 350 <= len(city.posts) <= 450
    assert 1_800 <= len(city.places) <= 2_200
    assert city.places["type"].nunique() >= 6
    assert len(city.events) == 50_000


# --- posts ----------------------------------------------------------------------------------------------
def test_posts(city: DemoCity, metric: dict) -> None:
    posts = city.posts
    assert posts["code"].is_unique
    pattern = {"station": r"PS\d{3}", "central_room": r"CR\d{4}", "village_room": r"VR\d{4}"}
    for level, regex in pattern.items():
        assert posts.loc[posts["level"] == level, "code"].str.fullmatch(regex).all()
    share = posts["level"].value_counts(normalize=True)
    assert 0.15 <= share["central_room"] <= 0.25
    n_stations = (posts["level"] == "station").sum()
    assert 14 <= n_stations <= 18
    assert set(city.station_areas["code"]) == set(posts.loc[posts["level"] == "station", "code"])
    assert (posts.loc[posts["level"] == "station", "name"].str.endswith("派出所")).all()
    assert "如城派出所" in set(posts["name"])
    city_m = metric["regions"].query("level == 'city'").geometry.iloc[0]
    assert shapely.contains(city_m, metric["posts"].geometry.values).all()


def test_station_areas_tile_the_city(metric: dict) -> None:
    areas = metric["station_areas"].geometry.values
    city = metric["regions"].query("level == 'city'").geometry.iloc[0]
    assert shapely.coverage_is_valid(areas)
    assert shapely.symmetric_difference(shapely.coverage_union_all(areas), city).area < 1e-3
    posts = metric["posts"].set_index("code")
    for code, area in zip(metric["station_areas"]["code"], areas, strict=True):
        assert area.contains(posts.loc[code].geometry), code


def test_village_rooms_leave_gaps_and_central_rooms_cover_the_towns(metric: dict) -> None:
    posts, regions = metric["posts"], metric["regions"]
    communities = regions[regions["level"] == "community"]
    rooms = posts[posts["level"] == "village_room"].geometry.values
    _, hit = shapely.STRtree(communities.geometry.values).query(rooms, predicate="within")
    assert 0.8 <= len(set(hit.tolist())) / len(communities) <= 0.97
    city = regions[regions["level"] == "city"].geometry.iloc[0]
    rings = shapely.union_all(shapely.buffer(posts[posts["level"] == "central_room"].geometry.values, 1_000))
    assert 0.05 < shapely.intersection(city, rings).area / city.area < 0.5


# --- places ---------------------------------------------------------------------------------------------
def test_places(city: DemoCity, metric: dict) -> None:
    places = metric["places"]
    assert places["code"].str.fullmatch(r"KP\d{5}").all() and places["code"].is_unique
    assert {"school", "hospital", "mall", "market", "rental_housing", "risk_source"} <= set(places["type"])
    polygons = places[places["type"].isin(["school", "mall"])]
    assert (polygons.geom_type == "Polygon").all()
    assert (places.loc[~places.index.isin(polygons.index)].geom_type == "Point").all()
    sides = np.sqrt(shapely.area(polygons.geometry.values))
    assert sides.min() >= 10 and sides.max() <= 200
    grids = metric["grids"].geometry.values
    inside, _ = shapely.STRtree(grids).query(polygons.geometry.values, predicate="within")
    assert len(set(inside.tolist())) >= 0.98 * len(polygons)
    assert places["name"].str.len().ge(3).all()


# --- events ---------------------------------------------------------------------------------------------
def test_events(city: DemoCity, metric: dict) -> None:
    events = city.events
    categories = pd.read_csv(CATEGORIES)
    subcategories = set(categories.loc[categories["parent_code"].notna(), "code"])
    assert set(events["category"]) <= subcategories
    assert events["id"].tolist() == list(range(1, 50_001))
    assert str(events["occurred_at"].dt.tz) == "Asia/Shanghai"
    end = pd.Timestamp("2026-11-01T00:00", tz="Asia/Shanghai")
    assert events["occurred_at"].max() < end
    assert events["occurred_at"].min() >= end - pd.Timedelta(days=365)
    assert events["occurred_at"].is_monotonic_increasing
    share = events["category"].str.split(".").str[0].value_counts(normalize=True)
    assert 0.30 < share["city_management"] < 0.40 and 0.05 < share["public_safety"] < 0.11
    hours = events["occurred_at"].dt.hour
    assert hours.between(8, 17).mean() / 10 > 3 * hours.between(0, 5).mean() / 6  # per hour
    assert set(events["priority"]) == {"normal", "urgent"}
    assert set(events["source"]) == {"public", "grid_worker", "hotline_12345", "video"}
    old = events["occurred_at"] < end - pd.Timedelta(days=30)
    assert events.loc[old, "status"].isin(["archived", "evaluated", "rejected"]).all()
    assert events.loc[~old, "status"].isin(["reported", "accepted", "dispatched", "handling"]).any()
    assert events["description"].map(lambda s: bool(re.search(r"[\u4e00-\u9fff]", s))).all()
    city_m = metric["regions"].query("level == 'city'").geometry.iloc[0]
    xy = shapely.get_coordinates(metric["events"].geometry.values)
    assert shapely.contains_xy(city_m, xy[:, 0], xy[:, 1]).all()


def test_events_cluster(metric: dict) -> None:
    """Clustered points have far more near neighbours than a uniform scatter would."""
    points = metric["events"].geometry.values[::10]
    city = metric["regions"].query("level == 'city'").geometry.iloc[0]
    left, right = shapely.STRtree(points).query(points, predicate="dwithin", distance=200)
    within_200 = (left != right).sum() / len(points)
    uniform = (len(points) - 1) * np.pi * 200**2 / city.area
    assert within_200 > 5 * uniform


# --- reproducibility and other boundaries --------------------------------------------------------------
def test_same_seed_same_city_other_seed_other_city() -> None:
    boundary = rugao()
    first = build_demo_city(boundary, seed=7, **SMALL)
    again = build_demo_city(boundary, seed=7, **SMALL)
    other = build_demo_city(boundary, seed=8, **SMALL)
    for name in ("regions", "grids", "posts", "station_areas", "places", "events"):
        a, b = getattr(first, name), getattr(again, name)
        pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
        assert shapely.equals_exact(a.geometry.values, b.geometry.values, tolerance=0).all(), name
    same = (
        len(first.grids) == len(other.grids)
        and shapely.equals_exact(first.grids.geometry.values, other.grids.geometry.values, tolerance=0).all()
    )
    assert not same


@pytest.mark.parametrize("shape", ["star", "multipolygon"])
def test_other_boundaries_build_valid_cities(shape: str) -> None:
    boundary = star()
    if shape == "multipolygon":  # a hole, a separate island, and an islet too small for a grid
        hole = shapely.Point(118.0, 32.0).buffer(0.01)
        island = shapely.box(118.2, 31.85, 118.23, 31.88)
        islet = shapely.box(118.25, 31.85, 118.2505, 31.8505)
        boundary = shapely.MultiPolygon([boundary.difference(hole), island, islet])
    city = build_demo_city(boundary, adcode="320115", end=datetime(2025, 6, 30), **SMALL)
    assert city.metric_epsg == 4548
    grids = city.grids.to_crs(city.metric_epsg).geometry.values
    reference = project(boundary, city.metric_epsg)
    assert shapely.is_valid(grids).all() and shapely.coverage_is_valid(grids)
    union = shapely.coverage_union_all(grids)
    assert shapely.symmetric_difference(union, reference).area / reference.area < 1e-6
    assert 120 <= len(grids) <= 180
    regions = city.regions
    assert (regions["level"] == "town").sum() == 4
    assert regions["code"].str.startswith("320115").all()
    assert not regions["name"].isin(["如城街道", "白蒲镇"]).any()
    assert len(city.events) == 1000 and len(city.posts) == 40
    assert city.events["occurred_at"].max() < pd.Timestamp("2025-06-30", tz="Asia/Shanghai")
    areas = city.station_areas.to_crs(city.metric_epsg).geometry.values
    assert shapely.coverage_is_valid(areas)
    assert shapely.symmetric_difference(shapely.coverage_union_all(areas), union).area < 1e-3
