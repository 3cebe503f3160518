"""The demo city: built, written as a city pack, and loaded through ``city load`` like any city.

如皋市's real boundary is cut into towns, communities and grids, with posts, key places, reference
data, a year of events (with their whole history in the event log) and a population grid (people
per 100 m cell, for coverage reports).

Loading is one transaction, so an interrupted demo leaves nothing behind, and it is skipped when
the demo version is already there, so a second start takes seconds.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import Engine, text

from etl.demo import DemoCity, build_demo_city
from geoservice.auth.passwords import hash_password
from geoservice.boundaries.settings import BoundarySettings
from geoservice.city.load import load_pack
from geoservice.city.pack import CityInfo, write_pack
from geoservice.events.levels import DEFAULT_LEVEL_HOURS
from geoservice.settings import RoutingSettings
from layers.crs import geometries_to_wgs84, parse_crs
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
    pack_dir: Path | None = None,
) -> dict[str, int]:
    """Build the city, write it as a city pack and load that through ``city load``; return the row counts.

    The pack lands in ``pack_dir`` (kept, so a city can see what a full pack looks like) or in a
    temporary directory. No loading path exists only for the demo: the same ``load_pack`` as
    ``geoservice city load`` checks and loads it, in one transaction.
    """
    step("building the city")
    city = build_demo_city(
        read_boundary(options.boundary, options.boundary_crs),
        seed=options.seed, adcode=options.adcode, n_towns=options.n_towns,
        n_communities=options.n_communities, n_grids=options.n_grids, n_posts=options.n_posts,
        n_places=options.n_places, n_events=options.n_events,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="demo-pack-") as scratch:
        directory = Path(pack_dir or scratch)
        step(f"writing the demo pack to {directory}")
        write_demo_pack(city, directory, options.adcode)
        report = load_pack(
            engine, directory, routing=routing, boundaries=boundaries, step=step,
            passwords_file=Path(scratch) / "one-time-passwords.tsv", effective_from=_effective_from(city),
        )  # fmt: skip
    return report.counts


def write_demo_pack(city: DemoCity, directory: Path, adcode: str) -> None:
    """The demo city as a city pack: GeoPackages for the layers, CSVs for the tables, city.toml."""
    users = pd.DataFrame(
        [
            {"username": u.username, "name": u.username, "role": u.role.value, "region_code": u.region_code or "",
             "department_code": u.department_code or "", "password_hash": hash_password(u.password),
             "must_change_password": "false"}
            for u in demo_users(adcode)
        ]
    )  # fmt: skip
    layers = ("regions", "grids", "posts", "station_areas", "places", "population", "events")
    ladder = {level: (h.accept_hours, h.handle_hours) for level, h in DEFAULT_LEVEL_HOURS.items()}
    write_pack(directory, CityInfo(f"demo {adcode}", adcode, version=DEMO_VERSION, escalation=ladder),
               {layer: getattr(city, layer) for layer in layers}, {"users": users})  # fmt: skip


def read_boundary(path: Path, crs: str) -> shapely.MultiPolygon | shapely.Polygon:
    """A county boundary file (bare GeoJSON geometry or a feature collection) as WGS84."""
    raw = json.loads(Path(path).read_text())
    if raw.get("type") in ("Polygon", "MultiPolygon"):
        geom = shapely.geometry.shape(raw)
    else:
        geom = shapely.union_all(gpd.GeoDataFrame.from_features(raw).geometry.values)
    return geometries_to_wgs84([geom], parse_crs(crs))[0]


def _effective_from(city: DemoCity) -> datetime:
    """The demo boundaries take effect before the oldest historic event, so every event has a grid."""
    oldest = city.events["occurred_at"].min().to_pydatetime()
    return oldest.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
