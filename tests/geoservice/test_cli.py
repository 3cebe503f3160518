"""The ``geoservice`` command as a user runs it: exit codes, messages, and nothing half-written."""

import subprocess
import sys
from pathlib import Path

import pytest
from shapely import MultiPolygon, Polygon
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from geoservice.cli import COMMANDS, app, load_command
from geoservice.infra.database import make_engine
from geoservice.routing.registry import RouterRegistry
from geoservice.settings import RoutingSettings
from tests.etl import tiny_city
from tests.etl.tiny_city import EAST, WEST, X0, Y0, D, write

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def scalar(url: str, sql: str):
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def test_bad_grids_file_loads_nothing_and_names_every_error(use_database: str, tmp_path: Path):
    assert (
        run("import", "regions", write(tiny_city.regions(), tmp_path / "r.geojson"), "--version", "v1").exit_code == 0
    )
    grids = tiny_city.grids()
    grids.loc[1, "geometry"] = MultiPolygon(
        [Polygon([(120.51, 32.30), (120.52, 32.31), (120.52, 32.30), (120.51, 32.31)])]
    )
    grids.loc[3, "code"] = grids.loc[2, "code"]
    result = run("import", "grids", write(grids, tmp_path / "bad.geojson"), "--version", "v1")
    assert result.exit_code == 1
    assert f"feature 1 (code {WEST}002): invalid geometry: Self-intersection" in result.output
    assert f"feature 3 (code {EAST}001): duplicate code: also used by feature 2" in result.output
    assert "2 error(s); nothing was loaded into grids" in result.output
    assert scalar(use_database, "SELECT count(*) FROM grids") == 0


def test_import_publish_export_round(use_database: str, tmp_path: Path):
    run("import", "regions", write(tiny_city.regions(), tmp_path / "r.geojson"), "--version", "2026-11")
    result = run("import", "grids", write(tiny_city.grids(), tmp_path / "g.gpkg"), "--version", "2026-11")
    assert result.exit_code == 0 and "loaded 4 grids (boundary version 2026-11)" in result.output
    assert "version 2026-11 is a draft" in result.output  # and how to put it in force:
    assert "geoservice versions publish 2026-11" in result.output
    result = run("versions", "publish", "2026-11", "--at", "2026-11-01T00:00:00+08:00")
    assert result.exit_code == 0, result.output
    assert "published 2026-11: 4 grids in force from 2026-10-31T16:00:00+00:00" in result.output
    listing = run("versions", "list").output
    assert "2026-11" in listing and "published" in listing
    result = run("export", "grids", tmp_path / "out.geojson")
    assert result.exit_code == 0 and "wrote 4 grids" in result.output
    assert (tmp_path / "out.geojson").read_text().count('"Feature"') == 4


def test_a_publish_builds_the_router_index_the_next_command_reads(use_database: str, tmp_path: Path, monkeypatch):
    """Issue 23: a ``route`` right after a publish maps the grid index the publish built, not its own."""
    cache = tmp_path / "router-cache"
    monkeypatch.setenv("GEOSERVICE_ROUTER_CACHE_DIR", str(cache))
    run("import", "regions", write(tiny_city.regions(), tmp_path / "r.geojson"), "--version", "v1")
    run("import", "grids", write(tiny_city.grids(), tmp_path / "g.geojson"), "--version", "v1")
    assert not cache.exists()
    result = run("versions", "publish", "v1")
    assert result.exit_code == 0 and "router index of v1 built" in result.output, result.output
    engine = make_engine(use_database)
    try:
        router = RouterRegistry(engine, RoutingSettings()).current()  # as ``geoservice route`` loads it
    finally:
        engine.dispose()
    assert router.version_name == "v1" and router.grid_index.cache == "hit"
    monkeypatch.setenv("GEOSERVICE_ROUTER_CACHE", "false")  # no cache: the publish says nothing of an index
    result = run("versions", "rollback", "v1", "--as", "v1-again")
    assert result.exit_code == 0 and "router index" not in result.output, result.output


def test_the_executable_ends_with_its_status_its_lines_its_file_and_the_index_stored(
    use_database: str, tmp_path: Path, monkeypatch
):
    """The installed ``geoservice`` leaves without the interpreter's teardown (``geoservice.cli.process``).

    What a user sees must not change: each status, every line printed, every row written, and the
    router index the command built offered to the database, for the next machine, before it ended.
    """
    monkeypatch.setenv("GEOSERVICE_ROUTER_CACHE", "false")  # the publish builds no index: the route does
    run("import", "regions", write(tiny_city.regions(), tmp_path / "r.geojson"), "--version", "v1")
    run("import", "grids", write(tiny_city.grids(), tmp_path / "g.geojson"), "--version", "v1")
    assert run("versions", "publish", "v1").exit_code == 0
    monkeypatch.setenv("GEOSERVICE_ROUTER_CACHE", "true")
    monkeypatch.setenv("GEOSERVICE_ROUTER_CACHE_DIR", str(tmp_path / "router-cache"))
    rows = 20_000
    lines = ["id,lon,lat", *(f"{i},{X0 + (i % 40) * D / 10},{Y0 + 0.5 * D}" for i in range(rows))]
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    executable = str(Path(sys.executable).with_name("geoservice"))

    def geoservice(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([executable, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path)

    routed = geoservice("route", "in.csv", "out.csv")
    assert routed.returncode == 0, routed.stderr
    assert f"{rows:,} rows: {rows:,} routed" in routed.stdout
    written = (tmp_path / "out.csv").read_text().splitlines()
    assert len(written) == rows + 1 and written[-1].startswith(f'"{rows - 1}",')
    assert scalar(use_database, "SELECT count(*) FROM router_index_entries") >= 1
    assert geoservice("--help").stdout.rstrip().endswith("╯")  # the whole help, its box closed
    missing = geoservice("route", "missing.csv", "out2.csv")
    assert missing.returncode == 1 and missing.stderr.strip().splitlines()[-1] == "error: missing.csv: no such file"
    assert geoservice("no-such-command").returncode == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("import", "roads", "x.geojson"), "unknown layer 'roads'"),
        (("import", "posts", "missing.geojson"), "missing.geojson: no such file"),
        (
            ("import", "posts", "p.geojson", "--crs", "mars2000"),
            "expected one of wgs84, cgcs2000, gcj02, bd09 or EPSG:n",
        ),
        (("versions", "publish", "nope"), "no boundary version called 'nope'"),
        (("export", "grids", "g.geojson"), "no boundary version is in force"),
        (("export", "posts", "p.kml"), "unsupported format '.kml'"),
    ],
)
def test_user_errors_exit_1_with_a_message(use_database: str, tmp_path: Path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    write(tiny_city.posts(), tmp_path / "p.geojson")
    result = run(*args)
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())


def test_publish_refuses_a_version_without_grids(use_database: str, tmp_path: Path):
    run("import", "regions", write(tiny_city.regions(), tmp_path / "r.geojson"), "--version", "v1")
    result = run("versions", "publish", "v1")
    assert result.exit_code == 1 and "has no grids" in result.output
    assert scalar(use_database, "SELECT status::text FROM boundary_versions") == "draft"


def test_users_add_list_disable(use_database: str, tmp_path: Path):
    run("import", "regions", write(tiny_city.regions(), tmp_path / "r.geojson"), "--version", "v1")
    result = run(
        "users", "add", "chen", "--role", "dispatcher", "--region", "320682000000", "--password", "long enough pw"
    )
    assert result.exit_code == 0 and "added chen (dispatcher)" in result.output
    assert run("users", "add", "wu", "--role", "handler", "--password", "long enough pw").exit_code == 1
    listing = run("users", "list").output
    assert "chen" in listing and "dispatcher" in listing and "active" in listing
    assert run("users", "disable", "chen").exit_code == 0
    assert "disabled" in run("users", "list").output
    assert scalar(use_database, "SELECT password_hash LIKE '$argon2%' FROM users WHERE username = 'chen'") is True


def test_users_add_checks_the_region_and_takes_a_grid(use_database: str, tmp_path: Path):
    """A scope must exist; a grid worker may be scoped to one grid (its 15-digit code), without a traceback."""
    run("import", "regions", write(tiny_city.regions(), tmp_path / "r.geojson"), "--version", "v1")
    run("import", "grids", write(tiny_city.grids(), tmp_path / "g.geojson"), "--version", "v1")
    pw = ("--password", "long enough pw")
    result = run("users", "add", "gw", "--role", "grid_worker", "--region", WEST + "001", *pw)
    assert result.exit_code == 0, result.output
    assert scalar(use_database, "SELECT region_code FROM users WHERE username = 'gw'") == WEST + "001"
    nowhere = run("users", "add", "d", "--role", "dispatcher", "--region", "110101001001", *pw)
    assert nowhere.exit_code == 1 and "no region with code 110101001001" in nowhere.output
    no_grid = run("users", "add", "g2", "--role", "grid_worker", "--region", WEST + "999", *pw)
    assert no_grid.exit_code == 1 and f"no grid with code {WEST}999" in no_grid.output
    garbage = run("users", "add", "g3", "--role", "grid_worker", "--region", "32068210020012345", *pw)
    assert garbage.exit_code == 1 and "is not a region code" in garbage.output
    assert scalar(use_database, "SELECT count(*) FROM users") == 1


def test_users_unlock_lifts_a_sign_in_lock(use_database: str):
    run("users", "add", "li", "--role", "planner", "--password", "long enough pw")
    engine = create_engine(use_database)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO signin_throttle (kind, subject, failures, locked_until) "
                          "VALUES ('account', 'li', 10, now() + interval '1 hour')"))  # fmt: skip
    engine.dispose()
    result = run("users", "unlock", "li")
    assert result.exit_code == 0 and "unlocked li" in result.output
    assert scalar(use_database, "SELECT count(*) FROM signin_throttle") == 0
    assert "li was not locked" in run("users", "unlock", "li").output
    missing = run("users", "unlock", "nobody")
    assert missing.exit_code == 1 and "no user called 'nobody'" in missing.output


def test_the_command_list_is_each_command_s_own_first_line():
    for name, (_, _, line) in COMMANDS.items():
        command = load_command(name)
        assert (command.help or "").strip().splitlines()[0] == line, name


def test_help_exits_0_and_a_command_s_own_status_comes_through():
    for args in ([], ["events"], ["events", "--help"], ["versions", "publish", "--help"]):
        result = runner.invoke(app, ["--help"] if not args else args)
        assert result.exit_code in (0, 2) and "error:" not in result.output, (args, result.output)
    assert runner.invoke(app, ["events", "--help"]).exit_code == 0
    assert "events [OPTIONS] COMMAND" in " ".join(runner.invoke(app, ["events", "--help"]).output.split())
    unknown = runner.invoke(app, ["no-such-command"])
    assert unknown.exit_code == 2 and "No such command" in unknown.output


def test_starting_a_command_imports_only_what_it_needs():
    """``geoservice --help`` and a light command do not import geopandas, folium or spopt (seconds at start)."""
    probe = (
        "import sys\n"
        "from geoservice.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit as exit:\n    assert exit.code == 0, exit.code\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'geopandas', 'folium', 'spopt', 'pandas', 'fastapi'})\n"
        "print('HEAVY', heavy)\n"
    )
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert "HEAVY []" in shown.stdout and "versions" in shown.stdout
