"""What ``geoservice route`` and a server worker load at start: only what they use (issue 23).

A user waits for the route command's imports and pays each worker's memory; geopandas, pandas,
pyogrio, scipy, folium, spopt/pulp, Alembic and GeoAlchemy2 are imported by the code paths that use
them, not at start (pyarrow's own probe for pandas included). Each test runs the real thing in a fresh interpreter (routes a file; answers
``/readyz`` from a router built from the database) and then lists which of those it loaded. Twice:
the first run fills the router cache (building the grid index labels its raster with scipy.ndimage),
the second starts as every later run and every restarted worker does, from the filled cache.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine

from tests.etl.tiny_city import EAST, WEST, X0, Y0, D
from tests.geoservice.test_locate_api import load_tiny_city

ROOT = Path(__file__).parents[2]
HEAVY = "{'geopandas', 'pandas', 'pyogrio', 'scipy', 'folium', 'spopt', 'pulp', 'alembic', 'geoalchemy2'}"


def run_probe(probe: str, database_url: str, home: Path) -> dict:
    env = {**os.environ, "GEOSERVICE_DATABASE_URL": database_url, "GEOSERVICE_HOME": str(home),
           "GEOSERVICE_LOG_FORMAT": "text"}  # fmt: skip
    probe += f"\nimport json, sys\nprint('LOADED', json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {HEAVY})))\n"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("LOADED "))
    return {"loaded": json.loads(line.removeprefix("LOADED ")), "stdout": done.stdout}


def route_probe(tmp_path: Path, out_name: str) -> tuple[str, Path]:
    """A fresh interpreter's ``geoservice route`` of two points (one per grid), and where it writes."""
    source, target = tmp_path / "in.csv", tmp_path / out_name
    with source.open("w", newline="") as f:
        csv.writer(f).writerows([["id", "lon", "lat"], ["a", X0 + 0.5 * D, Y0 + 0.5 * D], ["b", X0 + 3.5 * D, Y0 + 0.5 * D]])
    probe = (
        "from geoservice.cli import app\n"
        f"try:\n    app(['route', {str(source)!r}, {str(target)!r}])\n"
        "except SystemExit as exit:\n    assert exit.code in (0, None), exit.code\n"
    )
    return probe, target


def test_route_command_routes_a_file_without_the_libraries_it_does_not_use(routing_city: Engine, tmp_path: Path):
    probe, target = route_probe(tmp_path, "out.csv")
    for _ in range(2):
        target.unlink(missing_ok=True)
        shown = run_probe(probe, routing_city.url.render_as_string(hide_password=False), tmp_path)
        assert "2 rows: 2 routed" in shown["stdout"]
        with target.open() as f:
            assert [row["grid_code"] for row in csv.DictReader(f)] == [WEST + "001", EAST + "002"]
    assert shown["loaded"] == []


def test_route_command_still_writes_geojson_through_pandas(routing_city: Engine, tmp_path: Path):
    """The GeoJSON writer needs pandas after pyarrow's probe was told there is none: it gets it."""
    probe, target = route_probe(tmp_path, "out.geojson")
    shown = run_probe(probe, routing_city.url.render_as_string(hide_password=False), tmp_path)
    assert "2 rows: 2 routed" in shown["stdout"]
    features = json.loads(target.read_text())["features"]
    assert [f["properties"]["grid_code"] for f in features] == [WEST + "001", EAST + "002"]
    assert "pandas" in shown["loaded"]


def test_a_server_worker_answers_without_the_libraries_of_rarer_routes(empty_db: Engine, empty_url: str, tmp_path: Path):
    load_tiny_city(empty_db)
    probe = (
        "from fastapi.testclient import TestClient\n"
        "from geoservice.app import create_app\n"
        "with TestClient(create_app()) as client:\n"
        "    ready = client.get('/readyz')\n"
        "    assert ready.status_code == 200 and ready.json()['router_version'] is not None, ready.text\n"
        "    print('READY')\n"
    )
    for _ in range(2):
        shown = run_probe(probe, empty_url, tmp_path)
        assert "READY" in shown["stdout"]
    assert shown["loaded"] == ["geoalchemy2"]  # the models: every API route reads through them
