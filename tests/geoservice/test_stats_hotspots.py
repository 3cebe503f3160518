"""Hotspots (Getis-Ord Gi*) on a crafted 8 × 8 lattice of grids with one obvious cluster."""

from collections.abc import Iterator

import geopandas as gpd
import numpy as np
import pytest
from fastapi.testclient import TestClient
from shapely import MultiPolygon, box
from sqlalchemy import Engine, text

from etl.load import import_frame
from etl.reference import load_reference_data
from geoservice.app import create_app
from geoservice.boundaries.publish import publish
from geoservice.infra.database import transaction
from layers.models import Role
from tests.geoservice.signin import sign_in
from tests.settings import PUBLISHING

N = 8
X0, Y0, D = 120.50, 32.30, 0.005
CITY, TOWN, COMMUNITY = "320682000000", "320682100000", "320682100200"
CLUSTER = {(r, c) for r in range(2, 5) for c in range(2, 5)}  # a 3 × 3 block


def code(r: int, c: int) -> str:
    return f"{COMMUNITY}{r * N + c + 1:03d}"


def counts() -> np.ndarray:
    y = np.array([[1 + (r + 2 * c) % 3 for c in range(N)] for r in range(N)], float)  # uneven background 1–3
    for r, c in CLUSTER:
        y[r, c] = 15
    return y


def textbook_gi_star(y: np.ndarray) -> np.ndarray:
    """Gi* with binary queen weights including the grid itself, from the formula."""
    x = y.ravel()
    n = len(x)
    xbar, s = x.mean(), np.sqrt((x**2).mean() - x.mean() ** 2)
    z = np.empty(n)
    for i in range(n):
        r, c = divmod(i, N)
        w = np.zeros(n)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                if 0 <= r + dr < N and 0 <= c + dc < N:
                    w[(r + dr) * N + c + dc] = 1
        wi = w.sum()
        z[i] = (w @ x - xbar * wi) / (s * np.sqrt((n * (w**2).sum() - wi**2) / (n - 1)))
    return z.reshape(N, N)


def load_lattice(engine: Engine) -> None:
    outline = box(X0, Y0 - N * D, X0 + N * D, Y0)
    regions = gpd.GeoDataFrame(
        {"code": [CITY, TOWN, COMMUNITY], "name": ["演示市", "演示镇", "格子村"], "level": ["city", "town", "community"],
         "parent_code": ["", CITY, TOWN]},
        geometry=[MultiPolygon([outline])] * 3, crs=4326,
    )  # fmt: skip
    cells = [(r, c) for r in range(N) for c in range(N)]
    grids = gpd.GeoDataFrame(
        {"code": [code(r, c) for r, c in cells], "name": [f"格{r}-{c}" for r, c in cells],
         "community_code": [COMMUNITY] * len(cells)},
        geometry=[MultiPolygon([box(X0 + c * D, Y0 - (r + 1) * D, X0 + (c + 1) * D, Y0 - r * D)]) for r, c in cells],
        crs=4326,
    )  # fmt: skip
    y = counts()
    with transaction(engine) as session:
        load_reference_data(session)
        import_frame(session, "regions", regions, version="lattice")
        import_frame(session, "grids", grids, version="lattice")
        publish(session, "lattice", **PUBLISHING)
        rows = [
            {"x": X0 + (c + 0.5) * D, "y": Y0 - (r + 0.5) * D, "g": code(r, c)}
            for r, c in cells for _ in range(int(y[r, c]))
        ]  # fmt: skip
        session.execute(
            text(
                "INSERT INTO events (geom, category_code, occurred_at, grid_code, community_code, town_code) "
                "VALUES (ST_SetSRID(ST_MakePoint(:x, :y), 4326), 'city_management.stall', now(), :g, "
                f"'{COMMUNITY}', '{TOWN}')"
            ),
            rows,
        )


@pytest.fixture
def client(empty_db: Engine) -> Iterator[TestClient]:
    load_lattice(empty_db)
    with TestClient(create_app(engine=empty_db)) as client:
        yield client


def test_the_cluster_is_the_hotspot_with_textbook_z_scores(client: TestClient, empty_db: Engine):
    auth = sign_in(client, empty_db, Role.supervisor)
    body = client.get("/v1/stats/hotspots", params={"every": "true", "seed": 11}, headers=auth).json()
    assert body["grids_analysed"] == N * N
    z = textbook_gi_star(counts())
    by_code = {row["code"]: row for row in body["rows"]}
    for r in range(N):
        for c in range(N):
            row = by_code[code(r, c)]
            assert row["z"] == pytest.approx(z[r, c], abs=1e-3)
            assert row["events"] == counts()[r, c]
            assert row["hotspot"] == (row["z"] > 0 and row["p_value"] < 0.05)
    hot = {row["code"] for row in body["rows"] if row["hotspot"]}
    assert {code(r, c) for r, c in CLUSTER} <= hot  # every grid of the block stands out …
    far = {code(r, c) for r in range(N) for c in range(N) if min(abs(r - 3), abs(c - 3)) > 2}
    assert not hot & far  # … and nothing two rings away from it does

    only_hot = client.get("/v1/stats/hotspots", params={"seed": 11}, headers=auth).json()
    assert {row["code"] for row in only_hot["rows"]} == hot and only_hot["hotspots"] == len(hot)
    assert [row["z"] for row in only_hot["rows"]] == sorted((row["z"] for row in only_hot["rows"]), reverse=True)


def test_same_seed_same_answer(client: TestClient, empty_db: Engine):
    auth = sign_in(client, empty_db, Role.supervisor)
    first = client.get("/v1/stats/hotspots", params={"every": "true", "seed": 3}, headers=auth).json()
    again = client.get("/v1/stats/hotspots", params={"every": "true", "seed": 3}, headers=auth).json()
    assert first["rows"] == again["rows"]


def test_a_scoped_dispatcher_analyses_only_their_grids(client: TestClient, empty_db: Engine):
    auth = sign_in(client, empty_db, Role.dispatcher, region_code=COMMUNITY)
    body = client.get("/v1/stats/hotspots", params={"every": "true"}, headers=auth).json()
    assert body["grids_analysed"] == N * N
    one = client.get("/v1/stats/hotspots", params={"every": "true", "region": code(3, 3)}, headers=auth).json()
    assert one["grids_analysed"] == 1 and one["hotspots"] == 0  # one grid alone has nothing to stand out from
