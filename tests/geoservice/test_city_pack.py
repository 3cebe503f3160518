"""A city onboards from its own files: the example pack (three towns) checked, loaded, exported, reloaded.

Through the ``geoservice city`` commands as a user runs them, on real PostGIS databases.
"""

import json
import shutil
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from geoservice.cli import app
from geoservice.field.key_people import load_key_people
from geoservice.infra.database import make_engine, transaction
from geoservice.infra.embedded import EmbeddedCluster
from tests.conftest import clone_template, drop_database

EXAMPLE = Path(__file__).parents[2] / "examples" / "city-pack"
runner = CliRunner()


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def rows(url: str, sql: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql)).all()]
    finally:
        engine.dispose()


@pytest.fixture
def second_url(cluster: EmbeddedCluster) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield clone_template(cluster, name)
    drop_database(cluster, name)


def test_example_pack_checks_clean(tmp_path: Path):
    result = run("city", "check", EXAMPLE)
    assert result.exit_code == 0, result.output
    assert "no faults" in result.output and "grids 24" in result.output and "users 9" in result.output


def test_example_pack_loads_published_with_accounts_and_one_time_passwords(use_database: str, tmp_path: Path):
    passwords = tmp_path / "secrets" / "otp.tsv"
    result = run("city", "load", EXAMPLE, "--passwords", passwords)
    assert result.exit_code == 0, result.output
    assert "boundary version example-2026 published and in force" in result.output
    assert "9 one-time password(s) written" in result.output
    assert rows(use_database, "SELECT name, status::text FROM boundary_versions") == [("example-2026", "published")]
    counts = rows(
        use_database,
        "SELECT (SELECT count(*) FROM regions), (SELECT count(*) FROM grids), (SELECT count(*) FROM police_posts), "
        "(SELECT count(*) FROM police_posts WHERE jurisdiction IS NOT NULL), (SELECT count(*) FROM key_places), "
        "(SELECT count(*) FROM population), (SELECT count(*) FROM users), (SELECT count(*) FROM user_grids)",
    )
    assert counts == [(10, 24, 12, 3, 7, 24, 9, 12)]
    # Passwords: only hashes in the database, the clear ones once in a file only its owner reads.
    assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
    issued = dict(line.split("\t") for line in passwords.read_text().splitlines()[2:])
    assert set(issued) == {u for (u,) in rows(use_database, "SELECT username FROM users")}
    assert rows(use_database, "SELECT bool_and(must_change_password), bool_and(password_hash LIKE '$argon2%') "
                "FROM users") == [(True, True)]  # fmt: skip
    # A grid's workers are the accounts serving it; the names stay readable in today's answers.
    assert rows(use_database, "SELECT workers FROM grids WHERE code = '320999001001001'") == [(["网格员0011"],)]
    # New columns arrive: places' owner and risk, departments' parent, categories' urgent deadlines.
    assert rows(use_database, "SELECT owner, risk_level, inspection_cycle_days FROM key_places WHERE code = 'RISK001'") \
        == [("示例化工有限公司", "high", 1)]  # fmt: skip
    assert rows(use_database, "SELECT parent_code, duty_phone FROM departments WHERE code = 'police.dongmen'") == [
        ("police", "0513-80000110")
    ]
    assert rows(use_database, "SELECT accept_hours, handle_hours FROM deadlines WHERE category_code = "
                "'public_safety.fire' AND priority = 'urgent'") == [(0.1, 2.0)]  # fmt: skip
    assert rows(use_database, "SELECT code, duplicate_radius_m, duplicate_window_hours FROM categories WHERE code IN "
                "('public_safety.fire', 'city_management.garbage', 'city_management.stall') ORDER BY code") == [
        ("city_management.garbage", 30.0, 48.0), ("city_management.stall", 50.0, 72.0), ("public_safety.fire", 200.0, 6.0)
    ]  # fmt: skip
    # Loading the same pack again into a published version is refused, and changes nothing.
    again = run("city", "load", EXAMPLE, "--passwords", tmp_path / "otp2.tsv")
    assert again.exit_code == 1 and "example-2026" in again.output and "is published" in again.output
    assert not (tmp_path / "otp2.tsv").exists()


SNAPSHOT = {
    "escalation_levels": "SELECT level, accept_hours, handle_hours FROM escalation_levels ORDER BY level",
    "regions": "SELECT code, name, level::text, parent_code, ST_AsText(ST_SnapToGrid(geom, 1e-9)) FROM regions "
    "ORDER BY code",
    "grids": "SELECT code, name, community_code, workers, officer, ST_AsText(ST_SnapToGrid(geom, 1e-9)) FROM grids "
    "ORDER BY code",
    "posts": "SELECT code, name, level::text, ST_AsText(ST_SnapToGrid(geom, 1e-9)), "
    "ST_AsText(ST_SnapToGrid(jurisdiction, 1e-9)) FROM police_posts ORDER BY code",
    "places": "SELECT code, name, type, owner, phone, risk_level, inspection_cycle_days, properties, "
    "ST_AsText(ST_SnapToGrid(geom, 1e-9)) FROM key_places ORDER BY code",
    "population": "SELECT count, ST_AsText(ST_SnapToGrid(geom, 1e-9)) FROM population ORDER BY 2, 1",
    "departments": "SELECT * FROM departments ORDER BY code",
    "categories": "SELECT * FROM categories ORDER BY code",
    "deadlines": "SELECT category_code, priority, accept_hours, handle_hours FROM deadlines ORDER BY 1, 2",
    "routing_rules": "SELECT * FROM routing_rules ORDER BY id",
    "users": "SELECT username, password_hash, role::text, region_code, department_code, display_name, phone, "
    "must_change_password FROM users ORDER BY username",
    "user_grids": "SELECT u.username, g.grid_code FROM user_grids g JOIN users u ON u.id = g.user_id ORDER BY 1, 2",
    "city": "SELECT key, value FROM dataset_settings ORDER BY key",
    "duties": "SELECT * FROM duties ORDER BY code",
    "key_people": "SELECT name, kind, grid_code, visit_cycle_days, id_number, phone, address, responsible_username, "
    "notes FROM key_people ORDER BY grid_code, name",
}


def snapshot(url: str) -> dict[str, list[tuple]]:
    return {name: rows(url, sql) for name, sql in SNAPSHOT.items()}


def test_load_export_load_gives_equal_data(use_database: str, second_url: str, tmp_path: Path, monkeypatch):
    assert run("city", "load", EXAMPLE, "--passwords", tmp_path / "otp.tsv").exit_code == 0
    exported = tmp_path / "exported"
    result = run("city", "export", exported)
    assert result.exit_code == 0, result.output
    assert "grids 24" in result.output and "users 9" in result.output
    monkeypatch.setenv("GEOSERVICE_DATABASE_URL", second_url)
    reloaded = run("city", "load", exported, "--passwords", tmp_path / "otp2.tsv")
    assert reloaded.exit_code == 0, reloaded.output
    assert not (tmp_path / "otp2.tsv").exists()  # accounts came with their hashes: no new passwords
    first, second = snapshot(use_database), snapshot(second_url)
    assert first["grids"] and first["users"] and first["routing_rules"] and len(first["duties"]) == 5
    assert first["escalation_levels"] == [("city", 48, 240), ("community", 12, 72), ("town", 24, 120)]
    asking = rows(use_database, "SELECT code FROM categories WHERE attributes <> '[]' ORDER BY code")
    assert asking == [("city_management.garbage",), ("city_management.stall",), ("environment.noise",)]
    for table in SNAPSHOT:
        assert first[table] == second[table], table
    assert len(first["key_people"]) == 3 and ("王某甲", "elderly_alone") == first["key_people"][0][:2]
    # The export wrote the register in full: a read of each person, logged.
    assert rows(use_database, "SELECT count(*), bool_and(in_full), min(what) FROM key_person_reads "
                "WHERE reader LIKE 'cli:%'") == [(3, True, "geoservice city export")]  # fmt: skip
    register = pd.read_csv(EXAMPLE / "key_people.csv", dtype=str, keep_default_na=False).to_dict("records")
    with transaction(make_engine(use_database)) as session:
        load_key_people(session, register)  # the register loaded again: matched by grid, name and ID number
    assert snapshot(use_database)["key_people"] == first["key_people"]  # updated in place, not doubled


def _faulty_pack(tmp_path: Path) -> Path:
    """The example with one fault of each kind a city's files commonly have."""
    pack = tmp_path / "faulty"
    shutil.copytree(EXAMPLE, pack)
    grids = json.loads((pack / "grids.geojson").read_text())
    bowtie = [[[120.5, 32.31], [120.51, 32.32], [120.51, 32.31], [120.5, 32.32], [120.5, 32.31]]]
    grids["features"][0]["geometry"]["coordinates"] = [bowtie]  # self-intersecting
    grids["features"][5]["properties"]["community_code"] = "320999009001"  # no such community
    grids["features"][5]["properties"]["code"] = "320999009001001"
    (pack / "grids.geojson").write_text(json.dumps(grids, ensure_ascii=False))
    regions = json.loads((pack / "regions.geojson").read_text())
    regions["features"][3]["properties"]["code"] = regions["features"][2]["properties"]["code"]  # duplicate
    (pack / "regions.geojson").write_text(json.dumps(regions, ensure_ascii=False))
    rules = (pack / "routing_rules.csv").read_text().replace(",police,10,", ",no_such_department,10,", 1)
    (pack / "routing_rules.csv").write_text(rules)
    users = (pack / "users.csv").read_text().replace("dispatcher,320999000000", "dispatcher,320999777000", 1)
    (pack / "users.csv").write_text(users)
    categories = (
        (pack / "categories.csv").read_text().replace("public_order,社会治安,,2,72", "public_order,社会治安,,two,72")
        .replace('""datatype"":""singlevaluelist""', '""datatype"":""colour""', 1)  # an Open311 attribute
    )
    (pack / "categories.csv").write_text(categories)
    duties = (pack / "duties.csv").read_text().replace("grid,7,", "grid,weekly,", 1).replace(",community,30,", ",street,30,")
    (pack / "duties.csv").write_text(duties.replace(",320999001000,", ",320999888000,"))
    people = (pack / "key_people.csv").read_text().replace(",elderly_alone,", ",lonely,", 1)
    (pack / "key_people.csv").write_text(people.replace(",grid0012,", ",dispatcher,"))
    city = (pack / "city.toml").read_text().replace("[escalation.town]", "[escalation.village]", 1)
    (pack / "city.toml").write_text(city.replace("handle_hours = 72", "handle_hours = -72", 1))
    return pack


def test_a_faulty_pack_is_reported_whole_and_loads_nothing(use_database: str, tmp_path: Path):
    pack = _faulty_pack(tmp_path)
    checked = run("city", "check", pack)
    assert checked.exit_code == 1
    expected = [
        "grids.geojson: feature 0: code 320999001001001: field geometry: invalid geometry: Self-intersection",
        "grids.geojson: feature 5: code 320999009001001: field community_code: community_code 320999009001 is not a "
        "community of this boundary version",
        "regions.geojson: feature 3: code 320999001001: field code: duplicate code: also used by feature 2",
        "routing_rules.csv: line 2: code 1: field department_code: unknown department 'no_such_department'",
        "users.csv: line 3: code dispatcher: field region_code: region 320999777000 is not in the pack's regions",
        "categories.csv: line 2: code public_order: field accept_hours: accept_hours 'two' is not a number",
        "categories.csv: line 15: code city_management.stall: field attributes: not a list of Open311 attribute "
        "definitions: attribute 'goods': datatype must be one of string, number",
        "city.toml: field escalation.community: hours are positive numbers (below 100,000)",
        "city.toml: field escalation.village: unknown level; levels are community, town, city",
        "duties.csv: line 2: code rental_check: field every_days: every_days 'weekly' is not a whole number",
        "duties.csv: line 5: code key_place_check: field level: level 'street' is not grid or community",
        "duties.csv: line 6: code dispute_mediation: field region_code: region '320999888000' is not in the pack's "
        "regions or grids",
        "key_people.csv: line 2: code 320999001001001: field kind: kind 'lonely' is not one of community_correction",
        "key_people.csv: line 4: code 320999001002001: field responsible_username: 'dispatcher' is not a grid worker "
        "in users.csv",
    ]
    for line in expected:
        assert line in checked.output, line
    assert "fault(s) in 8 file(s)" in checked.output and "nothing was written" in checked.output
    loaded = run("city", "load", pack, "--passwords", tmp_path / "otp.tsv")
    assert loaded.exit_code == 1 and "nothing was loaded" in loaded.output
    for line in expected:
        assert line in loaded.output, line
    assert not (tmp_path / "otp.tsv").exists()
    tables = ("boundary_versions", "regions", "grids", "police_posts", "key_places", "users", "departments", "duties",
              "key_people")  # fmt: skip
    assert rows(use_database, " UNION ALL ".join(f"SELECT count(*) FROM {t}" for t in tables)) == [(0,)] * len(tables)


def test_the_demo_is_a_pack_loaded_through_city_load(demo_url: str, demo_pack: Path):
    """The session's demo city was written as a pack and loaded by ``city load``; its history has its log."""
    assert {p.name for p in demo_pack.iterdir()} >= {
        "city.toml", "regions.gpkg", "grids.gpkg", "events.gpkg", "users.csv", "population.csv", "departments.csv"
    }  # fmt: skip
    assert run("city", "check", demo_pack).exit_code == 0
    archived_without_full_log, logged_events, events = rows(
        demo_url,
        "SELECT count(*) FILTER (WHERE e.status = 'archived' AND NOT EXISTS (SELECT 1 FROM event_log l "
        "WHERE l.event_id = e.id GROUP BY l.event_id HAVING count(*) FILTER (WHERE l.note = 'imported history') = 7)), "
        "(SELECT count(DISTINCT event_id) FROM event_log), count(*) FROM events e",
    )[0]
    # every archived event: report, accept, dispatch, start, feedback, verify, archive
    assert archived_without_full_log == 0
    assert logged_events == events == 50_000


def _sliver_pack(tmp_path: Path, *, big_gap: bool) -> Path:
    """The example with digitising slivers in community 320999001001: a 13 m² gap, a 21 m² overlap (and a 5,200 m² gap)."""
    pack = tmp_path / ("slivers-big" if big_gap else "slivers")
    shutil.copytree(EXAMPLE, pack)
    grids = json.loads((pack / "grids.geojson").read_text())
    ring = [[120.5, 32.31], [120.51, 32.31], [120.51, 32.314], [120.51002, 32.3141], [120.51, 32.3142],
            [120.51, 32.32], [120.50005, 32.32], [120.5, 32.31995], [120.5, 32.31]]  # fmt: skip
    grids["features"][0]["geometry"]["coordinates"] = [[ring]]
    if big_gap:
        grids["features"][3]["geometry"]["coordinates"] = [
            [[[120.51, 32.3], [120.519, 32.3], [120.52, 32.301], [120.52, 32.31], [120.51, 32.31], [120.51, 32.3]]]
        ]
    (pack / "grids.geojson").write_text(json.dumps(grids))
    return pack


def test_slivers_are_reported_and_fix_gives_each_to_the_longest_shared_edge(use_database: str, tmp_path: Path):
    pack = _sliver_pack(tmp_path, big_gap=True)
    checked = run("city", "check", pack)
    assert checked.exit_code == 1
    assert "overlaps grid 320999001001002 by 2" in checked.output
    assert "grids of community 320999001001 leave a gap of 13." in checked.output
    assert "grids of community 320999001001 leave a gap of 5,2" in checked.output
    fixed = run("city", "check", pack, "--fix")
    assert fixed.exit_code == 1  # the large gap still stops it, located
    assert "repaired grids.geojson: code 320999001001001: field geometry: overlap of 2" in fixed.output
    assert "given to 320999001001001 (longest shared edge" in fixed.output
    assert "taken from 320999001001002" in fixed.output
    assert "gap of 13." in fixed.output and "leave a gap of 13." not in fixed.output
    assert "leave a gap of 5,2" in fixed.output and "near lon 120.51" in fixed.output
    assert rows(use_database, "SELECT count(*) FROM grids") == [(0,)]

    small = _sliver_pack(tmp_path, big_gap=False)
    assert run("city", "load", small, "--passwords", tmp_path / "otp.tsv").exit_code == 1
    loaded = run("city", "load", small, "--fix", "--passwords", tmp_path / "otp.tsv")
    assert loaded.exit_code == 0, loaded.output
    assert loaded.output.count("repaired grids.geojson") == 2
    # The community is now covered exactly by its grids: no gap and no overlap left.
    gap, overlap = rows(
        use_database,
        "SELECT ST_Area(ST_Difference(c.geom, ST_Union(g.geom))::geography), "
        "sum(ST_Area(g.geom::geography)) - ST_Area(ST_Union(g.geom)::geography) FROM regions c "
        "JOIN grids g ON g.community_code = c.code WHERE c.code = '320999001001' GROUP BY c.geom",
    )[0]
    assert gap < 0.01 and abs(overlap) < 0.01


def test_a_one_time_password_must_be_changed_before_signing_in(use_database: str, tmp_path: Path):
    from fastapi.testclient import TestClient

    from geoservice.app import create_app
    from geoservice.infra.database import make_engine

    passwords = tmp_path / "otp.tsv"
    assert run("city", "load", EXAMPLE, "--passwords", passwords).exit_code == 0
    issued = dict(line.split("\t") for line in passwords.read_text().splitlines()[2:])
    engine = make_engine(use_database)
    try:
        with TestClient(create_app(engine=engine)) as client:
            first = client.post("/v1/auth/token", data={"username": "grid0011", "password": issued["grid0011"]})
            assert first.status_code == 403 and "POST /v1/auth/password" in first.json()["detail"]
            wrong = client.post("/v1/auth/password", json={"username": "grid0011", "current_password": "guess-123",
                                                            "new_password": "my own secret 1"})  # fmt: skip
            assert wrong.status_code == 422
            changed = client.post("/v1/auth/password", json={"username": "grid0011", "current_password":
                                  issued["grid0011"], "new_password": "my own secret 1"})  # fmt: skip
            assert changed.status_code == 204
            assert client.post("/v1/auth/token", data={"username": "grid0011", "password": issued["grid0011"]}
                               ).status_code == 401  # fmt: skip
            token = client.post("/v1/auth/token", data={"username": "grid0011", "password": "my own secret 1"})
            assert token.status_code == 200
            me = client.get("/v1/auth/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"})
            assert me.json()["role"] == "grid_worker" and me.json()["region_code"] == "320999001001"
    finally:
        engine.dispose()


def test_a_repair_edit_gives_a_drafts_slivers_to_their_neighbours(use_database: str, tmp_path: Path):
    assert run("city", "load", EXAMPLE, "--draft", "--passwords", tmp_path / "otp.tsv").exit_code == 0
    slivered = json.loads((_sliver_pack(tmp_path, big_gap=False) / "grids.geojson").read_text())["features"][0]
    edit = {"op": "replace_geometry", "grid": "320999001001001", "geometry": slivered["geometry"]}
    assert run("versions", "edit", "example-2026", json.dumps(edit)).exit_code == 0
    assert run("versions", "validate", "example-2026").exit_code == 1  # a gap and an overlap
    repaired = run("versions", "edit", "example-2026", json.dumps({"op": "repair", "community_code": "320999001001"}))
    assert repaired.exit_code == 0, repaired.output
    assert "changed 320999001001002" in repaired.output or "changed 320999001001001" in repaired.output
    assert repaired.output.count("given to 320999001001001 (longest shared edge") == 2
    validated = run("versions", "validate", "example-2026")
    assert validated.exit_code == 0, validated.output
