"""Counts by town, community and month read from the monthly groups (migration 0019), kept by the writes.

Two checks: the groups equal a plain ``GROUP BY`` over ``events`` after every kind of write (a
multi-row insert, COPY, a status change, a re-route, a report moved across a local month, a delete,
a rolled-back insert); and ``/v1/stats/counts`` answers every role, window and region exactly as
plain Python over the same rows does, whichever path serves it.
"""

from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geoservice.app import create_app
from geoservice.auth.scope import Scope
from geoservice.infra.database import transaction
from geoservice.stats.counts import monthly_counts
from geoservice.stats.filters import Condition
from layers.models import Role
from tests.etl.tiny_city import EAST, TOWN, WEST
from tests.geoservice.signin import sign_in
from tests.geoservice.stats_data import GRIDS, Row, load_stats_city, make_rows

# The seeded rows, and reports either side of local month starts (which are 16:00 UTC the day before).
ROWS = make_rows() + [
    Row(900 + k, GRIDS[k % 4], "public_order.dispute", "police", "reported", datetime.fromisoformat(at), None,
        None, None, 0, None)
    for k, at in enumerate(["2026-03-31T16:30:00Z", "2026-04-30T15:59:59Z", "2026-04-30T16:00:00Z",
                            "2026-05-31T23:00:00Z"])
]  # fmt: skip
LOCAL = ZoneInfo("Asia/Shanghai")
GROUPS = """
    SELECT to_char(month, 'YYYY-MM') AS month, town_code, community_code, place_prefix, department_code, events
      FROM event_month_counts WHERE events <> 0 ORDER BY 1, 2, 3, 4, 5
"""
EXPECTED = """
    SELECT to_char(reported_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM') AS month, town_code, community_code,
           left(coalesce(grid_code, community_code, town_code, ''), 12), department_code, count(*)
      FROM events GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
"""


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    load_stats_city(empty_db, ROWS)
    with TestClient(create_app(engine=empty_db)) as client:
        yield client


def groups_and_events(engine: Engine) -> tuple[list, list]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(GROUPS))], [tuple(r) for r in conn.execute(text(EXPECTED))]


def test_the_groups_follow_every_write(client: TestClient, empty_db: Engine):
    groups, events = groups_and_events(empty_db)
    assert groups == events and sum(g[-1] for g in groups) == len(ROWS)

    insert = ("INSERT INTO events (id, geom, category_code, occurred_at, reported_at, grid_code, community_code, "
              "town_code) SELECT :first + k, 'SRID=4326;POINT(120.5 32.3)', 'environment.noise', t, t, g, c, :town "
              "FROM (VALUES (0, '2026-03-31T15:59:59Z'::timestamptz, :grid, :west), "
              "(1, '2026-03-31T16:00:00Z', NULL, :east), (2, '2026-06-01T00:00:00+08:00', NULL, NULL)) "
              "AS v(k, t, g, c)")  # fmt: skip
    places = {"town": TOWN, "grid": GRIDS[0], "west": WEST, "east": EAST}
    writes = [
        (insert, {"first": 1001, **places}),  # either side of a local midnight, and a report outside every grid
        ("UPDATE events SET status = 'archived' WHERE id <= 20", {}),  # counts nothing new
        ("UPDATE events SET grid_code = :grid, community_code = :east WHERE id BETWEEN 21 AND 40",
         {"grid": GRIDS[2], "east": EAST}),  # re-routed, as after a publish
        ("UPDATE events SET reported_at = reported_at + interval '31 days' WHERE id % 7 = 0", {}),
        ("UPDATE events SET department_code = 'police' WHERE department_code = 'ecology' AND id % 2 = 0", {}),
        ("UPDATE events SET town_code = NULL, community_code = NULL, grid_code = NULL WHERE id = 1002", {}),
        ("DELETE FROM events WHERE id IN (3, 1001)", {}),
    ]  # fmt: skip
    for sql, params in writes:
        with empty_db.begin() as conn:
            conn.execute(text(sql), params)
        groups, events = groups_and_events(empty_db)
        assert groups == events, sql

    with empty_db.begin() as conn:  # COPY, as a city pack's import writes events
        raw = conn.connection.driver_connection
        with raw.cursor().copy("COPY events (id, geom, category_code, occurred_at, reported_at, town_code) "
                               "FROM STDIN") as copy:  # fmt: skip
            for k in range(5):
                copy.write_row((2000 + k, "SRID=4326;POINT(120.5 32.3)", "environment.noise",
                                f"2026-07-0{k + 1}T12:00:00+08:00", f"2026-07-0{k + 1}T12:00:00+08:00", TOWN))  # fmt: skip
    groups, events = groups_and_events(empty_db)
    assert groups == events and sum(g[-1] for g in groups) == len(ROWS) + 3 - 2 + 5

    with pytest.raises(RuntimeError), transaction(empty_db) as session:  # nothing half-written
        session.execute(text(insert), {"first": 3001, **places})
        raise RuntimeError("the import failed after its insert")
    groups, events = groups_and_events(empty_db)
    assert groups == events and sum(g[-1] for g in groups) == len(ROWS) + 3 - 2 + 5


def expected_counts(by: str, *keep) -> dict:
    keys = {"town": lambda r: TOWN, "community": lambda r: r.community, "grid": lambda r: r.grid,
            "month": lambda r: r.reported_at.astimezone(LOCAL).strftime("%Y-%m")}  # fmt: skip
    return dict(Counter(keys[by](r) for r in ROWS if all(k(r) for k in keep)))


WINDOWS = [
    ({}, lambda r: True),
    ({"from": "2026-04-01T00:00:00+08:00", "to": "2026-05-01T00:00:00+08:00"},  # local months: the groups
     lambda r: datetime(2026, 4, 1, tzinfo=LOCAL) <= r.reported_at < datetime(2026, 5, 1, tzinfo=LOCAL)),
    ({"from": "2026-04-01T00:00:00Z"}, lambda r: r.reported_at >= datetime(2026, 4, 1, tzinfo=ZoneInfo("UTC"))),
    ({"to": "2026-04-15T08:00:00+08:00"}, lambda r: r.reported_at < datetime(2026, 4, 15, 8, tzinfo=LOCAL)),
]  # fmt: skip
REGIONS = [(None, lambda r: True), (TOWN, lambda r: True), (WEST, lambda r: r.community == WEST),
           (GRIDS[3], lambda r: r.grid == GRIDS[3])]  # fmt: skip


def test_counts_answer_as_the_rows_say_for_every_caller_window_and_region(client: TestClient, empty_db: Engine):
    co_handled = {r.id for r in ROWS if r.department != "police"}
    co_handled = set(sorted(co_handled)[:6])  # police co-handle six others' events, two of them no longer
    with empty_db.begin() as conn:
        for k, event_id in enumerate(sorted(co_handled)):
            conn.execute(text("INSERT INTO event_tasks (event_id, department_code, status, created_by) "
                              "VALUES (:e, 'police', :s, 'dispatcher')"),
                         {"e": event_id, "s": ("open", "handling", "fed_back")[k % 3]})  # fmt: skip
    live = set(sorted(co_handled)[0:6:3]) | set(sorted(co_handled)[1:6:3])
    callers = {
        "supervisor": (sign_in(client, empty_db, Role.supervisor), lambda r: True),
        "town dispatcher": (sign_in(client, empty_db, Role.dispatcher, "d-town", region_code=TOWN), lambda r: True),
        "west dispatcher": (sign_in(client, empty_db, Role.dispatcher, "d-west", region_code=WEST),
                            lambda r: r.community == WEST),
        "east grid worker": (sign_in(client, empty_db, Role.grid_worker, "w-east", region_code=EAST),
                             lambda r: r.community == EAST),
        "police handler": (sign_in(client, empty_db, Role.handler, "h-police", department_code="police"),
                           lambda r: r.department == "police" or r.id in live),
    }  # fmt: skip
    for who, (auth, in_scope) in callers.items():
        for by in ("town", "community", "month", "grid"):
            for params, in_window in WINDOWS:
                for region, in_region in REGIONS:
                    asked = {"by": by, **params, **({"region": region} if region else {})}
                    body = client.get("/v1/stats/counts", params=asked, headers=auth).json()
                    expected = expected_counts(by, in_scope, in_window, in_region)
                    assert {r["key"]: r["events"] for r in body["rows"]} == expected, (who, asked)
                    assert body["total"] == sum(expected.values())


def test_the_groups_serve_only_what_they_can_answer_exactly(client: TestClient, empty_db: Engine):
    april, may = datetime(2026, 4, 1, tzinfo=LOCAL), datetime(2026, 5, 1, tzinfo=LOCAL)
    served = [("town", Scope(everything=True), None, None, None), ("month", Scope(region_prefix="320682100"),
              april, may, TOWN), ("community", Scope(region_prefix=WEST), None, may, WEST),
              ("month", Scope(department_code="police"), april, None, None)]  # fmt: skip
    not_served = [("grid", Scope(everything=True), None, None, None),  # no grid in the groups
                  ("town", Scope(reporter_username="citizen"), None, None, None),  # one's own reports
                  ("town", Scope(region_prefix=GRIDS[0]), None, None, None),  # a grid's scope
                  ("town", Scope(everything=True), datetime(2026, 4, 1, 8, tzinfo=LOCAL), None, None),
                  ("month", Scope(everything=True), None, None, GRIDS[0])]  # fmt: skip
    with transaction(empty_db) as session:
        for by, scope, since, until, region in served + not_served:
            region_sql = Condition("e.town_code = :region", {"region": region}) if region == TOWN else Condition(
                "e.community_code = :region", {"region": region}) if region else Condition()  # fmt: skip
            rows = monthly_counts(session, by, scope, since, until, region_sql, region)
            assert (rows is not None) == ((by, scope, since, until, region) in served), (by, scope, region)
