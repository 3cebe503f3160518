"""Publishing drafts through the running app: refusal of invalid drafts, re-routing by the policy
(logged), locate switching under load without a mixed answer, the past still answerable, rollback."""

import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from shapely import box
from sqlalchemy import Engine, text

from etl.reference import load_reference_data
from geoservice.app import create_app
from geoservice.boundaries.versions import current_version_id
from geoservice.infra.database import transaction
from geoservice.routing.bulk_events import assign_departments, assign_places
from geoservice.routing.loader import load_router
from geoservice.settings import RoutingSettings
from layers.models import Role
from tests.etl.tiny_city import EAST, WEST, X0, Y0, D
from tests.geoservice.signin import sign_in
from tests.geoservice.test_boundaries_drafts import edit, geojson, new_draft
from tests.geoservice.test_locate_api import load_tiny_city
from tests.settings import ROUTING

# A point in the eastern part of West 001, which the drafts below give to West 002.
MOVING = {"lon": X0 + 0.8 * D, "lat": Y0 + 0.5 * D}
STAYING = {"lon": X0 + 0.2 * D, "lat": Y0 + 0.5 * D}
STATUSES = ("reported", "accepted", "returned", "dispatched", "handling", "archived")


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    load_tiny_city(empty_db, at="2026-01-01T00:00:00+08:00")
    with transaction(empty_db) as session:
        load_reference_data(session)
        for status in STATUSES:
            for point in (MOVING, STAYING):
                session.execute(
                    text(
                        "INSERT INTO events (geom, category_code, status, occurred_at, description) "
                        "VALUES (ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 'public_order.dispute', :s, now(), :d)"
                    ),
                    {**point, "s": status, "d": status},
                )
        assign_places(session)
        assign_departments(session, load_router(session, current_version_id(session), ROUTING))
    with TestClient(create_app(engine=empty_db, routing=RoutingSettings(version_check_s=0.2))) as client:
        yield client


@pytest.fixture
def planner(client: TestClient, empty_db: Engine) -> dict[str, str]:
    return sign_in(client, empty_db, Role.planner, "planner-li")


def draft_moving_the_east_of_west_001(client: TestClient, auth: dict[str, str], name: str = "v2") -> int:
    draft = new_draft(client, auth, name)
    area = box(X0 + 0.6 * D, Y0 - 0.001, X0 + D, Y0 + D + 0.001)
    edit(client, auth, draft, {"op": "move_boundary", "from_grid": WEST + "001", "to_grid": WEST + "002",
                               "area": geojson(area)})  # fmt: skip
    return draft


def located(client: TestClient, auth: dict[str, str], **params) -> tuple[int, str]:
    # Signed in: the public's rate limit would otherwise cut a tight loop short.
    body = client.get("/v1/locate", params={**MOVING, **params}, headers=auth).json()
    return body["version"]["id"], body["grid"]["code"]


def wait_for_version(client: TestClient, auth: dict[str, str], version_id: int) -> tuple[int, str]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answer = located(client, auth)
        if answer[0] == version_id:
            return answer
        time.sleep(0.05)
    raise AssertionError(f"locate never answered from version {version_id}")


def events(engine: Engine) -> dict[tuple[str, str], tuple]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT status, ST_X(geom) < :mid AS west_part, grid_code, boundary_version_id, row_version FROM events"
            ),
            {"mid": X0 + 0.5 * D},
        ).all()
    return {(r.status, "staying" if r.west_part else "moving"): (r.grid_code, r.boundary_version_id, r.row_version)
            for r in rows}  # fmt: skip


def test_a_draft_with_errors_is_refused_and_nothing_changes(client: TestClient, planner: dict, empty_db: Engine):
    before = events(empty_db)
    draft = new_draft(client, planner)
    edit(client, planner, draft, {"op": "remove", "grid": EAST + "002"})
    response = client.post(f"/v1/boundary-versions/{draft}/publish", json={}, headers=planner)
    assert response.status_code == 409 and response.json()["title"] == "Draft has validation errors"
    assert [e["kind"] for e in response.json()["errors"]] == ["gap"]
    assert client.get(f"/v1/boundary-versions/{draft}", headers=planner).json()["status"] == "draft"
    assert client.get("/v1/boundary-versions/1", headers=planner).json()["status"] == "published"
    assert events(empty_db) == before
    no_zone = client.post(f"/v1/boundary-versions/{draft}/publish", json={"effective_from": "2027-01-01T00:00:00"},
                          headers=planner)  # fmt: skip
    assert no_zone.status_code == 422 and "time zone" in no_zone.json()["detail"]


def test_publish_reroutes_events_not_yet_dispatched_and_logs_each(client: TestClient, planner: dict, empty_db: Engine):
    draft = draft_moving_the_east_of_west_001(client, planner)
    response = client.post(f"/v1/boundary-versions/{draft}/publish", json={}, headers=planner)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"]["status"] == "published" and len(body["rerouted"]) == 3 and len(body["kept"]) == 2

    after = events(empty_db)
    for status in ("reported", "accepted", "returned"):
        assert after[(status, "moving")] == (WEST + "002", draft, 2)
    for status in ("dispatched", "handling", "archived"):
        assert after[(status, "moving")] == (WEST + "001", 1, 1)  # kept as dispatched (or closed)
    for status in STATUSES:
        assert after[(status, "staying")] == (WEST + "001", 1, 1)

    with empty_db.connect() as conn:
        log = conn.execute(
            text(
                "SELECT l.event_id, l.actor, l.role, l.action, l.from_status, l.to_status, l.details, e.status "
                "FROM event_log l JOIN events e ON e.id = l.event_id ORDER BY l.event_id"
            )
        ).all()
    assert sorted(r.event_id for r in log) == sorted(body["rerouted"])
    for row in log:
        assert (row.actor, row.role, row.action) == ("planner-li", "planner", "reroute")
        assert row.from_status == row.to_status == row.status
        assert row.details["old"]["grid_code"] == WEST + "001" and row.details["new"]["grid_code"] == WEST + "002"
        assert row.details["version"] == {"id": draft, "name": "v2"}


def test_locate_under_load_never_mixes_versions(client: TestClient, planner: dict):
    assert located(client, planner) == (1, WEST + "001")
    draft = draft_moving_the_east_of_west_001(client, planner)
    answers: list[tuple[int, str, str]] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            body = client.get("/v1/locate", params=MOVING, headers=planner).json()
            answers.append((body["version"]["id"], body["version"]["name"], body["grid"]["code"]))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.2)
        assert client.post(f"/v1/boundary-versions/{draft}/publish", json={}, headers=planner).status_code == 200
        wait_for_version(client, planner, draft)
        time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    # Every answer is wholly one version's: its id, its name and its grid for that point.
    assert set(answers) == {(1, "v1", WEST + "001"), (draft, "v2", WEST + "002")}
    switched = [a[0] for a in answers]
    assert switched.index(draft) > 0 and all(v == draft for v in switched[-5:])


def test_the_past_stays_answerable_and_rollback_publishes_the_old_boundaries_again(client: TestClient, planner: dict):
    draft = draft_moving_the_east_of_west_001(client, planner)
    assert client.post(f"/v1/boundary-versions/{draft}/publish", json={}, headers=planner).status_code == 200
    assert wait_for_version(client, planner, draft) == (draft, WEST + "002")
    assert located(client, planner, at="2026-06-01T00:00:00+08:00") == (1, WEST + "001")

    response = client.post("/v1/boundary-versions/1/rollback", json={}, headers=planner)
    assert response.status_code == 200, response.text
    rolled = response.json()["version"]
    assert rolled["name"] == "v1 (rollback 1)" and rolled["based_on_id"] == 1 and rolled["status"] == "published"
    assert len(response.json()["rerouted"]) == 3  # the same three events go back to West 001
    assert wait_for_version(client, planner, rolled["id"]) == (rolled["id"], WEST + "001")

    history = {v["name"]: v for v in client.get("/v1/boundary-versions", headers=planner).json()}
    assert [history[n]["status"] for n in ("v1", "v2", "v1 (rollback 1)")] == ["retired", "retired", "published"]
    assert history["v1"]["effective_to"] is not None and history["v1"]["grids"] == 4
    # History is never rewritten: yesterday's answers are what they were.
    assert located(client, planner, at="2026-06-01T00:00:00+08:00") == (1, WEST + "001")
    between = history["v2"]["effective_from"]
    assert located(client, planner, at=between) == (draft, WEST + "002")
    # The grid layer as it was then: the version in force at the instant, then its grids.
    then = client.get("/v1/boundary-versions/in-force", params={"at": "2026-06-01T00:00:00+08:00"}, headers=planner)
    assert then.json()["name"] == "v1"
    assert client.get("/v1/boundary-versions/in-force", headers=planner).json()["name"] == "v1 (rollback 1)"
    before_all = client.get("/v1/boundary-versions/in-force", params={"at": "2020-01-01T00:00:00+08:00"},
                            headers=planner)  # fmt: skip
    assert before_all.status_code == 404 and "no boundary version was in force" in before_all.json()["detail"]

    diff = client.get(f"/v1/boundary-versions/1/diff/{draft}", headers=planner).json()
    assert diff["summary"]["grids"] == {"added": 0, "removed": 0, "changed": 2}
    changes = {g["code"]: g for g in diff["grids"]}
    assert changes[WEST + "001"]["area_change_pct"] == pytest.approx(-40.0, abs=0.01)
    assert changes[WEST + "002"]["area_change_pct"] == pytest.approx(40.0, abs=0.01)
    assert changes[WEST + "001"]["area_change_m2"] == pytest.approx(-changes[WEST + "002"]["area_change_m2"], rel=1e-6)
    same = client.get(f"/v1/boundary-versions/1/diff/{rolled['id']}", headers=planner).json()
    assert same["grids"] == [] and same["regions"] == []
    draft_again = client.post("/v1/boundary-versions/1/rollback", json={}, headers=planner).json()
    assert draft_again["version"]["name"] == "v1 (rollback 2)"


def test_rollback_to_a_draft_and_publishing_twice_are_refused(client: TestClient, planner: dict):
    draft = draft_moving_the_east_of_west_001(client, planner)
    refused = client.post(f"/v1/boundary-versions/{draft}/rollback", json={}, headers=planner)
    assert refused.status_code == 409 and "is a draft" in refused.json()["detail"]
    assert client.post(f"/v1/boundary-versions/{draft}/publish", json={}, headers=planner).status_code == 200
    again = client.post(f"/v1/boundary-versions/{draft}/publish", json={}, headers=planner)
    assert again.status_code == 409 and "only a draft can be published" in again.json()["detail"]
