"""The raster index's on-disk cache (issue 23): a hit answers exactly as a fresh build, a damaged
entry is rebuilt, and other boundaries never get another version's index.

Beside ``test_router_agreement.py`` (the index against PostGIS on the demo city): the answers here
are checked against the exact answer (shapely's STRtree, ``intersects`` = covers for a point, smallest
rank kept) on points drawn at random, on shared edges and on vertices.
"""

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely import box
from sqlalchemy import Engine, text

from geoservice.routing import raster_index
from geoservice.routing.index_cache import FORMAT
from geoservice.routing.index_store import settle
from geoservice.routing.raster_index import NO_POLYGON, RasterIndex
from geoservice.routing.registry import RouterRegistry
from geoservice.settings import RoutingSettings
from tests.etl import tiny_city
from tests.etl.tiny_city import WEST, X0, Y0, D
from tests.geoservice.test_locate_api import load_tiny_city, load_tiny_city_version

CELL_M = 30.0


def voronoi_city(n: int = 60, seed: int = 3) -> np.ndarray:
    """``n`` grids sharing their edges, about 3 × 3 km near 如皋, in rank order."""
    rng = np.random.default_rng(seed)
    square = box(120.5, 32.3, 120.53, 32.33)
    seeds = shapely.multipoints(rng.uniform([120.5, 32.3], [120.53, 32.33], (n, 2)))
    cells = shapely.intersection(shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=square)), square)
    return shapely.segmentize(cells, 0.0003)


def probes(polygons: np.ndarray, n: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    minx, miny, maxx, maxy = shapely.total_bounds(polygons)
    random = np.column_stack([rng.uniform(minx - 0.001, maxx + 0.001, n), rng.uniform(miny - 0.001, maxy + 0.001, n)])
    rings = shapely.get_exterior_ring(shapely.get_parts(polygons))  # a MultiPolygon's parts too
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    seg = rng.choice(np.flatnonzero(ring[1:] == ring[:-1]), n)
    edges = coords[seg] + rng.uniform(0, 1, (n, 1)) * (coords[seg + 1] - coords[seg])
    points = np.vstack([random, edges, coords[rng.choice(len(coords), n)]])
    return points[:, 0], points[:, 1]


def exact(polygons: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    point_idx, rank = shapely.STRtree(polygons).query(shapely.points(x, y), predicate="intersects")
    best = np.full(x.size, np.iinfo(np.int32).max, dtype=np.int64)
    np.minimum.at(best, point_idx, rank)
    return np.where(best == np.iinfo(np.int32).max, NO_POLYGON, best)


def entries(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if p.is_dir() and not p.name.startswith("."))


@pytest.mark.parametrize("uint16_ranks", [raster_index.UINT16_RANKS, 10])  # two-byte cells; four (as a province's)
def test_a_hit_answers_exactly_as_a_fresh_build(tmp_path: Path, uint16_ranks: int, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(raster_index, "UINT16_RANKS", uint16_ranks)
    polygons = voronoi_city()
    fresh = RasterIndex(polygons, cell_m=CELL_M)
    first = RasterIndex(polygons, cell_m=CELL_M, cache_dir=tmp_path)
    # Another worker: the same boundaries, read again from the database (new geometry objects).
    again = RasterIndex(shapely.from_wkb(shapely.to_wkb(polygons)), cell_m=CELL_M, cache_dir=tmp_path)
    assert (fresh.cache, first.cache, again.cache) == ("off", "built", "hit")
    assert len(entries(tmp_path)) == 1
    assert fresh.cells.dtype == (np.uint16 if uint16_ranks > len(polygons) else np.uint32)
    for name in ("cells", "boundary_cells", "offsets", "candidates"):
        assert np.array_equal(getattr(again, name), getattr(fresh, name)), name
    assert isinstance(again.cells.base, np.memmap) and not again.cells.flags.writeable  # mapped, shared pages
    x, y = probes(polygons)
    expected = exact(polygons, x, y)
    assert np.array_equal(fresh.locate_many(x, y), expected)
    assert np.array_equal(again.locate_many(x, y), expected)
    assert [again.locate(a, b) for a, b in zip(x[:2000], y[:2000], strict=True)] == expected[:2000].tolist()


def test_an_index_that_gives_back_its_build_answers_exactly_as_before(tmp_path: Path):
    """A server drops what GEOS made for the build's tests (``forget_build_caches``); the answers stay exact."""
    polygons = voronoi_city()
    built = RasterIndex(polygons, cell_m=CELL_M, cache_dir=tmp_path)
    x, y = probes(polygons)
    expected = exact(polygons, x, y)
    assert np.array_equal(built.locate_many(x, y), expected)
    built.forget_build_caches()
    assert shapely.is_prepared(built.polygons).all()  # prepared anew, not left unprepared
    assert np.array_equal(built.locate_many(x, y), expected)
    assert [built.locate(a, b) for a, b in zip(x[:2000], y[:2000], strict=True)] == expected[:2000].tolist()


def _flip_cells(entry: Path) -> None:
    raw = bytearray((entry / "cells.npy").read_bytes())
    raw[-100] ^= 0xFF  # one cell's answer changed: the file still loads
    (entry / "cells.npy").write_bytes(bytes(raw))


def _truncate_candidates(entry: Path) -> None:
    raw = (entry / "candidates.npy").read_bytes()
    (entry / "candidates.npy").write_bytes(raw[: len(raw) // 2])


def _garble_meta(entry: Path) -> None:
    (entry / "meta.json").write_text("{not json")


def _old_format(entry: Path) -> None:
    meta = json.loads((entry / "meta.json").read_text())
    (entry / "meta.json").write_text(json.dumps({**meta, "format": FORMAT - 1}))


def _other_raster(entry: Path) -> None:
    meta = json.loads((entry / "meta.json").read_text())
    meta["params"]["nx"] += 1
    (entry / "meta.json").write_text(json.dumps(meta))


def _lose_offsets(entry: Path) -> None:
    (entry / "offsets.npy").unlink()


@pytest.mark.parametrize(
    "damage", [_flip_cells, _truncate_candidates, _garble_meta, _old_format, _other_raster, _lose_offsets]
)
def test_a_damaged_entry_is_ignored_and_rebuilt(tmp_path: Path, damage):
    polygons = voronoi_city()
    RasterIndex(polygons, cell_m=CELL_M, cache_dir=tmp_path)
    (entry,) = entries(tmp_path)
    damage(entry)
    rebuilt = RasterIndex(polygons, cell_m=CELL_M, cache_dir=tmp_path)
    assert rebuilt.cache == "built"
    x, y = probes(polygons, 5_000)
    assert np.array_equal(rebuilt.locate_many(x, y), exact(polygons, x, y))
    assert RasterIndex(polygons, cell_m=CELL_M, cache_dir=tmp_path).cache == "hit"  # the rebuilt entry serves
    assert entries(tmp_path) == [entry]


def test_the_key_changes_with_the_boundaries_their_order_and_the_cell_size(tmp_path: Path):
    polygons = voronoi_city()
    moved = polygons.copy()
    ring = shapely.get_coordinates(polygons[0])
    ring[1] += 1e-7  # one vertex of one grid, about a centimetre
    moved[0] = shapely.Polygon(ring)
    builds = [
        RasterIndex(polygons, cell_m=CELL_M, cache_dir=tmp_path),
        RasterIndex(moved, cell_m=CELL_M, cache_dir=tmp_path),
        RasterIndex(polygons[::-1], cell_m=CELL_M, cache_dir=tmp_path),  # codes ranked otherwise
        RasterIndex(polygons, cell_m=2 * CELL_M, cache_dir=tmp_path),
    ]
    assert [b.cache for b in builds] == ["built"] * 4
    assert len(entries(tmp_path)) == 4
    x, y = probes(polygons, 5_000)
    assert np.array_equal(builds[2].locate_many(x, y), exact(polygons[::-1], x, y))


def test_workers_starting_together_build_once(tmp_path: Path):
    polygons = voronoi_city(200)
    results: list[str] = []

    def worker() -> None:
        results.append(RasterIndex(shapely.from_wkb(shapely.to_wkb(polygons)), cell_m=CELL_M, cache_dir=tmp_path).cache)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["built", "hit", "hit"]


def test_an_unusable_cache_directory_still_answers(tmp_path: Path):
    polygons = voronoi_city()
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    index = RasterIndex(polygons, cell_m=CELL_M, cache_dir=not_a_directory / "cache")
    assert index.cache == "uncached"
    x, y = probes(polygons, 5_000)
    assert np.array_equal(index.locate_many(x, y), exact(polygons, x, y))


def test_only_the_most_recently_used_entries_are_kept(tmp_path: Path):
    from geoservice.routing.index_cache import IndexCache, index_key

    polygons = voronoi_city(20)
    cache = IndexCache(tmp_path, keep=2)
    keys = []
    for step in range(4):
        index = RasterIndex(polygons, cell_m=CELL_M + step)  # a build of its own, then written
        key = index_key(index.polygons, CELL_M + step, {"step": step})
        assert cache.fill(index, key) == "built"
        keys.append(key)
    assert [p.name for p in entries(tmp_path)] == sorted(keys[-2:])


def test_overlapping_grids_keep_exact_answers():
    """A grid that covers a whole boundary cell of a smaller-coded grid it overlaps is a candidate there.

    Slivers narrower than a cell (import validation lets them through) at every offset against the
    raster: points in the sliver's cells outside the first grid belong to the second.
    """
    cell = CELL_M / 111_320 / np.cos(np.radians(32.3))
    polygons = []
    for k in range(40):  # pairs of grids along a row, the overlap's edge at 40 offsets within a cell
        x0 = 120.5 + k * 0.004
        edge = x0 + 0.0015 + (k / 40) * cell
        first = box(edge, 32.3005, x0 + 0.003, 32.3015)  # smaller code: rank 2k
        second = box(x0, 32.300, edge + 0.9 * cell, 32.302)  # covers whole cells the first's edge crosses
        polygons += [first, second]
    polygons = np.array(polygons, dtype=object)
    index = RasterIndex(polygons, cell_m=CELL_M)
    x, y = probes(polygons, 50_000)
    expected = exact(polygons, x, y)
    assert np.array_equal(index.locate_many(x, y), expected)


def test_a_published_version_gets_an_entry_of_its_own(empty_db: Engine, tmp_path: Path):
    settings = RoutingSettings(router_cache_dir=tmp_path)
    load_tiny_city(empty_db)
    first = RouterRegistry(empty_db, settings).current()
    worker = RouterRegistry(empty_db, settings).current()  # a second worker reads the first one's build
    assert (first.grid_index.cache, worker.grid_index.cache) == ("built", "hit")
    moving = (X0 + 0.8 * D, Y0 + 0.5 * D)
    assert first.locate(*moving).grid.code == worker.locate(*moving).grid.code == WEST + "001"

    grids = tiny_city.grids()
    grids.loc[0, "geometry"] = shapely.MultiPolygon([box(X0, Y0, X0 + 0.6 * D, Y0 + D)])
    grids.loc[1, "geometry"] = shapely.MultiPolygon([box(X0 + 0.6 * D, Y0, X0 + 2 * D, Y0 + D)])
    load_tiny_city_version(empty_db, "v2", grids)
    second = RouterRegistry(empty_db, settings).current()
    assert second.version_id != first.version_id and second.grid_index.cache == "built"
    assert second.locate(*moving).grid.code == WEST + "002"
    assert first.locate(*moving).grid.code == WEST + "001"  # the old router keeps its own answers
    assert RoutingSettings(router_cache=False).index_cache_dir is None
    assert RoutingSettings(home=tmp_path).index_cache_dir == tmp_path / "router-cache"


def test_a_machine_whose_cache_lacks_a_version_takes_the_databases_copy(empty_db: Engine, tmp_path: Path):
    """Another machine (another cache directory) reads what the first built, and answers the same."""
    load_tiny_city(empty_db)
    here = RouterRegistry(empty_db, RoutingSettings(router_cache_dir=tmp_path / "here")).current()
    there = RouterRegistry(empty_db, RoutingSettings(router_cache_dir=tmp_path / "there")).current()
    assert (here.grid_index.cache, there.grid_index.cache) == ("built", "shared")
    assert there.station_index is not None and there.station_index.cache == "shared"
    for name in ("cells", "boundary_cells", "offsets", "candidates"):
        assert np.array_equal(getattr(there.grid_index, name), getattr(here.grid_index, name)), name
    x, y = probes(here.grid_index.polygons, 5_000)
    assert np.array_equal(there.grid_index.locate_many(x, y), exact(here.grid_index.polygons, x, y))
    again = RouterRegistry(empty_db, RoutingSettings(router_cache_dir=tmp_path / "there")).current()
    assert again.grid_index.cache == "hit"  # the copy was written into that machine's directory
    with empty_db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM router_index_entries")).scalar() == 2  # grids, stations


def test_a_damaged_copy_in_the_database_is_rebuilt_and_replaced(empty_db: Engine, tmp_path: Path):
    load_tiny_city(empty_db)
    RouterRegistry(empty_db, RoutingSettings(router_cache_dir=tmp_path / "first")).current()
    settle()  # its copies are written in the background: damage them once they are there
    with empty_db.begin() as conn:  # one cell's answer changed in every copy: the arrays still load
        conn.execute(text("UPDATE router_index_entries SET cells = set_byte(cells, length(cells) - 2, "
                          "get_byte(cells, length(cells) - 2) # 255)"))  # fmt: skip
    damaged = RouterRegistry(empty_db, RoutingSettings(router_cache_dir=tmp_path / "second")).current()
    assert damaged.grid_index.cache == "built"
    x, y = probes(damaged.grid_index.polygons, 5_000)
    assert np.array_equal(damaged.grid_index.locate_many(x, y), exact(damaged.grid_index.polygons, x, y))
    mended = RouterRegistry(empty_db, RoutingSettings(router_cache_dir=tmp_path / "third")).current()
    assert mended.grid_index.cache == "shared"
    assert np.array_equal(mended.grid_index.locate_many(x, y), exact(mended.grid_index.polygons, x, y))


def test_without_the_databases_store_the_index_is_built_all_the_same(empty_db: Engine, tmp_path: Path, caplog):
    load_tiny_city(empty_db)
    with empty_db.begin() as conn:  # a database of an older schema, or a role that may not read the table
        conn.execute(text("DROP TABLE router_index_entries"))
    router = RouterRegistry(empty_db, RoutingSettings(router_cache_dir=tmp_path)).current()
    assert router.grid_index.cache == "built"
    assert router.locate(X0 + 0.8 * D, Y0 + 0.5 * D).grid.code == WEST + "001"
    settle()  # the offer fails in the background, and says so
    assert "could not keep the router index in the database" in caplog.text


def test_the_database_keeps_the_most_recently_used_entries(empty_db: Engine, tmp_path: Path):
    from geoservice.routing.index_cache import IndexCache, index_key
    from geoservice.routing.index_store import DatabaseIndexStore

    polygons = voronoi_city(20)
    store = DatabaseIndexStore(empty_db, keep=2)
    keys = []
    for step in range(3):
        index = RasterIndex(polygons, cell_m=CELL_M + step)
        key = index_key(index.polygons, CELL_M + step, {"step": step})
        assert IndexCache(tmp_path / f"machine-{step}", shared=store).fill(index, key) == "built"
        settle()  # builds are offered in the background: this one is stored before the next step
        keys.append(key)
        if step == 1:  # the first entry is read again (another machine): it is now used more recently than the second
            assert IndexCache(tmp_path / "reader", shared=store).fill(index_of(polygons, 0), keys[0]) == "shared"
    with empty_db.connect() as conn:
        kept = conn.execute(text("SELECT key FROM router_index_entries")).scalars().all()
    assert sorted(kept) == sorted([keys[0], keys[2]])


def index_of(polygons: np.ndarray, step: int) -> RasterIndex:
    """An index of these polygons whose arrays are to be filled (a build's, replaced by what the cache gives)."""
    return RasterIndex(polygons, cell_m=CELL_M + step)
