"""The pure parts of the tiles: tile arithmetic against PostGIS, and what a change touches."""

import pytest
from sqlalchemy import Engine, text

from tiles.address import BadTileAddress, TileAddress
from tiles.catalog import simplify_tolerance
from tiles.versions import SourceHistory


@pytest.mark.parametrize(("z", "x", "y"), [(0, 0, 0), (10, 853, 412), (14, 13675, 6613), (18, 218800, 105800)])
def test_tile_bounds_match_postgis(empty_db: Engine, z: int, x: int, y: int):
    with empty_db.connect() as conn:
        row = conn.execute(
            text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM ST_TileEnvelope(:z, :x, :y) e"),
            {"z": z, "x": x, "y": y},
        ).one()
        west, south = conn.execute(
            text("SELECT ST_X(p), ST_Y(p) FROM ST_Transform(ST_SetSRID(ST_MakePoint(:x, :y), 3857), 4326) p"),
            {"x": row[0], "y": row[1]},
        ).one()
    assert TileAddress(z, x, y).mercator_bounds() == pytest.approx(tuple(row), abs=1e-6)
    assert TileAddress(z, x, y).lonlat_bounds()[:2] == pytest.approx((west, south), abs=1e-9)


def test_addresses_outside_the_grid_are_refused():
    with pytest.raises(BadTileAddress, match="0 to 3"):
        TileAddress(2, 4, 0)
    with pytest.raises(BadTileAddress, match="zoom"):
        TileAddress(25, 0, 0)


def test_simplification_stays_within_a_pixel_along_both_axes():
    tile = TileAddress(12, 3419, 1661)  # 如皋, about 32.4°N
    tolerance = tile.pixel_m / 111_319.490793  # one pixel of longitude, in degrees
    assert simplify_tolerance(tile) < tolerance  # latitude pixels are shorter in degrees: cos(lat) of it
    assert simplify_tolerance(tile) == pytest.approx(tolerance * 0.844, rel=0.01)


def test_a_change_touches_only_the_tiles_its_boxes_meet():
    history = SourceHistory(current=1)
    history.advance(2, [(120.0, 32.0, 120.1, 32.1)])
    history.advance(3, [(121.0, 33.0, 121.0, 33.0)])
    assert history.untouched(1, (119.0, 31.0, 119.5, 31.5))
    assert not history.untouched(1, (120.05, 32.05, 120.2, 32.2))
    assert not history.untouched(2, (120.9, 32.9, 121.1, 33.1))
    assert history.untouched(2, (120.05, 32.05, 120.2, 32.2))  # the first change is older than this tile
    assert history.changed_since(1) == [(120.0, 32.0, 120.1, 32.1), (121.0, 33.0, 121.0, 33.0)]
    history.advance(4, None)  # a change of unknown reach touches everything
    assert not history.untouched(3, (0.0, 0.0, 0.1, 0.1))
    assert history.changed_since(3) is None
    assert not history.untouched(0, (0.0, 0.0, 0.1, 0.1))  # a version it never saw
