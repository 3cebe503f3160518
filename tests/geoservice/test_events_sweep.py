"""Deadlines, warnings, timeout escalation (idempotent), the append-only log, and the events CLI."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from geoservice.cli import app as cli
from geoservice.events.deadlines import Clock, deadline_hours, warning_colour
from geoservice.events.sweep import sweep_deadlines
from geoservice.infra.database import transaction
from geoservice.settings import EventSettings
from layers.models import Role
from tests.geoservice.events_city import GRIDS, TOWN_A, centre, events_client, load_events_city
from tests.geoservice.signin import sign_in

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    load_events_city(empty_db)
    with events_client(empty_db) as client:
        yield client


def test_warning_colours_at_the_configured_fractions():
    clock = Clock("accept", T0, T0 + timedelta(hours=4))
    settings = EventSettings()
    at = {minutes: warning_colour(clock, T0 + timedelta(minutes=minutes), settings) for minutes in
          (0, 119, 120, 179, 180, 239, 240, 10_000)}  # fmt: skip
    assert at == {0: "none", 119: "none", 120: "blue", 179: "blue", 180: "yellow", 239: "yellow", 240: "red",
                  10_000: "red"}  # fmt: skip
    early = EventSettings(warning_blue=0.25, warning_yellow=0.5, warning_red=0.9)
    assert warning_colour(clock, T0 + timedelta(minutes=216), early) == "red"  # 90 % of 4 h, not yet overdue
    assert warning_colour(None, T0, settings) == "none"
    with pytest.raises(ValueError, match="must rise"):
        EventSettings(warning_blue=0.8, warning_yellow=0.75)


def test_deadline_lookup_category_then_class_then_factor(empty_db: Engine):
    load_events_city(empty_db)
    with transaction(empty_db) as session:
        # no rows of its own: the category's hours (fight: 0.5 h / 24 h) × the priority factor
        assert deadline_hours(session, "public_order.fight", "normal").accept_hours == 0.5
        assert deadline_hours(session, "public_order.fight", "urgent").handle_hours == 12
        session.execute(text("INSERT INTO deadlines (category_code, priority, accept_hours, handle_hours) "
                             "VALUES ('public_order', 'urgent', 0.1, 6), ('public_order.fight', 'urgent', 0.2, 3)"))  # fmt: skip
        assert deadline_hours(session, "public_order.fight", "urgent").handle_hours == 3  # its own row
        assert deadline_hours(session, "public_order.theft", "urgent").handle_hours == 6  # its class's row
        assert deadline_hours(session, "public_order.theft", "normal").handle_hours == 72  # own hours × 1
        assert deadline_hours(session, "no.such", "normal") is None


def _report(client: TestClient, auth: dict, **fields) -> dict:
    lon, lat = centre(0)
    response = client.post("/v1/events", json={"lon": lon, "lat": lat, "category": "environment.noise", **fields},
                           headers=auth)  # fmt: skip
    assert response.status_code == 201, response.text
    return response.json()


def test_timeout_escalation_happens_once_per_breach(client: TestClient, empty_db: Engine):
    dispatcher = sign_in(client, empty_db, Role.dispatcher, region_code=TOWN_A)
    late, on_time, handled = (_report(client, dispatcher) for _ in range(3))
    with empty_db.begin() as conn:
        conn.execute(text("UPDATE events SET accept_due_at = now() - interval '1 minute', "
                          "reported_at = now() - interval '3 hours' WHERE id = :id"), {"id": late["id"]})  # fmt: skip
        conn.execute(text("UPDATE events SET status = 'handled', handle_due_at = now() - interval '1 hour', "
                          "dispatched_at = now() - interval '2 days' WHERE id = :id"), {"id": handled["id"]})  # fmt: skip
    seen = client.get(f"/v1/events/{late['id']}", headers=dispatcher).json()
    assert seen["warning"] == "red" and seen["overdue"] is True
    red = client.get("/v1/events", params={"warning": "red"}, headers=dispatcher).json()["items"]
    assert [e["id"] for e in red] == [late["id"]]
    assert {e["id"] for e in client.get("/v1/events", params={"warning": "none"}, headers=dispatcher).json()["items"]} \
        == {on_time["id"], handled["id"]}  # fmt: skip

    for _ in range(2):
        with transaction(empty_db) as session:
            sweep_deadlines(session)
    after = client.get(f"/v1/events/{late['id']}", headers=dispatcher).json()
    assert after["escalation_level"] == "community" and after["escalation_count"] == 1 and after["row_version"] == 2
    assert after["status"] == "reported"
    for other in (on_time, handled):  # not due, or its clock stopped when it was handled
        assert client.get(f"/v1/events/{other['id']}", headers=dispatcher).json()["escalation_level"] == "grid"
    log = client.get(f"/v1/events/{late['id']}/log", headers=dispatcher).json()["entries"]
    assert [(e["action"], e["actor"], e["role"]) for e in log] == [
        ("report", "dispatcher-user", "dispatcher"), ("escalate", "deadline-sweep", "system")
    ]  # fmt: skip
    assert log[1]["details"]["timeout"] == "accept" and log[1]["details"]["to_level"] == "community"

    # dispatched with a handling deadline already past: a new breach, escalated once more
    for action, version in (("accept", 2), ("dispatch", 3)):
        stepped = client.post(f"/v1/events/{late['id']}/transitions",
                              json={"action": action, "expected_version": version}, headers=dispatcher)  # fmt: skip
        assert stepped.status_code == 200, stepped.text
    with empty_db.begin() as conn:
        conn.execute(text("UPDATE events SET handle_due_at = now() - interval '1 second' WHERE id = :id"),
                     {"id": late["id"]})  # fmt: skip
    with transaction(empty_db) as session:
        first = sweep_deadlines(session)
    with transaction(empty_db) as session:
        second = sweep_deadlines(session)
    assert (first.breaches, first.escalated, second.breaches) == (1, 1, 0)
    after = client.get(f"/v1/events/{late['id']}", headers=dispatcher).json()
    # the town takes it back from the department that let it run late (test_owners.py walks the owners)
    assert after["escalation_level"] == "town" and after["status"] == "returned"
    assert (after["owner_kind"], after["owner_code"]) == ("unit", TOWN_A)


def test_the_log_is_append_only_for_the_apps_own_role(client: TestClient, empty_db: Engine):
    event = _report(client, sign_in(client, empty_db, Role.dispatcher, region_code=TOWN_A))
    for statement in ("UPDATE event_log SET note = 'rewritten' WHERE event_id = :id",
                      "DELETE FROM event_log WHERE event_id = :id", "TRUNCATE event_log CASCADE"):  # fmt: skip
        with pytest.raises(DBAPIError, match="append-only"), empty_db.begin() as conn:
            conn.execute(text(statement), {"id": event["id"]})
    with empty_db.connect() as conn:
        # the app's database role is the one the engine connects as, the same that ran these statements
        assert conn.execute(text("SELECT note FROM event_log WHERE event_id = :id"), {"id": event["id"]}).all() == [
            ("",)
        ]


def test_cli_sweep_and_import(empty_db: Engine, use_database: str, tmp_path: Path):
    engine = empty_db  # use_database points the CLI at this same database
    load_events_city(engine)
    lon, lat = centre(0)
    features = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
         "properties": {"id": "h1", "category": "city_management.garbage", "occurred_at": "2026-06-01T10:00:00+08:00",
                        "status": "archived", "description": "历史事件"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(centre(3))},
         "properties": {"id": "h2", "category": "public_order.fight", "occurred_at": "2026-06-02T22:00:00+08:00"}},
    ]  # fmt: skip
    path = tmp_path / "history.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False))
    runner = CliRunner()
    for _ in range(2):  # stored once however often it is imported
        result = runner.invoke(cli, ["events", "import", str(path)])
        assert result.exit_code == 0, result.output
    assert "2 placed in grids" not in result.output  # the second run found nothing new
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT grid_code, department_code, status FROM events ORDER BY occurred_at")).all()
        logs = conn.execute(text("SELECT action, to_status FROM event_log ORDER BY event_id, id")).all()
    assert rows == [(GRIDS[0], "urban_management", "archived"), (GRIDS[3], "police", "reported")]
    # h1 came with its status but no step times: its report, then the import that put it there
    assert logs == [("report", "reported"), ("import", "archived"), ("report", "reported")]

    with engine.begin() as conn:
        conn.execute(text("UPDATE events SET accept_due_at = :due WHERE status = 'reported'"),
                     {"due": datetime.now(UTC) - timedelta(minutes=5)})  # fmt: skip
    first = runner.invoke(cli, ["events", "sweep"])
    second = runner.invoke(cli, ["events", "sweep"])
    assert first.exit_code == second.exit_code == 0, first.output
    assert "1 new deadline breaches: 1 escalated" in first.output
    assert "0 new deadline breaches" in second.output
    assert "0 late supervision orders escalated" in second.output
    bad = runner.invoke(cli, ["events", "sweep", "--now", "2026-11-24T09:00:00"])
    assert bad.exit_code == 1 and "time zone" in bad.output
    broken = tmp_path / "broken.geojson"
    broken.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {**features[0], "properties": {**features[0]["properties"], "id": "h3", "category": "no.such"}}]}))  # fmt: skip
    refused = runner.invoke(cli, ["events", "import", str(broken)])
    assert refused.exit_code == 1
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 2
