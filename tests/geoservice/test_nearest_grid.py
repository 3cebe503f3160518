"""The nearest grid to a point outside every grid, without the router's former metric copy (issue 23).

The reference is what the router did before: every grid projected to the metric CRS, every distance
measured, the least taken, the smallest rank on a tie.
"""

import math

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from geoservice.routing import nearest_grid
from geoservice.routing.nearest_grid import NearestGrid
from layers.crs import project

EPSG = 4549  # CGCS2000 / 3-degree Gauss-Kruger CM 120E
TOLERANCE_M = 50.0


@pytest.fixture(scope="module")
def grids() -> np.ndarray:
    """Squares of 400 m with 40 m gaps (densified, so edges curve a little in lon/lat), and two duplicates: exact ties."""
    squares = [shapely.box(x, y, x + 400, y + 400) for x in range(0, 4400, 440) for y in range(0, 4400, 440)]
    metric = shapely.segmentize(np.array(squares, dtype=object), 25.0)
    to_wgs84 = Transformer.from_crs(EPSG, 4326, always_xy=True)
    lonlat = shapely.transform(
        metric, lambda xy: np.column_stack(to_wgs84.transform(xy[:, 0] + 500_000, xy[:, 1] + 3_520_000))
    )
    return np.concatenate([lonlat, lonlat[[7, 42]]])  # ranks 100 and 101 repeat ranks 7 and 42


def reference(metric: np.ndarray, x: float, y: float, within_m: float | None) -> tuple[int, float]:
    distances = shapely.distance(metric, shapely.Point(x, y))
    least = distances.min()
    if within_m is not None and not least <= within_m:
        return -1, math.inf
    return int(np.flatnonzero(distances == least)[0]), float(least)


def queries(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    near = rng.uniform(-300, 4700, (4_000, 2))
    far = rng.uniform(-20_000, 25_000, (300, 2))
    return np.vstack([near, far]) + (500_000, 3_520_000)


def test_one_point_gives_the_full_metric_copy_answer(grids: np.ndarray):
    metric = project(grids, EPSG)
    finder = NearestGrid(grids, EPSG)
    snapped = beyond = ties = 0
    for x, y in queries(1).tolist():
        for within in (TOLERANCE_M, None):
            expected = reference(metric, x, y, within)
            assert finder.one(x, y, within) == expected
        rank, distance = expected
        snapped += 0 < distance <= TOLERANCE_M
        beyond += distance > TOLERANCE_M
        ties += rank in (7, 42)
    assert snapped > 300 and beyond > 300  # both outcomes were tried
    assert ties > 10  # ranks 7 and 42 won against their duplicates 100 and 101


def test_many_points_give_the_one_point_answers(grids: np.ndarray):
    finder = NearestGrid(grids, EPSG)
    xy = queries(2)
    rank, distance = finder.many(xy, TOLERANCE_M)
    for k, (x, y) in enumerate(xy.tolist()):
        assert (int(rank[k]), float(distance[k])) == finder.one(x, y, TOLERANCE_M)
    assert (rank >= 0).sum() > 300 and (rank < 0).sum() > 300


def test_a_full_keep_still_answers_exactly(grids: np.ndarray, monkeypatch: pytest.MonkeyPatch):
    """Past ``KEPT_GRIDS`` the grids are projected for the query alone: same answers, the kept set stops growing."""
    monkeypatch.setattr(nearest_grid, "KEPT_GRIDS", 5)
    metric = project(grids, EPSG)
    finder = NearestGrid(grids, EPSG)
    for x, y in queries(3)[:500].tolist():
        assert finder.one(x, y, None) == reference(metric, x, y, None)
    assert 0 < len(finder._kept) <= 5


def test_no_grids_and_nan_points_answer_none():
    empty = NearestGrid(np.empty(0, dtype=object), EPSG)
    assert empty.one(500_000.0, 3_520_000.0, None) == (-1, math.inf)
    rank, distance = empty.many(np.array([[500_000.0, 3_520_000.0]]), TOLERANCE_M)
    assert rank.tolist() == [-1] and distance.tolist() == [math.inf]
