"""The nearest post per level, as one locate answers it: same post as PostGIS, smallest code on a tie.

``Router.locate`` finds a point's nearest post through precomputed candidate cells (issue 22),
and scans every post only off the cells. Both must give what PostGIS gives: the post least
``ST_Distance`` away in the metric CRS, the smallest code among equally near ones.
"""

import numpy as np
import pytest
import shapely
from sqlalchemy import Engine, text

from etl.load import copy_rows
from geoservice.boundaries.versions import current_version_id
from geoservice.infra.database import transaction
from geoservice.routing.loader import load_router
from geoservice.routing.router import PostSet
from layers.models import POST_LEVELS
from tests.settings import ROUTING

N_POINTS = 3_000
CLOSE_CALL_M = 0.01  # PROJ in PostGIS and pyproj may differ by millimetres: such near-ties are skipped


@pytest.fixture(scope="module")
def router(demo_db: Engine):
    with transaction(demo_db) as session:
        return load_router(session, current_version_id(session), ROUTING)


def scan(posts: PostSet, x: float, y: float) -> tuple[int, float]:
    """Every post, the first least distance in code order (the reference)."""
    squared = (posts.xy[:, 0] - x) ** 2 + (posts.xy[:, 1] - y) ** 2
    k = int(squared.argmin())
    return k, float(squared[k]) ** 0.5


def test_cells_give_the_scan_answer_and_the_smallest_code_on_ties():
    rng = np.random.default_rng(7)
    xy = rng.uniform(0, 10_000, (300, 2)).round(-2)  # on a 100 m lattice: many equidistant posts
    xy[150:160] = xy[10]  # and posts at the very same place
    posts = PostSet(np.array([f"P{k:04d}" for k in range(300)]), np.array(["p"] * 300), xy)
    posts.index_area((0.0, 0.0, 10_000.0, 10_000.0))
    queries = np.vstack([rng.uniform(-500, 10_500, (20_000, 2)), rng.integers(0, 201, (5_000, 2)) * 50.0])
    ties = 0
    for x, y in queries.tolist():
        assert posts.nearest_one(x, y) == scan(posts, x, y)
        d = np.hypot(xy[:, 0] - x, xy[:, 1] - y)
        ties += int((d == d.min()).sum() > 1)
    assert ties > 500  # the lattice points did test the tie-break


def test_many_points_give_the_one_point_answers():
    """``nearest`` (stations of ``locate_many``) answers each point as ``nearest_one`` does, ties included."""
    rng = np.random.default_rng(8)
    xy = rng.uniform(0, 10_000, (300, 2)).round(-2)
    xy[150:160] = xy[10]
    posts = PostSet(np.array([f"P{k:04d}" for k in range(300)]), np.array(["p"] * 300), xy)
    posts.index_area((0.0, 0.0, 10_000.0, 10_000.0))
    queries = np.vstack([rng.uniform(-500, 10_500, (20_000, 2)), rng.integers(0, 201, (5_000, 2)) * 50.0,
                         [[5.0, 1e6], [-1e6, -1e6]]])  # fmt: skip
    distance, index = posts.nearest(queries)
    expected = [posts.nearest_one(x, y) for x, y in queries.tolist()]
    assert index.tolist() == [k for k, _ in expected]
    # The same squared metres; numpy's root and Python's ``** 0.5`` may differ in the last bit.
    assert np.allclose(distance, [d for _, d in expected], rtol=1e-15, atol=0)
    empty = PostSet(np.array([], dtype=str), np.array([], dtype=str), np.empty((0, 2)))
    empty.index_area((0.0, 0.0, 1.0, 1.0))
    assert [a.tolist() for a in empty.nearest(queries[:2])] == [[float("inf")] * 2, [-1, -1]]


def test_off_the_cells_and_empty():
    posts = PostSet(np.array(["A", "B"]), np.array(["a", "b"]), np.array([[0.0, 0.0], [10.0, 0.0]]))
    posts.index_area((0.0, 0.0, 10.0, 10.0))
    assert posts.nearest_one(5.0, 1e6) == (0, scan(posts, 5.0, 1e6)[1])  # equidistant, far away: A
    assert posts.nearest_one(float("nan"), 0.0)[0] in (0, 1)  # no cell for NaN; the scan answers
    empty = PostSet(np.array([], dtype=str), np.array([], dtype=str), np.empty((0, 2)))
    empty.index_area((0.0, 0.0, 1.0, 1.0))
    assert empty.nearest_one(0.0, 0.0) == (-1, float("inf"))


def test_locate_posts_equal_postgis_nearest(router, demo_db: Engine):
    rng = np.random.default_rng(22)
    minx, miny, maxx, maxy = shapely.total_bounds(router.grid_index.polygons)
    x = rng.uniform(minx - 0.02, maxx + 0.02, N_POINTS)  # also beyond the city, off the cells
    y = rng.uniform(miny - 0.02, maxy + 0.02, N_POINTS)
    expected = postgis_nearest(demo_db, router.metric_epsg, x, y)
    compared = 0
    for k, (lon, lat) in enumerate(zip(x.tolist(), y.tolist(), strict=True)):
        location = router.locate(lon, lat)
        for level in POST_LEVELS:
            code, distance, runner_up = expected[level][k]
            if runner_up is not None and runner_up - distance < CLOSE_CALL_M:
                continue
            post = location.posts[level]
            assert post is not None and post.code == code, (lon, lat, level)
            assert abs(post.distance_m - distance) < CLOSE_CALL_M
            compared += 1
    assert compared > 0.95 * N_POINTS * len(POST_LEVELS)


def postgis_nearest(engine: Engine, epsg: int, x: np.ndarray, y: np.ndarray) -> dict[str, list[tuple]]:
    """Per level and point: nearest post's code and metres, and the second nearest's metres."""
    ewkb = shapely.to_wkb(shapely.set_srid(shapely.points(x, y), 4326), hex=True, include_srid=True)
    out: dict[str, list[tuple]] = {}
    with transaction(engine) as session:
        session.execute(text("CREATE TEMP TABLE probe (id int PRIMARY KEY, geom geometry(Point, 4326)) ON COMMIT DROP"))
        copy_rows(session, "probe", ["id", "geom"], zip(range(len(x)), ewkb, strict=True))
        for level in POST_LEVELS:
            rows = session.execute(
                text(
                    "SELECT p.id, n.codes[1], n.ds[1], n.ds[2] FROM probe p CROSS JOIN LATERAL ("
                    "  SELECT array_agg(code ORDER BY d, code) AS codes, array_agg(d ORDER BY d, code) AS ds FROM ("
                    "    SELECT code, ST_Distance(ST_Transform(geom, :epsg), ST_Transform(p.geom, :epsg)) AS d"
                    "    FROM police_posts WHERE level = CAST(:level AS post_level) ORDER BY d, code LIMIT 2) t) n "
                    "ORDER BY p.id"
                ),
                {"epsg": epsg, "level": str(getattr(level, "value", level))},
            ).all()
            out[level] = [(code, d1, d2) for _, code, d1, d2 in rows]
    return out
