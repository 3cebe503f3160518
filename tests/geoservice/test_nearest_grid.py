"""The nearest grid to a point outside every grid, without the router's former metric copy (issue 23).

The reference is what the router did before: every grid projected to the metric CRS, every distance
measured, the least taken, the smallest rank on a tie.
"""

import math

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from geoservice.routing import nearest_grid, raster_index
from geoservice.routing.nearest_grid import NearestGrid
from geoservice.routing.raster_index import RasterIndex
from layers.crs import project

EPSG = 4549  # CGCS2000 / 3-degree Gauss-Kruger CM 120E
TOLERANCE_M = 50.0
TO_WGS84 = Transformer.from_crs(EPSG, 4326, always_xy=True)


@pytest.fixture(scope="module")
def grids() -> np.ndarray:
    """Squares of 400 m with 40 m gaps (densified, so edges curve a little in lon/lat), and two duplicates: exact ties."""
    squares = [shapely.box(x, y, x + 400, y + 400) for x in range(0, 4400, 440) for y in range(0, 4400, 440)]
    metric = shapely.segmentize(np.array(squares, dtype=object), 25.0)
    lonlat = shapely.transform(
        metric, lambda xy: np.column_stack(TO_WGS84.transform(xy[:, 0] + 500_000, xy[:, 1] + 3_520_000))
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
        rank, distance = expected = reference(metric, x, y, None)
        assert finder.one(x, y) == expected
        snapped += 0 < distance <= TOLERANCE_M
        beyond += distance > TOLERANCE_M
        ties += rank in (7, 42)
    assert snapped > 300 and beyond > 300  # both outcomes were tried
    assert ties > 10  # ranks 7 and 42 won against their duplicates 100 and 101


def test_many_points_give_the_one_point_answers_within_the_tolerance(grids: np.ndarray):
    finder = NearestGrid(grids, EPSG)
    xy = queries(2)
    rank, distance = finder.many(xy, TOLERANCE_M)
    for k, (x, y) in enumerate(xy.tolist()):
        one_rank, one_distance = finder.one(x, y)
        expected = (one_rank, one_distance) if one_distance <= TOLERANCE_M else (-1, math.inf)
        assert (int(rank[k]), float(distance[k])) == expected
    assert (rank >= 0).sum() > 300 and (rank < 0).sum() > 300


def test_a_full_keep_still_answers_exactly(grids: np.ndarray, monkeypatch: pytest.MonkeyPatch):
    """Past ``KEPT_GRIDS`` the grids are projected for the query alone: same answers, the kept set stops growing."""
    monkeypatch.setattr(nearest_grid, "KEPT_GRIDS", 5)
    metric = project(grids, EPSG)
    finder = NearestGrid(grids, EPSG)
    for x, y in queries(3)[:500].tolist():
        assert finder.one(x, y) == reference(metric, x, y, None)
    assert 0 < len(finder._kept) <= 5


def tiled(holes: tuple[int, ...] = ()) -> np.ndarray:
    """10 × 10 squares of 400 m sharing their edges, rank = 10 * column + row, minus ``holes``; lon/lat."""
    squares = [shapely.box(x, y, x + 400, y + 400) for x in range(0, 4000, 400) for y in range(0, 4000, 400)]
    metric = np.array([shapely.segmentize(s, 25.0) for k, s in enumerate(squares) if k not in holes], dtype=object)
    return shapely.transform(
        metric, lambda xy: np.column_stack(TO_WGS84.transform(xy[:, 0] + 500_000, xy[:, 1] + 3_520_000))
    )


@pytest.mark.parametrize("block_cells", [raster_index.BLOCK_CELLS, 400])  # one block; blocks of 2-3 rows
def test_the_edge_grids_are_the_outline_and_the_rim_of_a_hole(block_cells: int, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(raster_index, "BLOCK_CELLS", block_cells)
    outline = {k for k in range(100) if k // 10 in (0, 9) or k % 10 in (0, 9)}
    assert set(RasterIndex(tiled(), cell_m=30.0).edge_ranks().tolist()) == outline
    # Square 44 removed: its 8 neighbours (edges and corners) rim the hole; ranks after 44 shift by one.
    rim = {33, 34, 35, 43, 45, 53, 54, 55}
    as_rank = {k - (k > 44) for k in outline | rim}
    assert set(RasterIndex(tiled(holes=(44,)), cell_m=30.0).edge_ranks().tolist()) == as_rank


def test_kept_edges_answer_points_outside_without_projecting_more():
    polygons = tiled(holes=(44,))
    metric = project(polygons, EPSG)
    finder = NearestGrid(polygons, EPSG, keep=RasterIndex(polygons, cell_m=30.0).edge_ranks())
    kept = len(finder._kept)
    rng = np.random.default_rng(4)
    outside = np.vstack([rng.uniform(-2_000, 6_000, (3_000, 2)), rng.uniform(1_600, 2_000, (300, 2))])
    outside = outside[
        ~shapely.intersects_xy(shapely.union_all(metric), outside[:, 0] + 500_000, outside[:, 1] + 3_520_000)
    ]
    for x, y in (outside + (500_000, 3_520_000)).tolist():
        assert finder.one(x, y) == reference(metric, x, y, None)
    assert len(finder._kept) == kept == 36 + 8


def test_the_envelopes_hold_their_grids_and_little_more(grids: np.ndarray):
    """Boxes from the lon/lat boxes' outlines hold the projected grids: here, at a zone's edge and across a province."""
    lon_lat = np.concatenate([
        grids,
        [shapely.segmentize(shapely.box(121.4, 31.0, 121.5, 31.08), 0.001)],  # 1.5 degrees east of the zone's meridian
        [shapely.segmentize(shapely.Polygon([(118, 30), (122, 30.5), (121, 34), (118.5, 33)]), 0.01)],  # 4 x 4 degrees
        [shapely.segmentize(shapely.box(118, 30, 122, 30.5), 0.01)],  # its south edge dips ~1.7 km at the meridian
        [None, shapely.Polygon()],
    ])  # fmt: skip
    tight = shapely.bounds(project(lon_lat, EPSG))
    envelopes = nearest_grid.metric_envelopes(lon_lat, EPSG)
    assert np.isnan(envelopes[-2:]).all() and np.isnan(tight[-2:]).all()
    held, tight = envelopes[:-2], tight[:-2]
    assert (held[:, :2] <= tight[:, :2]).all() and (held[:, 2:] >= tight[:, 2:]).all()
    widened = np.abs(held - tight)
    assert widened[:-3].max() < 1.2 * nearest_grid.ENVELOPE_MARGIN_M  # a grid's box: its margin and a hair
    assert widened[-1].max() < 1.2 * nearest_grid.ENVELOPE_MARGIN_M  # a lon/lat box: its own outline, sampled
    assert widened[-2].max() < 2_500  # the province's box is its lon/lat box's: wider than the polygon, still held


def test_no_grids_and_nan_points_answer_none():
    empty = NearestGrid(np.empty(0, dtype=object), EPSG)
    assert empty.one(500_000.0, 3_520_000.0) == (-1, math.inf)
    rank, distance = empty.many(np.array([[500_000.0, 3_520_000.0]]), TOLERANCE_M)
    assert rank.tolist() == [-1] and distance.tolist() == [math.inf]
    assert NearestGrid(tiled(), EPSG).one(math.nan, math.nan) == (-1, math.inf)


def covered_by(polygons: np.ndarray):
    """Which metric points a grid covers, asked of the raster index as the router asks it."""
    index = RasterIndex(polygons, cell_m=30.0)
    return lambda x, y: index.locate_many(*TO_WGS84.transform(x, y)) != raster_index.NO_POLYGON


@pytest.mark.parametrize("raster", [False, True], ids=["every-centre-measured", "covered-centres-from-the-raster"])
def test_the_cells_give_the_r_tree_answers(grids: np.ndarray, raster: bool):
    """Near points, far points, ties, points off the cells: the same grid and the same metres as the full copy."""
    metric = project(grids, EPSG)
    finder = NearestGrid(grids, EPSG)
    # Part of the far queries (-20 to +25 km) lie off these cells and take the R-tree search.
    finder.index_area((490_000.0, 3_510_000.0, 510_000.0, 3_530_000.0), covered_by(grids) if raster else None)
    on_cells = ties = 0
    for x, y in queries(5).tolist():
        rank, _ = expected = reference(metric, x, y, None)
        assert finder.one(x, y) == expected
        on_cells += bool(finder._cell_of(x, y))
        ties += rank in (7, 42)
    assert 4_000 <= on_cells < 4_300  # every near point and some of the far ones
    assert ties > 10


def test_the_cells_measure_only_kept_grids_for_points_outside_the_city():
    """Cells inside the city list grids nobody kept (for its gaps): an outside point never projects them."""
    polygons = tiled(holes=(44,))
    metric = project(polygons, EPSG)
    finder = NearestGrid(polygons, EPSG, keep=RasterIndex(polygons, cell_m=30.0).edge_ranks())
    finder.index_area((496_000.0, 3_516_000.0, 508_000.0, 3_528_000.0), covered_by(polygons))
    rng = np.random.default_rng(6)
    points = np.vstack([rng.uniform(-2_000, 6_000, (3_000, 2)), rng.uniform(1_600, 2_000, (300, 2))])
    outside = points[~shapely.intersects_xy(shapely.union_all(metric), points[:, 0] + 500_000, points[:, 1] + 3_520_000)]
    for x, y in (outside + (500_000, 3_520_000)).tolist():
        assert finder._cell_of(x, y)
        assert finder.one(x, y) == reference(metric, x, y, None)
    assert len(finder._kept) == 36 + 8
    # Not vacuous: a cell inside the city lists square 22 (rank 22), which is neither outline nor rim.
    assert 22 in finder._cell_of(501_000.0, 3_521_000.0) and 22 not in finder._kept


def test_a_pickled_finder_answers_the_same_and_can_still_build_its_cells(grids: np.ndarray):
    """Dask sends the router to its workers pickled: the lock that guards the cells' build stays behind."""
    import pickle

    finder = NearestGrid(grids, EPSG)
    finder.index_area((490_000.0, 3_510_000.0, 510_000.0, 3_530_000.0))
    copy = pickle.loads(pickle.dumps(finder))
    for x, y in queries(7)[:200].tolist():
        assert copy.one(x, y) == finder.one(x, y)
    assert copy._indexing.acquire(blocking=False)
