"""Cold tiles on the tile service's own connections: one statement each, no transaction left open.

The tile path no longer pings or opens a transaction per tile (``tiles.connections``); these tests
check what that must not cost: a connection the database dropped is replaced without the user
seeing an error, a failed build still gets the route's problem answer, and a database error
still comes out as the one the app knows how to answer.
"""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import DataError

from geoservice.api.tiles import service_and_rules
from layers.models import Role
from tests.geoservice import events_city
from tests.geoservice.events_city import GRIDS, events_client
from tests.geoservice.signin import sign_in
from tests.geoservice.test_principal_cache import wait_for
from tests.tiles.helpers import features
from tests.tiles.test_tiles_api import CITY_CENTRE, CITY_Z, tile_url
from tiles.connections import TileConnections
from tiles.service import TileService
from tiles.settings import TileSettings

GRIDS_TILE = tile_url("grids", *CITY_CENTRE, CITY_Z)
TILE_BACKENDS = """
SELECT pid, state FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'WITH b AS%'
"""


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    """The events city's app, building every tile (no tile cache), versions trusted for a minute."""
    events_city.load_events_city(empty_db)
    with events_client(empty_db) as client:
        client.app.state.tile_service = TileService(empty_db, TileSettings(cache_mb=0, version_check_s=60))
        wait_for(lambda: client.app.state.principals.trusted, "the users watcher to listen")
        yield client


@pytest.fixture
def admin(client: TestClient, empty_db: Engine) -> dict[str, str]:
    return sign_in(client, empty_db, Role.admin)


def engine_statements(engine: Engine) -> list[str]:
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, statement, *_: seen.append(statement))
    return seen


def test_a_cold_tile_is_built_outside_the_pool_and_leaves_no_transaction_open(
    client: TestClient, empty_db: Engine, admin: dict
):
    first = client.get(GRIDS_TILE, headers=admin)  # reads the versions and the extent, once
    assert first.headers["x-tile-cache"] == "miss"
    seen = engine_statements(empty_db)
    for _ in range(3):
        again = client.get(GRIDS_TILE, headers=admin)
        assert again.headers["x-tile-cache"] == "miss" and again.content == first.content
    assert not [s for s in seen if "ST_AsMVT" in s]  # built on the tile connections, not the engine's pool
    with empty_db.connect() as conn:
        backends = conn.execute(text(TILE_BACKENDS)).all()
    assert backends and {state for _, state in backends} == {"idle"}  # autocommit: not "idle in transaction"


def test_a_tile_connection_the_database_dropped_is_replaced_unseen(client: TestClient, empty_db: Engine, admin: dict):
    before = client.get(GRIDS_TILE, headers=admin)
    assert sorted(f["properties"]["code"] for f in features(before, "grids")) == sorted(GRIDS)
    with empty_db.connect() as conn:  # what a database restart does to them
        killed = conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM ({TILE_BACKENDS}) t")).all()
    assert killed
    after = client.get(GRIDS_TILE, headers=admin)
    assert after.status_code == 200 and after.content == before.content


def test_a_tile_that_cannot_be_built_gets_the_routes_problem(empty_db: Engine):
    with events_client(empty_db) as client:  # nothing loaded: no metric CRS for the tiles' rules
        admin = sign_in(client, empty_db, Role.admin)
        wait_for(lambda: client.app.state.principals.trusted, "the users watcher to listen")
        assert client.get("/v1/auth/me", headers=admin).status_code == 200  # a caller the tile fast path knows
        response = client.get("/tiles/grids/12/3419/1661.mvt", headers=admin)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "No data loaded"


def test_database_errors_come_out_as_sqlalchemys_and_the_connection_stays_usable(client: TestClient):
    service, _ = service_and_rules(client.app)
    connections = TileConnections(service.engine, keep=1)
    try:
        assert connections.scalar("SELECT :a + 1", {"a": 41}) == 42
        with pytest.raises(DataError):
            connections.scalar("SELECT 1 / :zero", {"zero": 0})
        assert len(connections) == 1  # the error ended the statement, not the connection
        assert connections.scalar("SELECT 'a:b' || CAST(:c AS text)", {"c": "d"}) == "a:bd"
        pid = connections.scalar("SELECT pg_backend_pid()", {})
        with service.engine.connect() as conn:  # the database drops it while it idles: the next query reconnects
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        assert connections.scalar("SELECT pg_backend_pid()", {}) != pid
    finally:
        connections.close()
    assert len(connections) == 0


def test_the_apps_end_closes_its_tile_connections(empty_db: Engine):
    events_city.load_events_city(empty_db)

    def tile_backends() -> list:
        with empty_db.connect() as conn:
            return conn.execute(text(TILE_BACKENDS)).all()

    with events_client(empty_db) as client:
        admin = sign_in(client, empty_db, Role.admin)
        assert client.get(GRIDS_TILE, headers=admin).status_code == 200
        assert tile_backends()
    wait_for(lambda: not tile_backends(), "the tile connections to close with the app")
