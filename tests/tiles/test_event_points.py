"""Low-zoom events tiles counted in memory hold exactly what PostGIS counts row by row.

On the demo city's 50,000 events, for tiles from the whole city (z8) down to z13, with every kind
of scope and filter, the tile built from the in-memory columns and the tile built by the SQL
aggregate (``events_in_memory=False``) decode to the same cells: position, count and warnings.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from geoservice.api.tiles import tile_filters
from geoservice.events.deadlines import warning_sql
from geoservice.events.queries import Scope, scope_sql
from geoservice.infra.database import transaction
from geoservice.settings import EventSettings
from layers.models import Role
from tests.geoservice import events_city
from tests.geoservice.signin import sign_in
from tests.tiles.helpers import decode, tile_of, tiles_client
from tiles.address import TileAddress
from tiles.catalog import LAYERS, TileFilters, TileScope
from tiles.event_points import EventPoints, EventScope, Thresholds
from tiles.service import Rules, TileService
from tiles.settings import TileSettings

OPEN = ("accepted", "dispatched", "handling", "handled", "reopened", "reported", "returned")
CENTRE = (120.57, 32.25)
SETTINGS = EventSettings()
RULES = Rules(4549, {"village_room": 100.0, "central_room": 1000.0, "station": 10000.0}, warning_sql(SETTINGS),
              Thresholds(SETTINGS.warning_blue, SETTINGS.warning_yellow, SETTINGS.warning_red))  # fmt: skip


def tile_scope(scope: Scope) -> TileScope:
    where, params = scope_sql(scope, "e")
    counted = EventScope(scope.everything, scope.region_prefix, scope.department_code, scope.reporter_username)
    return TileScope(repr(scope), None, None, where, tuple(sorted(params.items())), counted)


def cells(body: bytes) -> list[tuple]:
    found = decode(body).get("events", {}).get("features", [])
    return sorted((tuple(f["geometry"]["coordinates"]), f["properties"]["count"], f["properties"]["red"],
                   f["properties"]["yellow"], f["properties"]["blue"]) for f in found)  # fmt: skip


@pytest.fixture(scope="module")
def services(demo_db: Engine) -> tuple[TileService, TileService]:
    memory = TileService(demo_db, TileSettings(cache_mb=0, version_check_s=0))
    rows = TileService(demo_db, TileSettings(cache_mb=0, version_check_s=0, events_in_memory=False))
    return memory, rows


SCOPES = {
    "everything": Scope(everything=True),
    "a town's dispatcher": Scope(region_prefix="320682001"),
    "a department's handler": Scope(department_code="police"),
    "a member of the public": Scope(reporter_username="nobody-in-the-demo"),
    "a planner": Scope(),
}


def asked(**given: object) -> TileFilters:
    """Filters as a request's query string gives them (the route's own parsing and SQL)."""
    return tile_filters(LAYERS["events"], {**dict.fromkeys(("status", "warning", "category", "from", "to", "level",
                                                            "owner")),
                                           **given}, SETTINGS)  # fmt: skip


FILTERS = {
    "none": asked(),
    "open states": asked(status=",".join(OPEN)),
    "red and yellow": asked(warning="red,yellow"),
    "a class of categories": asked(category="city_management"),
    "one category": asked(category="livelihood.elderly"),
    "one department's": asked(owner="department:police"),
    "reported in a window": asked(**{"from": datetime(2026, 3, 1, tzinfo=UTC), "to": datetime(2026, 9, 1, tzinfo=UTC)}),
}


@pytest.mark.parametrize("z", [8, 10, 11, 13])
@pytest.mark.parametrize("scope", SCOPES)
def test_counts_in_memory_equal_the_sql_aggregate(services, z: int, scope: str):
    memory, rows = services
    x, y = tile_of(*CENTRE, z)
    now = datetime.now(UTC)
    checked = 0
    for filters in FILTERS.values():
        for dx in (0, 1):  # the centre tile and its eastern neighbour, whose buffer cuts through the city
            address = TileAddress(z, x + dx, y)
            args = (LAYERS["events"], address, tile_scope(SCOPES[scope]), filters, RULES)
            expected = cells(rows.build(*args, now=now))
            assert cells(memory.build(*args, now=now)) == expected
            checked += sum(c[1] for c in expected)
    if scope == "everything":
        assert checked > 1_000  # the comparison covered events, not empty tiles
    if scope in ("a member of the public", "a planner"):
        assert checked == 0


def test_the_whole_city_adds_up_with_its_warnings(services, demo_db: Engine):
    memory, _ = services
    x, y = tile_of(*CENTRE, 8)
    body = memory.build(LAYERS["events"], TileAddress(8, x, y), tile_scope(Scope(everything=True)), TileFilters(), RULES)
    with demo_db.connect() as conn:
        total = conn.exec_driver_sql("SELECT count(*) FROM events").scalar()
    found = cells(body)
    assert sum(c[1] for c in found) == total
    assert sum(c[2] + c[3] + c[4] for c in found) > 0  # the demo has open events with warnings


@pytest.mark.parametrize("reload_s, seen", [(0.2, True), (3600.0, False)])
def test_a_change_the_versions_miss_is_read_at_the_next_whole_reload(empty_db: Engine, reload_s: float, seen: bool):
    """The safety net for a transaction committing too late for the incremental read: every ``reload_s``."""
    events_city.load_events_city(empty_db)
    with tiles_client(empty_db) as client:
        admin = sign_in(client, empty_db, Role.admin)
        lon, lat = events_city.centre(0)
        body = {"lon": lon, "lat": lat, "category": "city_management.garbage", "description": "垃圾"}
        event = client.post("/v1/events", json=body, headers=admin).json()
    points = EventPoints(empty_db, reload_s=reload_s)
    accepted = points.statuses.encode(["accepted"])[0]
    first = points.columns("v1")
    assert first.status[first.id == event["id"]][0] != accepted
    with transaction(empty_db) as session:  # no log row, no new id: invisible to the incremental read
        session.execute(text("UPDATE events SET status = 'accepted' WHERE id = :id"), {"id": event["id"]})
    time.sleep(0.3)
    points.columns("v1")  # the same version: nothing read now, but a reload starts when one is due
    for _ in range(100):
        now = points.columns("v1")
        if not points._reloading and now is not first:
            break
        time.sleep(0.05)
    assert bool(now.status[now.id == event["id"]][0] == accepted) == seen


def test_a_scope_counts_the_events_reported_after_its_first_tile(empty_db: Engine):
    """Which events a scope keeps is worked out once per state of the events: a new report is in the next tile."""
    events_city.load_events_city(empty_db)
    memory = TileService(empty_db, TileSettings(cache_mb=0, version_check_s=0))
    rows = TileService(empty_db, TileSettings(cache_mb=0, version_check_s=0, events_in_memory=False))
    town_a = tile_scope(Scope(region_prefix=events_city.TOWN_A[:9]))
    address = TileAddress(10, *tile_of(*events_city.centre(0), 10))

    def counted() -> tuple[int, int]:
        """Events and red warnings in the tile, a year on (when every clock has run out)."""
        now = datetime.now(UTC) + timedelta(days=365)
        found = cells(memory.build(LAYERS["events"], address, town_a, TileFilters(), RULES, now=now))
        assert found == cells(rows.build(LAYERS["events"], address, town_a, TileFilters(), RULES, now=now))
        return sum(c[1] for c in found), sum(c[2] for c in found)

    with tiles_client(empty_db) as client:
        admin = sign_in(client, empty_db, Role.admin)

        def report(grid: int) -> None:
            lon, lat = events_city.centre(grid)
            body = {"lon": lon, "lat": lat, "category": "city_management.garbage", "description": f"垃圾 {grid}"}
            assert client.post("/v1/events", json=body, headers=admin).status_code == 201

        report(0)
        report(2)  # town B's: never in town A's tiles
        assert counted() == (1, 1)
        report(1)
        assert counted() == (2, 2)
