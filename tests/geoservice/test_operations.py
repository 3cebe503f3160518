"""Operations: metrics, request ids in JSON logs, body and rate limits, backup and restore."""

import json
import logging
import logging.config
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, create_engine, text
from typer.testing import CliRunner

from etl.reference import load_reference_data
from geoservice.app import create_app
from geoservice.cli import app as cli
from geoservice.infra.database import transaction
from geoservice.infra.observability import logging_config
from geoservice.settings import OperationsSettings
from layers.models import Role
from tests.geoservice.signin import sign_in
from tests.geoservice.test_locate_api import load_tiny_city

INSIDE = {"lon": 120.515, "lat": 32.305}


def make_client(engine: Engine, **operations) -> TestClient:
    return TestClient(create_app(engine=engine, operations=OperationsSettings(**operations)))


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    load_tiny_city(empty_db)
    with make_client(empty_db) as client:
        yield client


def samples(client: TestClient) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_metrics_count_requests_and_read_state_from_the_database(client: TestClient, empty_db: Engine):
    for _ in range(3):
        assert client.get("/v1/locate", params=INSIDE).status_code == 200
    assert client.get("/v1/locate", params={"lon": 999, "lat": 0}).status_code == 422
    with transaction(empty_db) as session:
        session.execute(text("INSERT INTO categories (code, name, accept_hours, handle_hours) VALUES ('c', 'c', 1, 1)"))
        for status in ("reported", "reported", "handling"):
            session.execute(
                text(
                    "INSERT INTO events (geom, category_code, status, occurred_at) "
                    "VALUES (ST_SetSRID(ST_MakePoint(120.515, 32.305), 4326), 'c', :s, now())"
                ),
                {"s": status},
            )
        version = session.execute(text("SELECT id FROM boundary_versions WHERE status = 'published'")).scalar()
    found = samples(client)
    route = (("method", "GET"), ("route", "/v1/locate"))
    assert found[("geoservice_http_requests_total", (*route, ("status", "200")))] == 3
    assert found[("geoservice_http_requests_total", (*route, ("status", "422")))] == 1
    assert found[("geoservice_http_request_duration_seconds_count", route)] == 4
    assert found[("geoservice_events", (("status", "reported"),))] == 2
    assert found[("geoservice_events", (("status", "handling"),))] == 1
    assert found[("geoservice_router_version", ())] == version


def test_request_id_is_echoed_and_logged_as_json(client: TestClient, capsys: pytest.CaptureFixture[str]):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logging.config.dictConfig(logging_config("json"))
    try:
        given = client.get("/v1/locate", params=INSIDE, headers={"X-Request-ID": "mobile-42.a"})
        made = client.get("/healthz", headers={"X-Request-ID": "not a sane id; DROP TABLE x"})
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    assert given.headers["x-request-id"] == "mobile-42.a"
    generated = made.headers["x-request-id"]
    assert len(generated) == 32 and int(generated, 16) >= 0
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    access = {line["request_id"]: line for line in lines if line["name"] == "geoservice.access"}
    assert access["mobile-42.a"]["route"] == "/v1/locate" and access["mobile-42.a"]["status"] == 200
    assert access[generated]["route"] == "/healthz" and access[generated]["duration_ms"] >= 0


def test_bodies_over_the_limit_are_refused_whether_declared_or_streamed(empty_db: Engine):
    load_tiny_city(empty_db)
    points = {"points": [[120.515, 32.305]] * 200}  # ~4 kB
    with make_client(empty_db, max_body_bytes=2048) as client:
        declared = client.post("/v1/locate", json=points)
        body = json.dumps(points).encode()
        streamed = client.post(
            "/v1/locate",
            content=(body[i : i + 500] for i in range(0, len(body), 500)),
            headers={"Content-Type": "application/json"},
        )
        small = client.post("/v1/locate", json={"points": [[120.515, 32.305]]})
    for response in (declared, streamed):
        assert response.status_code == 413 and response.headers["content-type"] == "application/problem+json"
        assert "2,048 bytes" in response.json()["detail"]
    assert small.status_code == 200


def test_the_anonymous_public_is_rate_limited_per_client_sign_in_included(empty_db: Engine):
    load_tiny_city(empty_db)
    with make_client(empty_db, public_rate="5/minute") as client:
        assert [client.get("/v1/locate", params=INSIDE).status_code for _ in range(5)] == [200] * 5
        refused = client.get("/v1/locate", params=INSIDE)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert "at most 5 per 1 minute" in refused.json()["detail"]
        assert client.post("/v1/auth/token", data={"username": "x", "password": "y" * 8}).status_code == 429


def test_sign_in_counts_as_a_public_request_but_tokens_are_never_limited(empty_db: Engine):
    load_tiny_city(empty_db)
    with make_client(empty_db, public_rate="3/minute") as client:
        staff = sign_in(client, empty_db, Role.dispatcher)
        assert [client.get("/v1/locate", params=INSIDE, headers=staff).status_code for _ in range(10)] == [200] * 10
        assert [client.get("/healthz").status_code for _ in range(3)] == [200, 200, 429]


def table_fingerprint(url: str) -> dict[str, str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table: conn.execute(text(f"SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t")).scalar()
                for table in ("regions", "grids", "police_posts", "boundary_versions", "users")
            }
    finally:
        engine.dispose()


def test_backup_and_restore_round_trip(use_database: str, empty_db: Engine, tmp_path: Path):
    load_tiny_city(empty_db)
    before = table_fingerprint(use_database)
    runner = CliRunner()
    result = runner.invoke(cli, ["db", "backup", str(tmp_path / "city.dump")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "city.dump").stat().st_size > 10_000 and "backup written" in result.output
    with transaction(empty_db) as session:
        session.execute(text("DELETE FROM police_posts WHERE level = 'village_room'"))
        session.execute(text("UPDATE grids SET name = 'renamed'"))
    assert table_fingerprint(use_database) != before

    refused = runner.invoke(cli, ["db", "restore", str(tmp_path / "city.dump")], input="n\n")
    assert refused.exit_code == 1 and table_fingerprint(use_database) != before

    restored = runner.invoke(cli, ["db", "restore", str(tmp_path / "city.dump"), "--yes"])
    assert restored.exit_code == 0, restored.output
    assert table_fingerprint(use_database) == before


def test_a_bad_backup_file_changes_nothing(use_database: str, empty_db: Engine, tmp_path: Path):
    load_tiny_city(empty_db)
    before = table_fingerprint(use_database)
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "backup", str(tmp_path / "good.dump")]).exit_code == 0
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes((tmp_path / "good.dump").read_bytes()[:-4000])
    (tmp_path / "garbage.dump").write_bytes(b"PGDMP not really")
    for bad in (truncated, tmp_path / "garbage.dump", tmp_path / "missing.dump"):
        result = runner.invoke(cli, ["db", "restore", str(bad), "--yes"])
        assert result.exit_code == 1 and "error" in result.output, (bad, result.output)
        assert table_fingerprint(use_database) == before


def test_a_failed_backup_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GEOSERVICE_DATABASE_URL", "postgresql+psycopg://nobody:wrong@127.0.0.1:1/none")
    result = CliRunner().invoke(cli, ["db", "backup", str(tmp_path / "out.dump")])
    assert result.exit_code == 1 and "pg_dump failed" in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_public_locate_batch_counts_its_points(empty_db: Engine):
    load_tiny_city(empty_db)
    with make_client(empty_db, public_rate="50/minute") as client:
        batch = {"points": [[INSIDE["lon"], INSIDE["lat"]]] * 40}
        assert client.post("/v1/locate", json=batch).status_code == 200
        refused = client.post("/v1/locate", json=batch)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert client.get("/v1/locate", params=INSIDE).status_code == 200  # the 10 points left are still usable


def test_signed_in_citizens_reports_are_rate_limited_too(empty_db: Engine):
    load_tiny_city(empty_db)
    with transaction(empty_db) as session:
        load_reference_data(session)
    with make_client(empty_db, public_rate="4/minute") as client:
        citizen = sign_in(client, empty_db, Role.public, "citizen")  # one from the address's bucket
        staff = sign_in(client, empty_db, Role.dispatcher)  # and another
        report = {**INSIDE, "category": "city_management.garbage", "description": "路口垃圾"}
        statuses = [client.post("/v1/events", json=report, headers=citizen).status_code for _ in range(5)]
        assert statuses == [201] * 4 + [429]
        assert client.post("/v1/events", json=report, headers=staff).status_code == 201


def test_a_bearer_token_does_not_lift_the_limit_on_sign_in(empty_db: Engine):
    load_tiny_city(empty_db)
    with make_client(empty_db, public_rate="3/minute") as client:
        citizen = sign_in(client, empty_db, Role.public, "citizen")
        guesses = [
            client.post("/v1/auth/token", data={"username": "admin", "password": f"guess {k:04d}"}, headers=citizen)
            for k in range(3)
        ]
        assert [g.status_code for g in guesses] == [401, 401, 429]
