"""``geoservice route --engine dask``: partitioned Parquet routed on a LocalCluster, as the single process routes it."""

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from geoservice.boundaries.versions import current_version_id
from geoservice.cli import app
from geoservice.infra.database import transaction
from geoservice.routing.bulk import route_points
from geoservice.routing.loader import load_router
from layers.crs import wgs84_to_gcj02
from tests.etl.tiny_city import X0, Y0, D
from tests.settings import ROUTING

CATEGORIES = np.array(["public_order.fight", "environment.noise", "livelihood", "city_management"], dtype=object)


def points(n: int, seed: int = 7) -> pd.DataFrame:
    """Points over the town and around it (some outside every grid), a few unusable, with categories."""
    rng = np.random.default_rng(seed)
    lon = X0 - D + rng.random(n) * 6 * D
    lat = Y0 - D / 2 + rng.random(n) * 2 * D
    lon[::97] = np.nan  # unusable rows
    lat[5::101] = 95.0  # out of range
    return pd.DataFrame({"id": np.arange(n), "lon": lon, "lat": lat, "category": CATEGORIES[rng.integers(0, 4, n)]})


def write_partitions(frame: pd.DataFrame, folder: Path, parts: int) -> Path:
    folder.mkdir()
    bounds = np.linspace(0, len(frame), parts + 1).astype(int)
    for k in range(parts):
        frame.iloc[bounds[k] : bounds[k + 1]].to_parquet(folder / f"part-{k:03d}.parquet", index=False)
    return folder


def run(*args: object) -> str:
    result = CliRunner().invoke(app, ["route", *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def expected(city: Engine, frame: pd.DataFrame) -> pd.DataFrame:
    """The single-process router's answer for every usable row."""
    usable = frame[np.isfinite(frame["lon"]) & (frame["lat"].abs() <= 90)].reset_index(drop=True)
    with transaction(city) as session:
        router = load_router(session, current_version_id(session), ROUTING)
    routed = route_points(router, usable["lon"].to_numpy(), usable["lat"].to_numpy(), usable["category"].to_numpy())
    return pd.concat([usable[["id"]], routed], axis=1)


def test_every_point_as_the_single_process_routes_it(routing_city: Engine, tmp_path: Path):
    frame = points(6_000)
    source = write_partitions(frame, tmp_path / "in", 5)
    message = run(source, tmp_path / "out", "--engine", "dask", "--workers", "2", "--load", "routed_points")
    rejected = int((~np.isfinite(frame["lon"]) | (frame["lat"].abs() > 90)).sum())
    assert "6,000 rows in 5 partitions on 2 workers" in message
    assert f"{rejected} rejected" in message
    assert "loaded 6,000 rows into table routed_points" in message

    out = gpd.read_parquet(tmp_path / "out").sort_values("id").reset_index(drop=True)
    assert len(out) == 6_000 and out.crs.to_epsg() == 4326
    good = out[out["reason"] == ""].reset_index(drop=True)
    want = expected(routing_city, frame).sort_values("id").reset_index(drop=True)
    assert list(good["id"]) == list(want["id"])
    for column in ("grid_code", "community_code", "town_code", "station_code", "department"):
        assert list(good[column]) == list(want[column]), column
    assert list(good["rule_id"].astype("Int64")) == list(want["rule_id"])
    assert (good["grid_code"] != "").sum() > 1_000 and (good["grid_code"] == "").sum() > 1_000
    assert set(out.loc[out["reason"] != "", "reason"]) == {
        "lon/lat are missing or not numbers",
        "coordinates out of range (lon ±180, lat ±90): wrong --crs, or lat/lon swapped?",
    }
    assert np.allclose(shapely.get_x(good.geometry.values), frame.set_index("id").loc[good["id"], "lon"])

    with routing_city.connect() as conn:
        stored = conn.execute(text(
            "SELECT count(*), count(*) FILTER (WHERE grid_code <> ''), "
            "count(*) FILTER (WHERE ST_DWithin((SELECT geom FROM grids WHERE code = r.grid_code)::geography, "
            "r.geom::geography, :snap)) FROM routed_points r"
        ), {"snap": ROUTING.snap_tolerance_m + 0.5}).one()  # fmt: skip
    assert stored[0] == 6_000
    # Every stored grid code is the grid covering the point, or one within the snap tolerance of it.
    assert stored[1] == stored[2] == (good["grid_code"] != "").sum()


def test_geoparquet_in_gcj02(routing_city: Engine, tmp_path: Path):
    frame = points(800, seed=3).dropna()
    frame = frame[frame["lat"] <= 90]
    gx, gy = wgs84_to_gcj02(frame["lon"].to_numpy(), frame["lat"].to_numpy())
    folder = tmp_path / "in"
    folder.mkdir()
    gpd.GeoDataFrame(frame[["id", "category"]], geometry=gpd.points_from_xy(gx, gy), crs=4326).to_parquet(
        folder / "part-0.parquet"
    )
    run(folder, tmp_path / "out", "--engine", "dask", "--workers", "1", "--crs", "gcj02")
    out = gpd.read_parquet(tmp_path / "out").sort_values("id").reset_index(drop=True)
    want = expected(routing_city, frame).sort_values("id").reset_index(drop=True)
    assert list(out["grid_code"]) == list(want["grid_code"])
    assert np.allclose(shapely.get_x(out.geometry.values), want.merge(frame, on="id")["lon"], atol=1e-7)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "dask"], "the dask engine reads Parquet"),
        (["--load", "t"], "--scheduler and --load go with --engine dask"),
        (["--engine", "dask", "--load", "Bad-Name"], "is not a table name"),
    ],
)
def test_refusals_are_one_line(routing_city: Engine, tmp_path: Path, args: list[str], message: str):
    source = tmp_path / "in.csv"
    pd.DataFrame({"lon": [X0], "lat": [Y0]}).to_csv(source, index=False)
    if "Bad-Name" in args:
        source = write_partitions(pd.DataFrame({"lon": [X0 + D / 2], "lat": [Y0 + D / 2]}), tmp_path / "in", 1)
    result = CliRunner().invoke(app, ["route", str(source), str(tmp_path / "out"), *args])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
