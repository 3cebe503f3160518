"""The public rate limit shared through PostgreSQL: two apps (two workers) on one database see one budget."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geoservice.app import create_app
from geoservice.settings import OperationsSettings
from layers.models import Role
from tests.geoservice.signin import sign_in
from tests.geoservice.test_locate_api import load_tiny_city

INSIDE = {"lon": 120.515, "lat": 32.305}


def two_workers(stack: ExitStack, engine: Engine, **operations) -> tuple[TestClient, TestClient]:
    """Two app instances, as two uvicorn workers are, on the same database."""
    return tuple(  # type: ignore[return-value]
        stack.enter_context(TestClient(create_app(engine=engine, operations=OperationsSettings(**operations))))
        for _ in range(2)
    )


def test_two_workers_share_one_budget(empty_db: Engine):
    load_tiny_city(empty_db)
    with ExitStack() as stack:
        a, b = two_workers(stack, empty_db, public_rate="6/hour", rate_limit_shared=True)
        answers = [(a if k % 2 else b).get("/v1/locate", params=INSIDE).status_code for k in range(6)]
        assert answers == [200] * 6
        for worker in (a, b):
            refused = worker.get("/v1/locate", params=INSIDE)
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
            assert "at most 6 per 1 hour" in refused.json()["detail"]
        # A batch larger than what is left is refused whole and takes nothing.
        with empty_db.begin() as conn:
            conn.execute(text("DELETE FROM rate_buckets"))
        point = [INSIDE["lon"], INSIDE["lat"]]
        assert a.post("/v1/locate", json={"points": [point] * 4}).status_code == 200  # 1 + 3 points: 4 of 6
        # The request counts one (5 of 6); its 2 further points find 1 left: refused, taking nothing.
        assert b.post("/v1/locate", json={"points": [point] * 3}).status_code == 429
        assert b.get("/v1/locate", params=INSIDE).status_code == 200  # the last one was still there
        assert a.get("/v1/locate", params=INSIDE).status_code == 429
        with empty_db.begin() as conn:  # signing in counts against the address too
            conn.execute(text("DELETE FROM rate_buckets"))
        staff = sign_in(a, empty_db, Role.dispatcher)
        assert [b.get("/v1/locate", params=INSIDE, headers=staff).status_code for _ in range(3)] == [200] * 3
        with empty_db.connect() as conn:
            assert (
                conn.execute(text("SELECT relpersistence FROM pg_class WHERE relname = 'rate_buckets'")).scalar() == "u"
            )


def test_concurrent_checks_never_grant_more_than_the_budget(empty_db: Engine):
    load_tiny_city(empty_db)
    with ExitStack() as stack:
        a, b = two_workers(stack, empty_db, public_rate="20/hour", rate_limit_shared=True)
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda k: (a, b)[k % 2].get("/v1/locate", params=INSIDE).status_code, range(60)))
    assert codes.count(200) == 20 and codes.count(429) == 40


def test_per_process_buckets_when_not_shared(empty_db: Engine):
    load_tiny_city(empty_db)
    with ExitStack() as stack:
        a, b = two_workers(stack, empty_db, public_rate="3/hour", rate_limit_shared=False)
        assert [a.get("/v1/locate", params=INSIDE).status_code for _ in range(4)] == [200, 200, 200, 429]
        assert [b.get("/v1/locate", params=INSIDE).status_code for _ in range(4)] == [200, 200, 200, 429]
    with empty_db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM rate_buckets")).scalar() == 0
