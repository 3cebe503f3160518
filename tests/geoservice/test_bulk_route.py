"""``geoservice route IN OUT`` on the tiny city: every row kept, codes added, bad rows rejected with a reason."""

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from shapely import Point
from sqlalchemy import Engine
from typer.testing import CliRunner

from geoservice.cli import app
from layers.crs import wgs84_to_gcj02
from tests.etl.tiny_city import EAST, TOWN, WEST, X0, Y0, D


def route(*args) -> str:
    result = CliRunner().invoke(app, ["route", *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_csv_rows_keep_their_columns_and_gain_codes(routing_city: Engine, tmp_path: Path):
    pd.DataFrame(
        {"id": ["a", "b", "c", "d", "e"],
         "lon": [X0 + 0.5 * D, X0 + 3.5 * D, "x", X0 + 20 * D, "95"],
         "lat": [Y0 + 0.5 * D, Y0 + 0.5 * D, Y0, Y0, "200"],
         "note": ["西", "东", "坏", "远", "超"],
         "category": ["public_order.fight", "environment.noise", "", "livelihood", "livelihood"]}
    ).to_csv(tmp_path / "in.csv", index=False)  # fmt: skip
    message = route(tmp_path / "in.csv", tmp_path / "out.csv", "--chunk", 1000)
    assert "5 rows: 2 routed, 1 outside every grid, 2 rejected" in message
    out = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    assert list(out["id"]) == ["a", "b", "d"]
    assert list(out["note"]) == ["西", "东", "远"]
    assert list(out["grid_code"]) == [WEST + "001", EAST + "002", ""]
    assert list(out["town_code"]) == [TOWN, TOWN, ""]
    assert list(out["station_code"]) == ["PS001", "PS001", "PS001"]  # outside its area: the nearest station
    assert list(out["department"]) == ["police", "urban_management", ""]
    assert list(out["rule_id"]) == ["1", "17", ""]
    rejected = pd.read_csv(tmp_path / "out.rejected.csv", dtype=str, keep_default_na=False)
    assert list(rejected["id"]) == ["c", "e"]
    assert rejected["reason"].iloc[0] == "lon/lat are missing or not numbers"
    assert rejected["reason"].iloc[1].startswith("coordinates out of range")


def test_geopackage_in_gcj02_to_geojson(routing_city: Engine, tmp_path: Path):
    lon, lat = wgs84_to_gcj02([X0 + 0.5 * D, X0 + 2.5 * D], [Y0 + 0.5 * D] * 2)
    gpd.GeoDataFrame({"name": ["p", "q"]}, geometry=[Point(x, y) for x, y in zip(lon, lat, strict=True)], crs=4326
                     ).to_file(tmp_path / "in.gpkg")  # fmt: skip
    assert "2 rows: 2 routed" in route(tmp_path / "in.gpkg", tmp_path / "out.geojson", "--crs", "gcj02")
    out = gpd.read_file(tmp_path / "out.geojson")
    assert list(out["grid_code"]) == [WEST + "001", EAST + "001"]
    assert out.geometry.iloc[0].x == pytest.approx(X0 + 0.5 * D, abs=1e-9)  # written back in WGS84
