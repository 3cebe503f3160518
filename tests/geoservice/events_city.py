"""A small city with two towns for the event tests: town A (grids 0, 1) and town B (grids 2, 3).

Squares of 0.01° near 如皋, one row; the default categories, departments and routing rules.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import geopandas as gpd
from fastapi.testclient import TestClient
from shapely import MultiPolygon, box
from sqlalchemy import Engine

from etl.load import import_frame
from etl.reference import load_reference_data
from geoservice.app import create_app
from geoservice.boundaries.publish import publish
from geoservice.infra.database import transaction
from geoservice.settings import AuthSettings, EventSettings, RoutingSettings
from tests.etl import tiny_city
from tests.etl.tiny_city import X0, Y0, D, square
from tests.settings import PUBLISHING

CITY = "320682000000"
TOWN_A, TOWN_B = "320682100000", "320682101000"
COMMUNITY_A, COMMUNITY_B = "320682100200", "320682101200"
GRIDS = [COMMUNITY_A + "001", COMMUNITY_A + "002", COMMUNITY_B + "001", COMMUNITY_B + "002"]
AUTH = AuthSettings(secret_key="e" * 40)
EVENTS = EventSettings(event_sweep_s=0)  # tests run the sweep themselves


def regions() -> gpd.GeoDataFrame:
    rows = [
        (CITY, "演示市", "city", "", box(X0, Y0, X0 + 4 * D, Y0 + D)),
        (TOWN_A, "甲镇", "town", CITY, box(X0, Y0, X0 + 2 * D, Y0 + D)),
        (TOWN_B, "乙镇", "town", CITY, box(X0 + 2 * D, Y0, X0 + 4 * D, Y0 + D)),
        (COMMUNITY_A, "甲村", "community", TOWN_A, box(X0, Y0, X0 + 2 * D, Y0 + D)),
        (COMMUNITY_B, "乙村", "community", TOWN_B, box(X0 + 2 * D, Y0, X0 + 4 * D, Y0 + D)),
    ]
    return gpd.GeoDataFrame(
        [r[:4] for r in rows],
        columns=["code", "name", "level", "parent_code"],
        geometry=[MultiPolygon([r[4]]) for r in rows],
        crs=4326,
    )


def grids() -> gpd.GeoDataFrame:
    rows = [(code, f"网格{k + 1}", code[:12], "张三", "王警官", square(k)) for k, code in enumerate(GRIDS)]
    return gpd.GeoDataFrame(
        [r[:5] for r in rows],
        columns=["code", "name", "community_code", "workers", "officer"],
        geometry=[r[5] for r in rows],
        crs=4326,
    )


def centre(grid: int) -> tuple[float, float]:
    """The WGS84 centre of grid ``grid`` (0..3): towns A (0, 1) and B (2, 3)."""
    return X0 + (grid + 0.5) * D, Y0 + 0.5 * D


def load_events_city(engine: Engine) -> None:
    with transaction(engine) as session:
        load_reference_data(session)
        import_frame(session, "regions", regions(), version="v1")
        import_frame(session, "grids", grids(), version="v1")
        publish(session, "v1", datetime.fromisoformat("2026-01-01T00:00:00+08:00"), **PUBLISHING)
        import_frame(session, "posts", tiny_city.posts())


@contextmanager
def events_client(engine: Engine, address: str = "testclient") -> Iterator[TestClient]:
    """The real app on this city, the periodic sweep off; requests come from client ``address``."""
    app = create_app(engine=engine, auth_settings=AUTH, routing=RoutingSettings(version_check_s=0.2))
    app.state.event_settings = EVENTS
    with TestClient(app, client=(address, 50000)) as client:
        yield client


@contextmanager
def events_city_client(engine: Engine, address: str = "testclient") -> Iterator[TestClient]:
    """This city loaded into ``engine``, and the real app on it (``events_client``)."""
    load_events_city(engine)
    with events_client(engine, address) as client:
        yield client
