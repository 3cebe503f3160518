"""Cached tiles answered before routing (``geoservice.api.tile_hits``): the route's answer, the route's rules.

A spy on the middleware records which answers it gave itself, so each test knows which path
answered: the route (a miss, or anything it declined) or the middleware (a hit).
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from geoservice.api import tile_hits
from geoservice.api.tiles import service_and_rules, tile_scope
from geoservice.auth.tokens import issue_token
from geoservice.auth.users import set_disabled
from geoservice.infra.database import transaction
from layers.models import Role
from tests.geoservice import events_city
from tests.geoservice.events_city import AUTH, GRIDS, TOWN_A, events_client
from tests.geoservice.signin import sign_in
from tests.geoservice.test_principal_cache import wait_for
from tests.tiles.helpers import features, tile_of
from tests.tiles.test_tiles_api import CITY_CENTRE, CITY_Z, report, tile_url
from tiles.address import TileAddress
from tiles.catalog import TileFilters
from tiles.service import TileService
from tiles.settings import TileSettings

GRIDS_TILE = tile_url("grids", *CITY_CENTRE, CITY_Z)
EVENTS_TILE = tile_url("events", *CITY_CENTRE, CITY_Z)
FILTERED = {"status": "reported,accepted", "from": "2026-01-01T00:00:00+08:00"}


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    """The events city's app; the data versions are trusted for a minute, as a server would."""
    events_city.load_events_city(empty_db)
    with events_client(empty_db) as client:
        client.app.state.tile_service = TileService(empty_db, TileSettings(version_check_s=60))
        wait_for(lambda: client.app.state.principals.trusted, "the users watcher to listen")
        yield client


@pytest.fixture
def admin(client: TestClient, empty_db: Engine) -> dict[str, str]:
    return sign_in(client, empty_db, Role.admin)


@pytest.fixture
def early(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The status of every answer the middleware gave without the route, in order."""
    given: list[int] = []
    real = tile_hits._hit

    def spy(scope, match):  # noqa: ANN001, ANN202
        response = real(scope, match)
        if response is not None:
            given.append(response.status_code)
        return response

    monkeypatch.setattr(tile_hits, "_hit", spy)
    return given


def same_answer(route, middleware) -> None:  # noqa: ANN001
    """The same status, bytes and headers, but for the two that differ by design."""
    assert middleware.status_code == route.status_code and middleware.content == route.content
    differ = {"x-tile-cache", "x-request-id"}
    assert {k: v for k, v in middleware.headers.items() if k not in differ} == {
        k: v for k, v in route.headers.items() if k not in differ}  # fmt: skip
    assert (route.headers["x-tile-cache"], middleware.headers["x-tile-cache"]) == ("miss", "hit")


def test_a_cached_tile_is_the_routes_answer_given_early(client: TestClient, admin: dict, early: list[int]):
    report(client, admin, 0)
    for url, params in [(GRIDS_TILE, {}), (EVENTS_TILE, FILTERED), (tile_url("events", *CITY_CENTRE, 9), FILTERED)]:
        built = client.get(url, params=params, headers=admin)
        assert built.status_code == 200 and early == []
        again = client.get(url, params=params, headers=admin)
        assert early == [200]
        same_answer(built, again)
        held = client.get(url, params=params, headers={**admin, "If-None-Match": built.headers["etag"]})
        assert held.status_code == 304 and held.content == b"" and early == [200, 304]
        early.clear()
    outside = "/tiles/grids/14/0/0.mvt"
    same_answer(client.get(outside, headers=admin), client.get(outside, headers=admin))
    assert early == [204]
    # Counted and logged under the route, like any request.
    metrics = client.get("/metrics").text
    assert 'route="/tiles/{layer}/{z}/{x}/{y}.mvt",status="200"' in metrics
    assert 'route="unmatched"' not in metrics


def test_the_callers_scope_holds_for_early_answers(client: TestClient, empty_db: Engine, admin: dict,
                                                   early: list[int]):  # fmt: skip
    assert len(features(client.get(GRIDS_TILE, headers=admin), "grids")) == len(GRIDS)
    dispatcher = sign_in(client, empty_db, Role.dispatcher, "disp-a", region_code=TOWN_A)
    for _ in range(2):  # built for their scope, then from the cache: never the admin's tile
        grids = features(client.get(GRIDS_TILE, headers=dispatcher), "grids")
        assert sorted(f["properties"]["code"] for f in grids) == GRIDS[:2]
    assert early == [200]


def test_what_the_route_would_refuse_is_left_to_it(client: TestClient, empty_db: Engine, admin: dict,
                                                    early: list[int]):  # fmt: skip
    client.get(GRIDS_TILE, headers=admin)
    client.get(EVENTS_TILE, headers=admin)
    assert client.get(GRIDS_TILE, headers=admin).status_code == 200 and early == [200]
    early.clear()
    expired, _ = issue_token("admin", AUTH, now=datetime.now(UTC) - timedelta(days=30))
    citizen = sign_in(client, empty_db, Role.public, "citizen")
    refused = [
        (GRIDS_TILE, {}, {}, 401),
        (GRIDS_TILE, {}, {"Authorization": f"Bearer {expired}"}, 401),
        (GRIDS_TILE, {}, {"Authorization": "Bearer not-a-token"}, 401),
        (GRIDS_TILE, {}, citizen, 403),
        (GRIDS_TILE, {"status": "reported"}, admin, 422),
        (EVENTS_TILE, {"from": "2026-01-01T00:00:00"}, admin, 422),
        (EVENTS_TILE, {"from": "yesterday"}, admin, 422),
        (EVENTS_TILE, {"warning": "x" * 61}, admin, 422),
        (EVENTS_TILE.replace(f"/{CITY_Z}/", "/25/"), {}, admin, 422),
    ]
    for url, params, headers, status in refused:
        response = client.get(url, params=params, headers=headers)
        assert response.status_code == status, (url, params, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert early == []
    # Even a tile cached for the citizen's own scope (the route never builds one) is not handed out.
    principal = client.app.state.principals.cached("citizen")  # known since the 403 above
    assert principal.role == Role.public
    service, rules = service_and_rules(client.app)
    address = TileAddress(CITY_Z, *tile_of(*CITY_CENTRE, CITY_Z))
    assert service.tile("grids", address, tile_scope(principal), TileFilters(), rules).body
    assert client.get(GRIDS_TILE, headers=citizen).status_code == 403 and early == []


def test_a_disabled_account_gets_no_cached_tile(client: TestClient, empty_db: Engine, early: list[int]):
    dispatcher = sign_in(client, empty_db, Role.dispatcher, "disp-a", region_code=TOWN_A)
    assert [client.get(GRIDS_TILE, headers=dispatcher).status_code for _ in range(2)] == [200, 200]
    assert early == [200]
    with transaction(empty_db) as session:
        set_disabled(session, "disp-a")
    took = wait_for(lambda: client.get(GRIDS_TILE, headers=dispatcher).status_code == 401, "the account to stop")
    assert took < 1.0
