"""``geoservice route IN OUT`` on the tiny city: every row kept, codes added, bad rows rejected with a reason."""

import csv
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from shapely import LineString, Point
from sqlalchemy import Engine
from typer.testing import CliRunner

from etl.formats import ReadError
from geoservice.boundaries.versions import current_version_id
from geoservice.cli import app
from geoservice.infra.database import transaction
from geoservice.routing.bulk_files import route_file
from geoservice.routing.loader import load_router
from geoservice.routing.router import Router
from layers.crs import wgs84_to_gcj02
from tests.etl.tiny_city import EAST, TOWN, WEST, X0, Y0, D
from tests.settings import ROUTING


@pytest.fixture
def router(routing_city: Engine) -> Router:
    """The tiny city's router, for the tests that call ``route_file`` itself."""
    with transaction(routing_city) as session:
        return load_router(session, current_version_id(session), ROUTING)


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


def test_csv_text_columns_come_out_as_they_came_in(routing_city: Engine, tmp_path: Path):
    rows = [
        ["id", "lon", "lat", "zip", "note", "empty", "number"],
        ["007", str(X0 + 0.5 * D), str(Y0 + 0.5 * D), "00123", 'say "hi", twice', "", "1e5"],
        ["008", f" {X0 + 3.5 * D} ", str(Y0 + 0.5 * D), "NA", "  spaced  ", "null", "0.10"],
        ["009", str(X0 + 0.5 * D), str(Y0 + 0.5 * D), "N/A", "多行\n文本", "", "-0"],
    ]  # fmt: skip
    with (tmp_path / "in.csv").open("w", encoding="utf-8-sig", newline="") as handle:  # with a BOM, as Excel saves
        csv.writer(handle).writerows(rows)
    assert "3 rows: 3 routed" in route(tmp_path / "in.csv", tmp_path / "out.csv")
    with (tmp_path / "out.csv").open(encoding="utf-8", newline="") as handle:
        out = list(csv.reader(handle))
    assert out[0] == [*rows[0], "grid_code", "community_code", "town_code", "station_code"]
    assert [row[:7] for row in out[1:]] == rows[1:]  # every input field, byte for byte
    assert [row[7] for row in out[1:]] == [WEST + "001", EAST + "002", WEST + "001"]


def test_csv_bad_values_and_broken_lines_go_to_the_rejects(routing_city: Engine, tmp_path: Path):
    good = f"{X0 + 0.5 * D},{Y0 + 0.5 * D}"
    (tmp_path / "in.csv").write_text(
        f"id,lon,lat\na,{good}\nb,120.1x,{Y0}\nc,,{Y0}\nd,{good},extra\ne,{good}\n", encoding="utf-8"
    )
    message = route(tmp_path / "in.csv", tmp_path / "out.csv")
    assert "5 rows: 2 routed, 0 outside every grid, 3 rejected" in message
    out = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    assert list(out["id"]) == ["a", "e"]
    rejected = pd.read_csv(tmp_path / "out.rejected.csv", dtype=str, keep_default_na=False)
    assert list(rejected["id"][:2]) == ["b", "c"]
    assert set(rejected["reason"][:2]) == {"lon/lat are missing or not numbers"}
    assert "4 fields where the header has 3" in rejected["reason"].iloc[2]  # the broken line, with its text
    assert "extra" in rejected["reason"].iloc[2]


def test_parquet_with_lon_lat_to_geoparquet(routing_city: Engine, tmp_path: Path):
    table = pa.table({"id": pa.array([1, 2, 3], pa.int64()),
                      "lon": [X0 + 0.5 * D, X0 + 3.5 * D, float("nan")], "lat": [Y0 + 0.5 * D, Y0 + 0.5 * D, Y0],
                      "note": ["西", "东", "坏"]})  # fmt: skip
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=2)
    message = route(tmp_path / "in.parquet", tmp_path / "out.parquet", "--chunk", 1000)
    assert "3 rows: 2 routed, 0 outside every grid, 1 rejected" in message
    out = gpd.read_parquet(tmp_path / "out.parquet")
    assert out.crs.to_epsg() == 4326
    assert list(out["id"]) == [1, 2]  # an integer column stays an integer
    assert list(out["note"]) == ["西", "东"]
    assert list(out["grid_code"]) == [WEST + "001", EAST + "002"]
    assert out.geometry.iloc[1].x == pytest.approx(X0 + 3.5 * D, abs=1e-12)
    rejected = pd.read_csv(tmp_path / "out.rejected.csv", dtype=str, keep_default_na=False)
    assert list(rejected["id"]) == ["3"]


def test_geoparquet_in_gcj02_to_csv_and_geoparquet(routing_city: Engine, tmp_path: Path):
    lon, lat = wgs84_to_gcj02([X0 + 0.5 * D, X0 + 2.5 * D], [Y0 + 0.5 * D] * 2)
    geometry = [Point(lon[0], lat[0]), Point(lon[1], lat[1]), LineString([(lon[0], lat[0]), (lon[1], lat[1])]), None]
    gpd.GeoDataFrame({"name": ["p", "q", "line", "none"]}, geometry=geometry, crs=4326).to_parquet(
        tmp_path / "in.parquet"
    )
    message = route(tmp_path / "in.parquet", tmp_path / "out.csv", "--crs", "gcj02")
    assert "4 rows: 2 routed, 0 outside every grid, 2 rejected" in message
    out = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    assert list(out["name"]) == ["p", "q"] and "geometry" not in out.columns
    assert list(out["grid_code"]) == [WEST + "001", EAST + "001"]
    rejected = pd.read_csv(tmp_path / "out.rejected.csv", dtype=str, keep_default_na=False)
    assert dict(zip(rejected["name"], rejected["reason"], strict=True)) == {
        "line": "geometry is not a Point", "none": "lon/lat are missing or not numbers"}  # fmt: skip
    route(tmp_path / "in.parquet", tmp_path / "out.parquet", "--crs", "gcj02")
    back = gpd.read_parquet(tmp_path / "out.parquet")
    assert back.geometry.iloc[0].x == pytest.approx(X0 + 0.5 * D, abs=1e-9)  # written back in WGS84


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("in.csv", "id,x,y\n1,2,3\n", "a CSV needs 'lon' and 'lat' columns"),
        ("in.parquet", "not parquet at all", "cannot read as Parquet"),
        ("in.txt", "lon,lat\n", "unsupported format '.txt'"),
    ],
)
def test_bad_input_is_one_line(routing_city: Engine, tmp_path: Path, name: str, content: str, expected: str):
    (tmp_path / name).write_text(content)
    result = CliRunner().invoke(app, ["route", str(tmp_path / name), str(tmp_path / "out.csv")])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert expected in result.output.strip().splitlines()[-1]  # one line (after the progress bar's)


@pytest.mark.parametrize(
    ("out", "expected"),
    [("missing/out.csv", "no such directory"), ("folder.csv", "is a directory"),
     ("out.csv --rejects missing/bad.csv", "no such directory")],
)  # fmt: skip
def test_an_output_that_cannot_be_written_is_said_before_routing(
    routing_city: Engine, tmp_path: Path, out: str, expected: str
):
    (tmp_path / "in.csv").write_text(f"lon,lat\n{X0 + 0.5 * D},{Y0 + 0.5 * D}\n")
    (tmp_path / "folder.csv").mkdir()
    target, *options = out.split()
    options = [str(tmp_path / o) if "/" in o else o for o in options]
    result = CliRunner().invoke(app, ["route", str(tmp_path / "in.csv"), str(tmp_path / target), *options])
    assert result.exit_code != 0 and "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert expected in last and "partial" not in last
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.csv", "in.csv"]


def test_a_city_with_no_version_in_force_routes_nothing_and_keeps_the_old_output(
    use_database: str, empty_db: Engine, tmp_path: Path
):
    """A city that has published no boundaries cannot route: say so before any file is touched."""
    (tmp_path / "in.csv").write_text(f"lon,lat\n{X0 + 0.5 * D},{Y0 + 0.5 * D}\n")
    (tmp_path / "out.csv").write_text("yesterday's answer\n")
    result = CliRunner().invoke(app, ["route", str(tmp_path / "in.csv"), str(tmp_path / "out.csv")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "version" in result.output.strip().splitlines()[-1]
    assert (tmp_path / "out.csv").read_text() == "yesterday's answer\n"
    assert not (tmp_path / "out.rejected.csv").exists()


def test_the_progress_bar_ends_on_the_rows_read(router: Router, tmp_path: Path):
    """The CSV's row count is estimated from its first MiB (no second read of the file); the last step is exact."""

    rows = 2_500
    lines = [f"{X0 + 0.5 * D},{Y0 + 0.5 * D},{'长' * (i % 7)}" for i in range(rows)]  # rows of unequal length
    (tmp_path / "in.csv").write_text("lon,lat,note\n" + "\n".join(lines) + "\n", encoding="utf-8")
    steps: list[tuple[int, int]] = []
    summary = route_file(router, tmp_path / "in.csv", tmp_path / "out.csv", chunk_rows=1000,
                         progress=lambda done, total: steps.append((done, total)))  # fmt: skip
    assert summary.rows == summary.routed == rows
    assert [done for done, _ in steps] == sorted(done for done, _ in steps)
    assert all(done <= total for done, total in steps)
    assert 0.8 * rows <= steps[0][1] <= 1.2 * rows  # the estimate, before the file is read through
    assert steps[-1] == (rows, rows)


def test_many_chunks_come_out_in_their_order(routing_city: Engine, tmp_path: Path):
    """Each next chunk is read, and the last one written, while one is routed: the rows keep their order."""
    rows = 7_500
    west, east = (X0 + 0.5 * D, Y0 + 0.5 * D), (X0 + 3.5 * D, Y0 + 0.5 * D)
    points = [west if (i // 1000) % 2 == 0 else east for i in range(rows)]  # the grid changes chunk by chunk
    pq.write_table(pa.table({"id": list(range(rows)), "lon": [x for x, _ in points], "lat": [y for _, y in points]}),
                   tmp_path / "in.parquet", row_group_size=500)  # fmt: skip
    for name in ("out.parquet", "out.csv"):
        assert f"{rows:,} rows: {rows:,} routed" in route(tmp_path / "in.parquet", tmp_path / name, "--chunk", 1000)
    for out in (pd.read_parquet(tmp_path / "out.parquet"), pd.read_csv(tmp_path / "out.csv", dtype={"grid_code": str})):
        assert list(out["id"]) == list(range(rows))
        assert list(out["grid_code"]) == [WEST + "001" if p == west else EAST + "002" for p in points]


def test_an_input_that_breaks_half_way_leaves_the_old_output(router: Router, tmp_path: Path):
    """A bad line megabytes in fails after chunks were routed and written: nothing of the new run is kept."""

    good = f"{X0 + 0.5 * D},{Y0 + 0.5 * D},巡查记录\n"
    with (tmp_path / "in.csv").open("wb") as handle:
        handle.write(b"lon,lat,note\n" + good.encode() * 100_000 + b"1,2,\xff\xfe\n" + good.encode() * 10)
    (tmp_path / "out.csv").write_text("yesterday's answer\n")
    (tmp_path / "out.rejected.csv").write_text("yesterday's rejects\n")
    steps: list[int] = []
    with pytest.raises(ReadError, match="cannot read as UTF-8 CSV"):
        route_file(router, tmp_path / "in.csv", tmp_path / "out.csv", chunk_rows=1000,
                   progress=lambda done, total: steps.append(done))  # fmt: skip
    assert steps and steps[-1] >= 10_000  # chunks were routed and written before the bad line was read
    assert (tmp_path / "out.csv").read_text() == "yesterday's answer\n"
    assert (tmp_path / "out.rejected.csv").read_text() == "yesterday's rejects\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv", "out.rejected.csv"]  # no partial file
    result = CliRunner().invoke(app, ["route", str(tmp_path / "in.csv"), str(tmp_path / "out.csv")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "cannot read as UTF-8 CSV" in result.output.strip().splitlines()[-1]
    assert (tmp_path / "out.csv").read_text() == "yesterday's answer\n"


def test_a_geopackage_layer_is_named_after_the_file(routing_city: Engine, tmp_path: Path):
    pd.DataFrame({"lon": [X0 + 0.5 * D], "lat": [Y0 + 0.5 * D]}).to_csv(tmp_path / "in.csv", index=False)
    route(tmp_path / "in.csv", tmp_path / "巡查点.gpkg")
    import pyogrio

    assert [name for name, _ in pyogrio.list_layers(tmp_path / "巡查点.gpkg")] == ["巡查点"]
    assert list(gpd.read_file(tmp_path / "巡查点.gpkg")["grid_code"]) == [WEST + "001"]


def test_the_router_is_made_while_the_input_is_read_and_not_for_an_unreadable_input(router: Router, tmp_path: Path):
    """``route_file`` takes the function that makes the router: asked once the input opens, never for a bad one."""
    made: list[Router] = []

    def make() -> Router:
        made.append(router)
        return router

    with pytest.raises(ReadError, match="no such file"):
        route_file(make, tmp_path / "missing.csv", tmp_path / "out.csv")
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    with pytest.raises(ReadError, match="'lon' and 'lat'"):
        route_file(make, tmp_path / "bad.csv", tmp_path / "out.csv")
    assert made == []
    rows = 3_500
    lines = [f"{X0 + 0.5 * D if i % 2 else X0 + 3.5 * D},{Y0 + 0.5 * D}" for i in range(rows)]
    (tmp_path / "in.csv").write_text("lon,lat\n" + "\n".join(lines) + "\n")
    summary = route_file(make, tmp_path / "in.csv", tmp_path / "out.csv", chunk_rows=1000)  # 4 chunks read ahead
    assert len(made) == 1 and summary.rows == summary.routed == rows
    with (tmp_path / "out.csv").open() as f:
        codes = [row["grid_code"] for row in csv.DictReader(f)]
    assert codes == [WEST + "001" if i % 2 else EAST + "002" for i in range(rows)]
