"""Races through the real app: N identical reports at once store one event; two steps at once, one wins."""

import threading
from collections.abc import Callable, Iterator
from functools import partial

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from layers.models import Role
from tests.geoservice.events_city import TOWN_A, centre, events_client, load_events_city
from tests.geoservice.signin import sign_in

N = 16


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    load_events_city(empty_db)
    with events_client(empty_db) as client:
        yield client


def all_at_once(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Start every call at the same instant (a barrier), wait for all."""
    barrier = threading.Barrier(len(calls))
    results: list[httpx.Response | None] = [None] * len(calls)

    def run(k: int) -> None:
        barrier.wait()
        results[k] = calls[k]()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def test_n_identical_reports_at_once_store_one_event(client: TestClient, empty_db: Engine):
    auth = sign_in(client, empty_db, Role.grid_worker, region_code=TOWN_A)
    lon, lat = centre(1)
    body = {"lon": lon, "lat": lat, "category": "city_management.road", "source": "grid_worker",
            "description": "井盖缺失", "idempotency_key": "patrol-2026-11-24-0001"}  # fmt: skip
    responses = all_at_once([lambda: client.post("/v1/events", json=body, headers=auth)] * N)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * (N - 1) + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    with empty_db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 1
        assert conn.execute(text("SELECT count(*) FROM event_log")).scalar_one() == 1


def test_two_steps_on_one_version_exactly_one_wins(client: TestClient, empty_db: Engine):
    dispatcher = sign_in(client, empty_db, Role.dispatcher, region_code=TOWN_A)
    worker = sign_in(client, empty_db, Role.grid_worker, region_code=TOWN_A)
    lon, lat = centre(0)
    for _ in range(5):  # a few rounds: the race must hold every time, not by luck of timing
        event = client.post("/v1/events", json={"lon": lon, "lat": lat, "category": "environment.noise"},
                            headers=dispatcher).json()  # fmt: skip
        path = f"/v1/events/{event['id']}/transitions"
        accept = {"action": "accept", "expected_version": 1}
        reject = {"action": "reject", "expected_version": 1, "note": "无效举报"}
        escalate = {"action": "escalate", "expected_version": 1, "note": "需要升级"}
        responses = all_at_once([
            partial(client.post, path, json=accept, headers=worker),
            partial(client.post, path, json=reject, headers=dispatcher),
            partial(client.post, path, json=escalate, headers=dispatcher),
        ])  # fmt: skip
        codes = sorted(r.status_code for r in responses)
        assert codes == [200, 409, 409], [r.text for r in responses]
        loser = [r.json() for r in responses if r.status_code == 409]
        assert all(p["title"] in ("Event changed", "Not allowed in this state") for p in loser)
        after = client.get(f"/v1/events/{event['id']}", headers=dispatcher).json()
        assert after["row_version"] == 2
        with empty_db.connect() as conn:
            steps = conn.execute(text("SELECT count(*) FROM event_log WHERE event_id = :id AND action <> 'report'"),
                                 {"id": event["id"]}).scalar_one()  # fmt: skip
        assert steps == 1
