"""No report is lost or stored twice while PostgreSQL stops and restarts under concurrent clients.

The database runs in a cluster of this test's own (stopping the suite's cluster would pull it from
under every other test); the service is a real uvicorn process that is never restarted.
"""

from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from bench.lost_events import Restarter, reports_for, served, stored, submit_all
from geoservice.infra.database import make_engine, migrate
from geoservice.infra.embedded import EmbeddedCluster
from tests.geoservice.events_city import centre, load_events_city

REPORTS, CLIENTS = 240, 6


@pytest.fixture
def own_cluster(tmp_path: Path):
    cluster = EmbeddedCluster(tmp_path / "pg")
    url = cluster.up("faults")
    engine: Engine = make_engine(url)
    migrate(engine)
    load_events_city(engine)
    engine.dispose()
    yield cluster, url
    cluster.down()


def test_every_acknowledged_report_is_stored_exactly_once_across_a_database_restart(own_cluster):
    cluster, url = own_cluster
    reports = reports_for([centre(g) for g in range(4)], REPORTS, "city_management.garbage", "t")
    restarter = Restarter(cluster, "faults", at=[REPORTS // 3], pause_s=2.0)
    with served(url) as base:
        outcome = submit_all(base, reports, CLIENTS, give_up_s=60, progress=restarter)
        after = httpx.get(f"{base}/readyz", timeout=5)
        more = httpx.post(f"{base}/v1/events", json=reports[0][1] | {"description": "after"}, timeout=5)
    assert restarter.restarts == 1 and outcome.failures > 0  # the outage really hit the clients
    assert outcome.unanswered == [] and len(outcome.acknowledged) == REPORTS
    found = stored(url)
    assert sorted(found) == sorted(outcome.acknowledged)  # none lost, none invented
    assert {key: ids for key, ids in found.items() if len(ids) != 1} == {}  # none stored twice
    assert all(found[key] == [event_id] for key, event_id in outcome.acknowledged.items())
    assert after.status_code == 200 and more.status_code == 201  # the same server answers again
