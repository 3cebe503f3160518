"""After a publish, reports and locates answer from the version in force at their instant.

A worker builds the new version's router after it hears of the publish; on a large city that takes
seconds. In that window the worker no longer answers from the retired version: requests wait for
the build. Reports it routed by the retired version just before it heard are routed again when it
swaps the new router in (``reroute_window``, under the routing lock).

The new version merges grid 1 into grid 0, so the centre of grid 1 changes grid.
"""

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest
from sqlalchemy import Engine, text

from geoservice.auth.users import Principal
from geoservice.boundaries.drafts import create_draft, merge_grids
from geoservice.boundaries.publish import publish_version
from geoservice.boundaries.reroute import reroute_window
from geoservice.boundaries.versions import hold_routing
from geoservice.events.report import report_event
from geoservice.infra.database import make_engine, transaction
from geoservice.routing import registry as registry_module
from geoservice.routing.registry import RouterRegistry
from layers.models import Role
from tests.conftest import clone_template, drop_database
from tests.geoservice.events_city import GRIDS, centre, events_city_client, load_events_city
from tests.geoservice.signin import sign_in
from tests.settings import PUBLISHING, ROUTING

MOVED = centre(1)  # in grid 1 under v1, in grid 0 under v2


@pytest.fixture
def engine(cluster) -> Iterator[Engine]:
    engine = make_engine(clone_template(cluster, "t_publish_window"))
    yield engine
    engine.dispose()
    drop_database(cluster, "t_publish_window")


def publish_merge(engine: Engine) -> int:
    """Publish v2: grids 0 and 1 merged into grid 0. Returns its id."""
    with transaction(engine) as session:
        draft = create_draft(session, "v2")
        merge_grids(session, draft, GRIDS[:2], "合并网格")
        publish_version(session, draft, **PUBLISHING)
    return draft


def stored(engine: Engine, event_id: int) -> tuple[str, int, list[str]]:
    with engine.connect() as conn:
        grid, version = conn.execute(
            text("SELECT grid_code, boundary_version_id FROM events WHERE id = :id"), {"id": event_id}
        ).one()
        actions = conn.execute(
            text("SELECT action FROM event_log WHERE event_id = :id ORDER BY id"), {"id": event_id}
        ).scalars()
        return grid, version, list(actions)


def test_a_report_routed_by_the_retired_version_is_routed_again_when_the_worker_swaps(engine: Engine):
    load_events_city(engine)
    routers = RouterRegistry(engine, ROUTING, on_swap=partial(reroute_window, engine))
    old = routers.current()
    v2 = publish_merge(engine)
    # This worker has not heard of the publish yet (no watcher here): it routes by v1 and commits.
    with transaction(engine) as session:
        hold_routing(session)
        event, _ = report_event(session, routers.loaded(), lon=MOVED[0], lat=MOVED[1],
                                category_code="city_management.garbage", actor=Principal("citizen", Role.public))
    assert stored(engine, event["id"]) == (GRIDS[1], old.version_id, ["report"])
    # Its watcher would now swap in v2 and catch up: the report is routed as v2 places it.
    assert routers.refresh() and routers.current().version_id == v2
    assert stored(engine, event["id"]) == (GRIDS[0], v2, ["report", "reroute"])
    # Routed by v2 now, it is not touched again by a later swap.
    routers.refresh(force=True)
    assert stored(engine, event["id"]) == (GRIDS[0], v2, ["report", "reroute"])


def test_reports_and_locates_wait_for_the_new_router_instead_of_answering_from_the_old(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    with events_city_client(engine) as client:
        citizen = sign_in(client, engine, Role.public, "citizen")
        point = {"lon": MOVED[0], "lat": MOVED[1]}
        assert client.get("/v1/locate", params=point).json()["grid"]["code"] == GRIDS[1]
        # The next router build waits for the gate: a large city's build, seconds long, made visible.
        gate, build = threading.Event(), registry_module.load_router
        monkeypatch.setattr(registry_module, "load_router", lambda *a, **k: gate.wait(60) and build(*a, **k))
        routers = client.app.state.routers
        v2 = publish_merge(engine)
        for _ in range(200):  # the NOTIFY reaches the worker's watcher in milliseconds
            if routers.behind():
                break
            threading.Event().wait(0.025)
        assert routers.behind() and routers.loaded().version_id != v2
        with ThreadPoolExecutor(2) as pool:
            located = pool.submit(client.get, "/v1/locate", params=point)
            body = {**point, "category": "city_management.garbage", "description": "垃圾"}
            reported = pool.submit(client.post, "/v1/events", json=body, headers=citizen)
            threading.Event().wait(0.5)
            assert not located.done() and not reported.done()  # no answer from the retired version
            gate.set()
            located, reported = located.result(timeout=60), reported.result(timeout=60)
        assert located.status_code == 200 and located.json()["grid"]["code"] == GRIDS[0]
        assert located.json()["version"]["name"] == "v2"
        assert reported.status_code == 201, reported.text
        assert stored(engine, reported.json()["id"]) == (GRIDS[0], v2, ["report"])
        assert client.get("/readyz").json()["router_version"] == v2
