"""``GET /v1/locate`` answered before routing (``geoservice.api.locate_hits``): the route's answer, the route's rules.

A spy on the middleware records the answers it gave itself, so each test knows which path answered.
The route is made to answer the same point by writing a number the middleware leaves to it
(``1.2050000000000001e2`` is the float ``120.50000000000001`` to pydantic too).
"""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from geoservice.api import locate_hits
from geoservice.app import create_app
from geoservice.settings import OperationsSettings, RoutingSettings
from layers.crs import wgs84_to_gcj02
from layers.models import Role
from tests.etl.tiny_city import EAST, X0, Y0, D
from tests.geoservice.signin import sign_in
from tests.geoservice.test_locate_api import load_tiny_city

INSIDE = {"lon": X0 + 0.5 * D, "lat": Y0 + 0.5 * D}


def make_client(engine: Engine, public_rate: str = "100000/minute") -> TestClient:
    app = create_app(engine=engine, routing=RoutingSettings(version_check_s=0.2),
                     operations=OperationsSettings(public_rate=public_rate))  # fmt: skip
    return TestClient(app)


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    load_tiny_city(empty_db, at="2026-01-01T00:00:00+08:00")
    with make_client(empty_db) as client:
        yield client


@pytest.fixture
def early(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The status of every answer the middleware gave without the route, in order."""
    given: list[int] = []
    real = locate_hits._answer

    def spy(scope):  # noqa: ANN001, ANN202
        response = real(scope)
        if response is not None:
            given.append(response.status_code)
        return response

    monkeypatch.setattr(locate_hits, "_answer", spy)
    return given


def routed(params: dict) -> dict:
    """The same point written so that only the route takes it."""
    return {k: (f"{v:.16e}" if isinstance(v, float) else v) for k, v in params.items()}


def same_answer(route, middleware) -> None:  # noqa: ANN001
    assert middleware.status_code == route.status_code == 200 and middleware.content == route.content
    differ = {"x-request-id"}
    assert {k: v for k, v in middleware.headers.items() if k not in differ} == {
        k: v for k, v in route.headers.items() if k not in differ}  # fmt: skip


def test_the_plain_locate_is_the_routes_answer_given_early(client: TestClient, empty_db: Engine, early: list[int]):
    staff = sign_in(client, empty_db, Role.dispatcher)
    citizen = sign_in(client, empty_db, Role.public, "citizen")
    gcj = dict(zip(("lon", "lat"), map(float, wgs84_to_gcj02(X0 + 2.8 * D, Y0 + 0.5 * D)), strict=True))
    for who, headers in [("anonymous", {}), ("citizen", citizen), ("staff", staff)]:
        for params in (INSIDE, {**gcj, "crs": "gcj02"}):
            by_route = client.get("/v1/locate", params=routed(params), headers=headers)
            assert early == [], who
            by_middleware = client.get("/v1/locate", params=params, headers=headers)
            assert early == [200], who
            same_answer(by_route, by_middleware)
            early.clear()
        body = by_middleware.json()
        assert body["grid"]["code"] == EAST + "001"  # the GCJ-02 point, converted before locating
        assert ("workers" in body["grid"]) is (who == "staff"), who  # the team for staff only, as the route


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({**INSIDE, "at": "2026-06-01T00:00:00+08:00"}, 200),  # a past instant: the route's thread
        ({**INSIDE, "at": "2026-06-01T00:00:00"}, 422),
        ({**INSIDE, "zoom": "3"}, 422),  # unknown parameter
        ({"lon": [0.0, INSIDE["lon"]], "lat": INSIDE["lat"]}, 200),  # repeated: the route takes the last
        ({"lon": 200.0, "lat": 32.0}, 422),
        ({"lon": "east", "lat": 32.0}, 422),
        ({**INSIDE, "crs": "mars"}, 422),
        ({**INSIDE, "crs": "wgs84\x01"}, 422),  # a control character
        ({"lon": X0 + 4 * D + 0.002, "lat": INSIDE["lat"]}, 404),  # outside every grid
        ({"lat": INSIDE["lat"]}, 422),
    ],
)
def test_anything_else_is_left_to_the_route(client: TestClient, early: list[int], params: dict, status: int):
    response = client.get("/v1/locate", params=params)
    assert response.status_code == status, response.text
    assert early == []


def test_an_unknown_or_bad_token_is_the_routes_to_judge(client: TestClient, early: list[int]):
    refused = client.get("/v1/locate", params=INSIDE, headers={"Authorization": "Bearer not-a-token"})
    assert refused.status_code == 401 and early == []  # never taken for the anonymous public


def test_the_public_rate_limit_counts_early_answers_once(empty_db: Engine, early: list[int]):
    load_tiny_city(empty_db, at="2026-01-01T00:00:00+08:00")
    with make_client(empty_db, public_rate="3/minute") as client:
        staff = sign_in(client, empty_db, Role.dispatcher)  # a sign-in counts for its address too: 2 left
        answers = [client.get("/v1/locate", params=INSIDE).status_code for _ in range(3)]
        assert answers == [200, 200, 429] and early == [200, 200]
        assert client.get("/v1/locate", params=INSIDE).status_code == 429  # a refusal took nothing, gave nothing
        assert [client.get("/v1/locate", params=INSIDE, headers=staff).status_code for _ in range(3)] == [200] * 3
