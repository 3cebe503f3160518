"""The router agrees with PostGIS ``ST_Covers`` + smallest-code tie-break on every point.

100,000 points over the demo city: random ones, points on shared edges (interpolated between the
two vertices of a real edge), exact vertices (where three or more grids meet), and points just
outside the city. The expected answer comes from PostGIS alone, in one query.
"""

import time

import numpy as np
import pytest
import shapely
from sqlalchemy import Engine, text

from etl.load import copy_rows
from geoservice.boundaries.versions import current_version_id
from geoservice.infra.database import transaction
from geoservice.routing.loader import load_router
from geoservice.routing.registry import RouterRegistry
from tests.settings import ROUTING

N_RANDOM, N_EDGE, N_VERTEX, N_OUTSIDE = 60_000, 20_000, 10_000, 10_000


@pytest.fixture(scope="module")
def router(demo_db: Engine):
    with transaction(demo_db) as session:
        return load_router(session, current_version_id(session), ROUTING)


def sample_points(router) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2026)
    polygons = router.grid_index.polygons
    minx, miny, maxx, maxy = shapely.total_bounds(polygons)
    random = np.column_stack([rng.uniform(minx, maxx, N_RANDOM), rng.uniform(miny, maxy, N_RANDOM)])
    rings = shapely.get_exterior_ring(shapely.get_parts(polygons))
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    same = np.flatnonzero(ring[1:] == ring[:-1])
    seg = rng.choice(same, N_EDGE)
    t = rng.uniform(0, 1, (N_EDGE, 1))
    on_edges = coords[seg] + t * (coords[seg + 1] - coords[seg])
    vertices = coords[rng.choice(len(coords), N_VERTEX)]
    city = shapely.union_all(polygons)
    border = shapely.get_coordinates(shapely.boundary(city))
    picked = border[rng.choice(len(border), N_OUTSIDE)]
    centre = np.array(shapely.centroid(city).coords[0])
    away = (picked - centre) / np.linalg.norm(picked - centre, axis=1, keepdims=True)
    outside = picked + away * rng.uniform(1e-6, 1e-3, (N_OUTSIDE, 1))  # ~0.1 m to ~100 m outwards
    points = np.vstack([random, on_edges, vertices, outside])
    kind = np.repeat(["random", "edge", "vertex", "outside"], [N_RANDOM, N_EDGE, N_VERTEX, N_OUTSIDE])
    return points[:, 0], points[:, 1], kind


def postgis_answer(engine: Engine, version_id: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    ewkb = shapely.to_wkb(shapely.set_srid(shapely.points(x, y), 4326), hex=True, include_srid=True)
    with transaction(engine) as session:
        session.execute(text("CREATE TEMP TABLE probe (id int PRIMARY KEY, geom geometry(Point, 4326)) ON COMMIT DROP"))
        copy_rows(session, "probe", ["id", "geom"], zip(range(len(x)), ewkb, strict=True))
        rows = session.execute(
            text(
                "SELECT DISTINCT ON (p.id) p.id, g.code FROM probe p "
                "LEFT JOIN grids g ON g.version_id = :v AND ST_Covers(g.geom, p.geom) ORDER BY p.id, g.code"
            ),
            {"v": version_id},
        ).all()
    return np.array([code or "" for _, code in sorted(rows)], dtype=object)


def test_router_equals_postgis_covers_with_tie_break(router, demo_db: Engine):
    x, y, kind = sample_points(router)
    expected = postgis_answer(demo_db, router.version_id, x, y)
    ranks = router.grid_index.locate_many(x, y)
    got = np.append(router.grid_codes, "").astype(object)[ranks]
    mismatch = np.flatnonzero(got != expected)
    detail = [(kind[i], repr(x[i]), repr(y[i]), got[i], expected[i]) for i in mismatch[:10]]
    assert mismatch.size == 0, f"{mismatch.size} disagreements, e.g. {detail}"
    # The sample is what it claims to be: edges and vertices are mostly shared, outside points miss.
    on_boundary = kind != "random"
    shared = [
        len(
            router.grid_index.polygons[
                shapely.STRtree(router.grid_index.polygons).query(shapely.Point(x[i], y[i]), predicate="intersects")
            ]
        )
        for i in np.flatnonzero(kind == "vertex")[:200]
    ]
    assert np.mean(np.array(shared) >= 2) > 0.9
    # Pushed radially from the centre, so in the boundary's bays some land back inside.
    assert (expected[kind == "outside"] == "").mean() > 0.8
    assert on_boundary.sum() == 40_000


def test_single_point_path_agrees_with_the_batch_path(router):
    x, y, _ = sample_points(router)
    pick = np.random.default_rng(7).choice(len(x), 5_000, replace=False)
    batch = router.grid_index.locate_many(x[pick], y[pick])
    single = np.array([router.grid_index.locate(float(a), float(b)) for a, b in zip(x[pick], y[pick], strict=True)])
    assert (batch == single).all()


def test_bulk_departments_equal_single_event_decisions(router):
    import pandas as pd

    from geoservice.routing.bulk import route_points

    x, y, kind = sample_points(router)
    inside = np.flatnonzero(kind == "random")[:3_000]
    categories = pd.read_csv("etl/data/categories.csv")["code"].to_numpy()
    drawn = np.random.default_rng(3).choice(categories, inside.size).astype(object)
    bulk = route_points(router, x[inside], y[inside], drawn)
    for k, (lon, lat, category) in enumerate(zip(x[inside], y[inside], drawn, strict=True)):
        if bulk["grid_code"].iat[k] == "":
            continue
        single = router.route(float(lon), float(lat), str(category))
        got_rule = bulk["rule_id"].iat[k]
        assert (None if pd.isna(got_rule) else int(got_rule)) == single.rule_id, (lon, lat, category)
        assert bulk["department"].iat[k] == (single.department_code or "")


def test_points_outside_every_grid_get_the_same_answer_from_the_cells(demo_db: Engine):
    """Just outside (0.1-100 m) and far outside (1-15 km): the cells answer what the R-tree search answered."""
    with transaction(demo_db) as session:
        router = load_router(session, current_version_id(session), ROUTING)
    x, y, kind = sample_points(router)
    near = np.flatnonzero((kind == "outside") & (router.grid_index.locate_many(x, y) < 0))[:1_500]
    rng = np.random.default_rng(11)
    centre = np.array(shapely.centroid(shapely.union_all(router.grid_index.polygons)).coords[0])
    away = np.column_stack([x[near], y[near]]) - centre
    away /= np.linalg.norm(away, axis=1, keepdims=True)
    far = np.column_stack([x[near], y[near]])[:500] + away[:500] * rng.uniform(0.01, 0.15, (500, 1))
    points = np.vstack([np.column_stack([x[near], y[near]]), far]).tolist()
    router._nearest_grids._index_later = None  # no cells built behind this test's back: the search answers
    searched = [router.locate(lon, lat) for lon, lat in points]
    assert router._nearest_grids._cell_index is None
    router.index_outside_points()
    assert [router.locate(lon, lat) for lon, lat in points] == searched
    on_cells = sum(bool(router._nearest_grids._cell_of(*router.to_metric(lon, lat))) for lon, lat in points)
    assert on_cells == len(points) > 1_900  # every one of them was answered from the cells
    assert sum(a.grid is None and a.nearest_grid is not None for a in searched) > 500  # far: a 404 naming one


def test_the_first_point_outside_every_grid_starts_the_cells(demo_db: Engine):
    """Built in a thread of their own, once; meanwhile the search answers, the same."""
    router = RouterRegistry(demo_db, ROUTING).current()
    centre = router.locate(120.57, 32.39)
    assert centre.grid is not None and router._nearest_grids._cell_index is None  # a point inside: no cells
    far = router.locate(121.2, 32.39)  # ~60 km east of the county
    assert far.grid is None and far.nearest_grid is not None
    waited = 0.0
    while router._nearest_grids._cell_index is None and waited < 60:
        time.sleep(0.1)
        waited += 0.1
    assert router._nearest_grids._cell_index is not None
    assert router.locate(121.2, 32.39) == far
