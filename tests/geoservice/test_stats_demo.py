"""Statistics on the demo city (read-only): its synthetic history makes every table meaningful."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geoservice.app import create_app
from geoservice.auth.tokens import issue_token
from geoservice.infra.database import session_factory
from geoservice.settings import AuthSettings
from geoservice.stats.filters import Condition
from geoservice.stats.performance import performance


@pytest.fixture(scope="module")
def figures(demo_db: Engine) -> Iterator[dict]:
    with session_factory(demo_db)() as session:
        overall = performance(session, Condition())[0]
        by_town = performance(session, Condition(), by="town")
        month = session.execute(text("SELECT to_char(max(reported_at) AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM') "
                                     "FROM events")).scalar()  # fmt: skip
    yield {"overall": overall, "by_town": by_town, "month": month}


def test_the_demo_history_is_plausible(figures: dict):
    overall = figures["overall"]
    assert overall["events"] == 50_000 and overall["handled"] > 40_000
    assert 0.85 < overall["on_time_rate"] < 0.99
    assert 0.03 < overall["reopen_rate"] < 0.15
    assert 3.5 < overall["mean_satisfaction"] < 4.5
    assert 0 < overall["mean_handling_h"] < overall["p90_handling_h"]
    rates = [r["on_time_rate"] for r in figures["by_town"] if r["key"]]
    assert max(rates) - min(rates) > 0.03  # towns work at different paces


def test_the_demo_ranking_orders_every_town(demo_db: Engine, figures: dict):
    settings = AuthSettings(secret_key="s" * 40)
    token, _ = issue_token("supervisor", settings)  # the demo's supervisor account
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(engine=demo_db, auth_settings=settings)) as client:
        body = client.get("/v1/stats/ranking", params={"month": figures["month"], "level": "town"},
                          headers=auth).json()  # fmt: skip
        assert len(body["rows"]) == 14 and body["incidence_per"] == "10k residents"
        indexes = [r["index"] for r in body["rows"]]
        assert indexes == sorted(indexes, reverse=True) and len(set(indexes)) > 10
        hot = client.get("/v1/stats/hotspots", params={"from": "2026-01-01T00:00:00+08:00"}, headers=auth).json()
        assert hot["grids_analysed"] == 1500 and hot["hotspots"] > 0
        assert all(r["z"] > 0 and r["p_value"] < 0.05 for r in hot["rows"])
