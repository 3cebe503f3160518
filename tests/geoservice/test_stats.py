"""``/v1/stats`` on a fixed dataset: every figure checked against plain Python over the same rows."""

import csv
import io
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pyproj
import pytest
from fastapi.testclient import TestClient
from shapely import box
from sqlalchemy import Engine

from geoservice.app import create_app
from layers.models import Role
from tests.etl.tiny_city import EAST, TOWN, WEST, X0, Y0, D
from tests.geoservice.signin import sign_in
from tests.geoservice.stats_data import Row, load_stats_city, make_rows

ROWS = make_rows()
LOCAL = ZoneInfo("Asia/Shanghai")
POPULATION = {WEST: 3000.0, EAST: 1000.0}


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    load_stats_city(empty_db, ROWS, POPULATION)
    with TestClient(create_app(engine=empty_db)) as client:
        yield client


@pytest.fixture
def supervisor(client: TestClient, empty_db: Engine) -> dict[str, str]:
    return sign_in(client, empty_db, Role.supervisor)


def expected_performance(rows: list[Row]) -> dict:
    handled = [r for r in rows if r.handled_at]
    with_due = [r for r in handled if r.handle_due_at]
    hours = [(r.handled_at - r.dispatched_at).total_seconds() / 3600 for r in handled if r.dispatched_at]
    rated = [r.satisfaction for r in rows if r.satisfaction]
    return {
        "events": len(rows),
        "handled": len(handled),
        "on_time": sum(r.handled_at <= r.handle_due_at for r in with_due),
        "on_time_rate": sum(r.handled_at <= r.handle_due_at for r in with_due) / len(with_due) if with_due else None,
        "mean_handling_h": float(np.mean(hours)) if hours else None,
        "p90_handling_h": float(np.percentile(hours, 90)) if hours else None,
        "reopened": sum(r.reopen_count > 0 for r in handled),
        "reopen_rate": sum(r.reopen_count > 0 for r in handled) / len(handled) if handled else None,
        "evaluated": len(rated),
        "mean_satisfaction": sum(rated) / len(rated) if rated else None,
    }


def assert_figures(actual: dict, expected: dict) -> None:
    for key, value in expected.items():
        if value is None or isinstance(value, int):
            assert actual[key] == value, key
        else:
            assert actual[key] == pytest.approx(value, rel=1e-9), key


@pytest.mark.parametrize(
    "by, key",
    [
        ("town", lambda r: TOWN),
        ("community", lambda r: r.community),
        ("grid", lambda r: r.grid),
        ("category", lambda r: r.category),
        ("status", lambda r: r.status),
        ("day", lambda r: r.reported_at.astimezone(LOCAL).strftime("%Y-%m-%d")),
        ("week", lambda r: "{}-W{:02d}".format(*r.reported_at.astimezone(LOCAL).isocalendar())),
        ("month", lambda r: r.reported_at.astimezone(LOCAL).strftime("%Y-%m")),
    ],
)
def test_counts_by_every_dimension(client: TestClient, supervisor: dict, by: str, key):
    response = client.get("/v1/stats/counts", params={"by": by}, headers=supervisor)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {r["key"]: r["events"] for r in body["rows"]} == dict(Counter(key(r) for r in ROWS))
    assert body["total"] == len(ROWS)


def test_counts_carry_names_and_respect_the_time_window_and_region(client: TestClient, supervisor: dict):
    since, until = "2026-04-01T00:00:00+08:00", "2026-05-01T00:00:00+08:00"
    params = {"by": "grid", "from": since, "to": until, "region": WEST}
    body = client.get("/v1/stats/counts", params=params, headers=supervisor).json()
    lo, hi = datetime.fromisoformat(since), datetime.fromisoformat(until)
    expected = Counter(r.grid for r in ROWS if lo <= r.reported_at < hi and r.community == WEST)
    assert {r["key"]: r["events"] for r in body["rows"]} == dict(expected)
    assert {r["name"] for r in body["rows"]} <= {"西村第1网格", "西村第2网格"}


def test_performance_overall_and_by_department(client: TestClient, supervisor: dict):
    body = client.get("/v1/stats/performance", headers=supervisor).json()
    assert len(body["rows"]) == 1
    assert_figures(body["rows"][0], expected_performance(ROWS))
    by_dept = client.get("/v1/stats/performance", params={"by": "department"}, headers=supervisor).json()
    for row in by_dept["rows"]:
        assert_figures(row, expected_performance([r for r in ROWS if r.department == row["key"]]))
    assert {r["key"] for r in by_dept["rows"]} == {r.department for r in ROWS}


def test_scoped_callers_count_only_their_scope(client: TestClient, empty_db: Engine):
    west = sign_in(client, empty_db, Role.dispatcher, "west-dispatcher", region_code=WEST)
    police = sign_in(client, empty_db, Role.handler, "police-handler", department_code="police")
    counts = client.get("/v1/stats/counts", params={"by": "community"}, headers=west).json()
    assert {r["key"]: r["events"] for r in counts["rows"]} == {WEST: sum(r.community == WEST for r in ROWS)}
    perf = client.get("/v1/stats/performance", headers=police).json()["rows"][0]
    assert_figures(perf, expected_performance([r for r in ROWS if r.department == "police"]))
    # Asking for a region outside one's scope counts nothing from it.
    outside = client.get("/v1/stats/counts", params={"by": "grid", "region": EAST}, headers=west).json()
    assert outside["rows"] == [] and outside["total"] == 0


def area_km2(col0: int, col1: int) -> float:
    area, _ = pyproj.Geod(ellps="WGS84").geometry_area_perimeter(box(X0 + col0 * D, Y0, X0 + col1 * D, Y0 + D))
    return abs(area) / 1e6


def expected_ranking(month: str) -> list[tuple[str, float]]:
    """The documented index, computed here from the rows: 100·(.4T + .25S + .2(1−R) + .15(1−D))."""
    year, mon = map(int, month.split("-"))
    units = {}
    for code in (WEST, EAST):
        rows = [r for r in ROWS if r.community == code
                and (r.reported_at.astimezone(LOCAL).year, r.reported_at.astimezone(LOCAL).month) == (year, mon)]
        units[code] = (expected_performance(rows), len(rows) / POPULATION[code] * 10_000)

    def filled(values):
        known = [v for v in values if v is not None]
        return [sum(known) / len(known) if v is None else v for v in values] if known else [0.5] * len(values)

    codes = list(units)
    t = filled([units[c][0]["on_time_rate"] for c in codes])
    s = filled([None if units[c][0]["mean_satisfaction"] is None else (units[c][0]["mean_satisfaction"] - 1) / 4
                for c in codes])
    r = filled([None if units[c][0]["reopen_rate"] is None else 1 - units[c][0]["reopen_rate"] for c in codes])
    inc = [units[c][1] for c in codes]
    d = [0.5] * 2 if max(inc) == min(inc) else [(v - min(inc)) / (max(inc) - min(inc)) for v in inc]
    index = {c: 100 * (0.4 * t[i] + 0.25 * s[i] + 0.2 * r[i] + 0.15 * (1 - d[i])) for i, c in enumerate(codes)}
    return sorted(index.items(), key=lambda kv: (-kv[1], kv[0]))


@pytest.mark.parametrize("month", ["2026-03", "2026-04"])
def test_monthly_ranking_of_communities(client: TestClient, supervisor: dict, month: str):
    body = client.get("/v1/stats/ranking", params={"month": month, "level": "community"}, headers=supervisor).json()
    assert body["incidence_per"] == "10k residents"
    got = [(r["code"], r["index"]) for r in body["rows"]]
    want = expected_ranking(month)
    assert [c for c, _ in got] == [c for c, _ in want]
    for (_, a), (_, b) in zip(got, want, strict=True):
        assert a == pytest.approx(b, abs=0.01)
    assert [r["rank"] for r in body["rows"]] == [1, 2]
    west = next(r for r in body["rows"] if r["code"] == WEST)
    assert west["population"] == 3000 and west["area_km2"] == pytest.approx(area_km2(0, 2), rel=1e-3)


def test_ranking_of_towns_counts_every_event_of_the_month(client: TestClient, supervisor: dict):
    body = client.get("/v1/stats/ranking", params={"month": "2026-04", "level": "town"}, headers=supervisor).json()
    assert [r["code"] for r in body["rows"]] == [TOWN]
    april = [r for r in ROWS if r.reported_at.astimezone(LOCAL).strftime("%Y-%m") == "2026-04"]
    assert body["rows"][0]["events"] == len(april)
    assert body["rows"][0]["incidence"] == pytest.approx(len(april) / 4000 * 10_000, rel=1e-3)


def test_every_table_exports_as_csv(client: TestClient, supervisor: dict):
    for path, params in [
        ("counts", {"by": "category"}),
        ("performance", {"by": "community"}),
        ("ranking", {"month": "2026-04", "level": "community"}),
        ("hotspots", {"every": "true"}),
    ]:
        as_json = client.get(f"/v1/stats/{path}", params=params, headers=supervisor).json()["rows"]
        response = client.get(f"/v1/stats/{path}", params={**params, "format": "csv"}, headers=supervisor)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        table = list(csv.DictReader(io.StringIO(response.text)))
        assert len(table) == len(as_json) > 0, path
        first_key = next(iter(as_json[0]))
        assert [row[first_key] for row in table] == [str(r[first_key]) for r in as_json]
    counts = list(csv.DictReader(io.StringIO(client.get(
        "/v1/stats/counts", params={"by": "category", "format": "csv"}, headers=supervisor).text)))
    assert {r["key"]: int(r["events"]) for r in counts} == dict(Counter(r.category for r in ROWS))


def test_bad_input_is_a_clear_problem(client: TestClient, supervisor: dict):
    cases = [
        ("/v1/stats/counts", {"by": "planet"}, 422),
        ("/v1/stats/counts", {"by": "day", "from": "2026-04-01T00:00:00"}, 422),
        ("/v1/stats/counts", {"by": "day", "from": "2026-05-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"}, 422),
        ("/v1/stats/counts", {"by": "town", "region": "999999999999"}, 404),
        ("/v1/stats/ranking", {"month": "2026-13"}, 422),
        ("/v1/stats/hotspots", {"alpha": "0.9"}, 422),
    ]
    for path, params, status in cases:
        response = client.get(path, params=params, headers=supervisor)
        assert response.status_code == status, (path, params, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"]


def test_the_public_sees_no_statistics(client: TestClient, empty_db: Engine):
    assert client.get("/v1/stats/counts", params={"by": "town"}).status_code == 401
    citizen = sign_in(client, empty_db, Role.public)
    assert client.get("/v1/stats/counts", params={"by": "town"}, headers=citizen).status_code == 403
