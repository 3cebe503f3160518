"""The demo city, loaded through the same validation as any import.

如皋市's real boundary is cut into towns, communities and grids, with posts, key places, reference
data, a year of events and a population grid (people per 100 m cell, for coverage reports).

Loading is one transaction, so an interrupted demo leaves nothing behind, and it is skipped when
the demo version is already there, so a second start takes seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import geopandas as gpd
import shapely
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from etl.demo import DemoCity, build_demo_city
from etl.load import copy_rows, import_frame
from etl.reference import load_reference_data
from geoservice.auth.users import add_user
from geoservice.boundaries.publish import publish
from geoservice.boundaries.settings import BoundarySettings
from geoservice.boundaries.versions import current_version_id
from geoservice.infra.database import transaction
from geoservice.routing.bulk_events import assign_departments, assign_places
from geoservice.routing.loader import load_router
from geoservice.settings import RoutingSettings
from layers.crs import geometries_to_wgs84, parse_crs, remember_metric_epsg
from layers.models import Role

DEMO_BOUNDARY = Path(__file__).parents[2] / "etl" / "data" / "320682.geojson"
DEMO_VERSION = "demo"


@dataclass(frozen=True)
class DemoUser:
    """One account per role, so every screen can be tried; printed by ``geoservice demo``."""

    username: str
    password: str
    role: Role
    region_code: str | None = None
    department_code: str | None = None


def demo_users(adcode: str = "320682") -> tuple[DemoUser, ...]:
    """The demo's accounts; the scoped ones see the whole city, or its first street's first community."""
    return (
        DemoUser("admin", "admin-demo-2026", Role.admin),
        DemoUser("planner", "planner-demo-2026", Role.planner),
        DemoUser("dispatcher", "dispatcher-demo-2026", Role.dispatcher, region_code=f"{adcode}000000"),
        DemoUser("handler", "handler-demo-2026", Role.handler, department_code="police"),
        DemoUser("gridworker", "gridworker-demo-2026", Role.grid_worker, region_code=f"{adcode}001001"),
        DemoUser("supervisor", "supervisor-demo-2026", Role.supervisor),
        DemoUser("citizen", "citizen-demo-2026", Role.public),
    )


@dataclass(frozen=True)
class DemoOptions:
    """Which boundary and how much of everything; the defaults are the documented demo city."""

    boundary: Path = DEMO_BOUNDARY
    boundary_crs: str = "gcj02"
    adcode: str = "320682"
    seed: int = 320682
    n_grids: int = 1500
    n_communities: int = 300
    n_towns: int = 14
    n_posts: int = 400
    n_places: int = 2000
    n_events: int = 50_000


def demo_loaded(engine: Engine) -> bool:
    """Whether the demo version is already in this database."""
    with engine.connect() as conn:
        return bool(conn.execute(text("SELECT 1 FROM boundary_versions WHERE name = :n"), {"n": DEMO_VERSION}).first())


def load_demo(
    engine: Engine,
    options: DemoOptions = DemoOptions(),
    step: Callable[[str], None] = lambda _: None,
    *,
    routing: RoutingSettings,
    boundaries: BoundarySettings,
) -> dict[str, int]:
    """Build the city and load every layer in one transaction; return the row counts."""
    step("building the city")
    city = build_demo_city(
        read_boundary(options.boundary, options.boundary_crs),
        seed=options.seed, adcode=options.adcode, n_towns=options.n_towns,
        n_communities=options.n_communities, n_grids=options.n_grids, n_posts=options.n_posts,
        n_places=options.n_places, n_events=options.n_events,
    )  # fmt: skip
    counts: dict[str, int] = {}
    with transaction(engine) as session:
        remember_metric_epsg(session, city.metric_epsg)
        step("loading reference data")
        counts.update(load_reference_data(session))
        for layer in ("regions", "grids", "posts", "station_areas", "places", "events"):
            step(f"loading {layer}")
            report = import_frame(session, layer, _frame(city, layer), version=DEMO_VERSION, source=f"demo {layer}")
            counts[layer] = report.count
            if layer == "grids":
                publish(session, DEMO_VERSION, _effective_from(city), routing=routing, boundaries=boundaries)
        step("loading population")
        counts["population"] = _load_population(session, city.population)
        step("creating demo users")
        for user in demo_users(options.adcode):
            add_user(session, user.username, user.password, user.role,
                     region_code=user.region_code, department_code=user.department_code)  # fmt: skip
        step("routing events")
        assign_places(session)
        assign_departments(session, load_router(session, current_version_id(session), routing))
    return counts


def _load_population(session: Session, frame: gpd.GeoDataFrame) -> int:
    """Population cells as they are: no import contract covers them (a census grid has no codes)."""
    geoms = shapely.to_wkb(shapely.set_srid(frame.geometry.values, 4326), hex=True, include_srid=True)
    copy_rows(session, "population", ["count", "geom"], zip(frame["count"].tolist(), geoms, strict=True))
    return len(frame)


def read_boundary(path: Path, crs: str) -> shapely.MultiPolygon | shapely.Polygon:
    """A county boundary file (bare GeoJSON geometry or a feature collection) as WGS84."""
    raw = json.loads(Path(path).read_text())
    if raw.get("type") in ("Polygon", "MultiPolygon"):
        geom = shapely.geometry.shape(raw)
    else:
        geom = shapely.union_all(gpd.GeoDataFrame.from_features(raw).geometry.values)
    return geometries_to_wgs84([geom], parse_crs(crs))[0]


def _frame(city: DemoCity, layer: str) -> gpd.GeoDataFrame:
    frame = getattr(city, layer).copy()
    if layer == "events":
        frame["occurred_at"] = [t.isoformat() for t in frame["occurred_at"]]
        frame["id"] = frame["id"].astype(str)
    return frame


def _effective_from(city: DemoCity) -> datetime:
    """The demo boundaries take effect before the oldest historic event, so every event has a grid."""
    oldest = city.events["occurred_at"].min().to_pydatetime()
    return oldest.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
