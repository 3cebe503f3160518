"""Owners, queues, escalation that moves the work, return_down and 小事不出格, through the real app."""

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geoservice.events.sweep import sweep_deadlines
from geoservice.infra.database import make_engine, transaction
from layers.models import Role
from tests.conftest import clone_template, drop_database
from tests.geoservice.events_city import CITY, COMMUNITY_A, GRIDS, TOWN_A, centre, events_city_client
from tests.geoservice.signin import sign_in

SMALL = "city_management.stall"  # marked a small matter for this city
# The city's own ladder (as city.toml's [escalation.community] / [escalation.town] would set it).
COMMUNITY_HOURS, TOWN_HOURS = (10.0, 50.0), (6.0, 30.0)


@pytest.fixture(scope="module")
def city(cluster) -> Iterator[tuple[TestClient, Engine, dict[str, dict[str, str]]]]:
    engine = make_engine(clone_template(cluster, "t_owners"))
    with events_city_client(engine) as client:
        with transaction(engine) as session:
            session.execute(text("UPDATE categories SET small_matter = true WHERE code = :c"), {"c": SMALL})
            session.execute(
                text("INSERT INTO escalation_levels VALUES ('community', :ca, :ch), ('town', :ta, :th)"),
                {"ca": COMMUNITY_HOURS[0], "ch": COMMUNITY_HOURS[1], "ta": TOWN_HOURS[0], "th": TOWN_HOURS[1]},
            )
        people = {
            "public": sign_in(client, engine, Role.public, "citizen"),
            "grid": sign_in(client, engine, Role.grid_worker, "gw", region_code=GRIDS[0]),
            "community": sign_in(client, engine, Role.dispatcher, "disp-c", region_code=COMMUNITY_A),
            "town": sign_in(client, engine, Role.dispatcher, "disp-t", region_code=TOWN_A),
            "handler": sign_in(client, engine, Role.handler, "h-urban", department_code="urban_management"),
        }
        yield client, engine, people
    engine.dispose()
    drop_database(cluster, "t_owners")


def _report(client: TestClient, people: dict, category: str = "city_management.garbage") -> dict:
    lon, lat = centre(0)
    answer = client.post("/v1/events", json={"lon": lon, "lat": lat, "category": category, "description": "路口"},
                         headers=people["public"])  # fmt: skip
    assert answer.status_code == 201, answer.text
    return answer.json()


def _act(client: TestClient, who: dict, event: dict, action: str, status: int = 200, **fields) -> dict:
    body = {"action": action, "expected_version": event["row_version"], **fields}
    answer = client.post(f"/v1/events/{event['id']}/transitions", json=body, headers=who)
    assert answer.status_code == status, (action, answer.text)
    return answer.json()


def _read(client: TestClient, who: dict, event_id: int) -> dict:
    answer = client.get(f"/v1/events/{event_id}", headers=who)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _hours(later: str, earlier: str) -> float:
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds() / 3600


def test_escalation_moves_the_work_up_and_back_down(city):
    client, engine, people = city
    event = _report(client, people)
    assert (event["owner_kind"], event["owner_code"]) == ("unit", GRIDS[0])
    # the grid worker's queue holds it; the community dispatcher's does not yet (it sees it, but it is the grid's)
    assert event["id"] in [e["id"] for e in client.get("/v1/queue", headers=people["grid"]).json()["items"]]

    # the grid worker cannot solve it: escalated by hand to the community, on the community's accept clock
    up = _act(client, people["grid"], event, "escalate", reason="需要村里协调")
    assert (up["escalation_level"], up["owner_kind"], up["owner_code"]) == ("community", "unit", COMMUNITY_A)
    assert _hours(up["accept_due_at"], up["updated_at"]) == pytest.approx(COMMUNITY_HOURS[0])
    refused = _act(client, people["grid"], up, "accept", 403)
    assert refused["title"] == "No longer yours" and COMMUNITY_A in refused["detail"]
    assert refused["owner_code"] == COMMUNITY_A
    assert _read(client, people["grid"], event["id"])["owner_code"] == COMMUNITY_A  # still reads it
    assert event["id"] not in [e["id"] for e in client.get("/v1/queue", headers=people["grid"]).json()["items"]]

    # the community dispatcher acts, then sends it up to the town: the community may no longer dispatch
    accepted = _act(client, people["community"], up, "accept")
    town = _act(client, people["community"], accepted, "escalate", reason="跨村")
    assert (town["escalation_level"], town["owner_code"], town["status"]) == ("town", TOWN_A, "accepted")
    assert _act(client, people["community"], town, "dispatch", 403)["title"] == "No longer yours"
    _act(client, people["grid"], town, "return_down", 403)  # a grid worker may never return down

    # the town hands it back down; the community dispatches on its own level's handling clock
    down = _act(client, people["town"], town, "return_down", reason="村里能办")
    assert (down["escalation_level"], down["owner_code"]) == ("community", COMMUNITY_A)
    sent = _act(client, people["community"], down, "dispatch", handler_username=None)
    assert (sent["owner_kind"], sent["owner_code"]) == ("department", "urban_management")
    assert _hours(sent["handle_due_at"], sent["dispatched_at"]) == pytest.approx(COMMUNITY_HOURS[1])
    mine = client.get("/v1/events", params={"owner": "mine"}, headers=people["handler"]).json()["items"]
    assert [e["id"] for e in mine] == [event["id"]]
    by_owner = client.get("/v1/events", params={"owner_kind": "department", "owner_code": "urban_management"},
                          headers=people["town"]).json()["items"]  # fmt: skip
    assert [e["id"] for e in by_owner] == [event["id"]]

    # the handling deadline passes: the sweep hands it up to the town, which takes it back from the department
    due = datetime.fromisoformat(sent["handle_due_at"])
    with transaction(engine) as session:
        assert sweep_deadlines(session, due + timedelta(minutes=1)).escalated == 1
    swept = _read(client, people["town"], event["id"])
    assert (swept["status"], swept["escalation_level"], swept["owner_code"]) == ("returned", "town", TOWN_A)
    assert swept["handler_username"] is None
    assert _act(client, people["handler"], swept, "start", 409)  # returned: nothing for a handler to start
    assert _read(client, people["handler"], event["id"])["department_code"] == "urban_management"  # still reads

    log = client.get(f"/v1/events/{event['id']}/log", headers=people["town"]).json()["entries"]
    moves = [(e["action"], e["actor"], e["details"].get("from_owner"), e["details"].get("to_owner"))
             for e in log if e["action"] in ("escalate", "return_down", "dispatch")]  # fmt: skip
    assert moves == [
        ("escalate", "gw", f"unit:{GRIDS[0]}", f"unit:{COMMUNITY_A}"),
        ("escalate", "disp-c", f"unit:{COMMUNITY_A}", f"unit:{TOWN_A}"),
        ("return_down", "disp-t", f"unit:{TOWN_A}", f"unit:{COMMUNITY_A}"),
        ("dispatch", "disp-c", f"unit:{COMMUNITY_A}", "department:urban_management"),
        ("escalate", "deadline-sweep", "department:urban_management", f"unit:{TOWN_A}"),
    ]
    with engine.connect() as conn:
        history = conn.execute(
            text("SELECT owner_code, until IS NULL FROM event_owners WHERE event_id = :id ORDER BY id"),
            {"id": event["id"]},
        ).all()
    assert [tuple(r) for r in history] == [
        (GRIDS[0], False), (COMMUNITY_A, False), (TOWN_A, False), (COMMUNITY_A, False),
        ("urban_management", False), (TOWN_A, True),
    ]  # fmt: skip


def test_sweep_escalates_a_report_on_the_next_levels_accept_clock(city):
    client, engine, people = city
    event = _report(client, people)
    due = datetime.fromisoformat(event["accept_due_at"])
    now = due + timedelta(minutes=1)
    with transaction(engine) as session:
        sweep_deadlines(session, now)
    swept = _read(client, people["community"], event["id"])
    assert (swept["status"], swept["escalation_level"], swept["owner_code"]) == ("reported", "community", COMMUNITY_A)
    assert datetime.fromisoformat(swept["accept_due_at"]) == now + timedelta(hours=COMMUNITY_HOURS[0])


def test_small_matter_stays_in_the_grid_and_the_community_verifies(city):
    client, _, people = city
    ordinary = _act(client, people["grid"], _report(client, people), "accept")
    assert "start" not in ordinary["allowed_actions"]
    _act(client, people["grid"], ordinary, "start", 409)  # not a small matter: it waits for a dispatch

    event = _report(client, people, SMALL)
    accepted = _act(client, people["grid"], event, "accept")
    assert "start" in accepted["allowed_actions"]
    working = _act(client, people["grid"], accepted, "start")
    assert (working["status"], working["owner_code"]) == ("handling", GRIDS[0])
    assert _act(client, people["grid"], working, "feedback", 422)["title"] == "Evidence required"
    done = _act(client, people["grid"], working, "feedback", photos=[{"url": "https://img.example/after.jpg"}])
    assert (done["status"], done["owner_code"]) == ("handled", GRIDS[0])
    assert _act(client, people["grid"], done, "verify", 403)["title"] == "Not allowed"
    assert _act(client, people["community"], done, "verify")["status"] == "verified"


def test_queue_counts_the_callers_open_events_by_warning_colour(city):
    client, engine, people = city
    fresh, late = _report(client, people), _report(client, people)
    with transaction(engine) as session:  # the late one's accept deadline has passed: red
        session.execute(
            text("UPDATE events SET reported_at = now() - interval '5 hours', accept_due_at = now() - interval '1 hour' "
                 "WHERE id = :id"),
            {"id": late["id"]},
        )  # fmt: skip
    queue = client.get("/v1/queue", headers=people["grid"]).json()
    ids = {e["id"] for e in queue["items"]}
    assert {fresh["id"], late["id"]} <= ids
    assert all(e["owner_code"] == GRIDS[0] and e["status"] not in ("verified", "archived") for e in queue["items"])
    assert queue["counts"]["red"] >= 1 and queue["counts"]["total"] == len(ids)
    assert sum(queue["counts"][c] for c in ("none", "blue", "yellow", "red")) == queue["counts"]["total"]
    town_queue = client.get("/v1/queue", headers=people["town"]).json()
    assert {fresh["id"], late["id"]} <= {e["id"] for e in town_queue["items"]}  # the town may step in below
    assert client.get("/v1/queue", headers=people["public"]).status_code == 403
    counts = client.get("/v1/stats/counts", params={"by": "owner"}, headers=people["town"]).json()["rows"]
    by_owner = {r["key"]: (r["name"], r["events"]) for r in counts}
    assert by_owner[f"unit:{GRIDS[0]}"] == ("网格1", queue["counts"]["total"] + 1)  # and the verified small matter
    assert by_owner[f"unit:{TOWN_A}"] == ("甲镇", 1)


def test_an_event_placed_after_it_was_stored_gets_the_unit_of_its_place(city):
    _, engine, _ = city
    with transaction(engine) as session:  # as a historic import is stored, then placed by bulk routing
        event_id = session.execute(
            text("INSERT INTO events (geom, category_code, occurred_at) "
                 "VALUES (ST_SetSRID(ST_MakePoint(:x, :y), 4326), 'city_management', now()) RETURNING id"),
            {"x": centre(1)[0], "y": centre(1)[1]},
        ).scalar_one()  # fmt: skip
        # no place yet: the next level up that exists, the city centre
        assert session.execute(text("SELECT owner_code FROM events WHERE id = :id"), {"id": event_id}).scalar() == CITY
        session.execute(
            text("UPDATE events SET grid_code = :g, community_code = :c, town_code = :t WHERE id = :id"),
            {"g": GRIDS[1], "c": COMMUNITY_A, "t": TOWN_A, "id": event_id},
        )
        owner = session.execute(text("SELECT owner_kind, owner_code FROM events WHERE id = :id"), {"id": event_id})
        assert tuple(owner.one()) == ("unit", GRIDS[1])
        history = session.execute(text("SELECT owner_code FROM event_owners WHERE event_id = :id"), {"id": event_id})
        assert history.scalars().all() == [CITY, GRIDS[1]]
