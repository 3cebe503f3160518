"""A crafted city whose coverage figures are known exactly, built in metres (EPSG:4549) near 如皋.

An 8 km × 4 km rectangle: one town, a west and an east community (one grid each, 4 km × 4 km). One
post per level: a central room in the middle of the west community (its 1 km ring lies wholly
inside it), a village room in the east one, a station in the middle whose 10 km ring covers all.
People, key places and events sit at chosen distances from the posts, so every count and share is
known in advance. Edges carry a vertex every 10 m so that lon/lat storage bends nothing.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer
from sqlalchemy import Engine, text

from etl.load import import_frame
from etl.reference import load_reference_data
from geoservice.boundaries.publish import publish
from geoservice.infra.database import transaction
from layers.crs import remember_metric_epsg
from tests.settings import PUBLISHING

EPSG = 4549
X0, Y0 = 560_000.0, 3_580_000.0  # metres, near 120.6°E 32.35°N
CITY, TOWN = "320682000000", "320682100000"
WEST, EAST = "320682100201", "320682100202"
AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
RING = {"village_room": 100.0, "central_room": 1_000.0, "station": 10_000.0}
POSTS = {
    "CR0001": ("central_room", 2000, 2000),
    "VR0001": ("village_room", 6000, 2000),
    "PS001": ("station", 4000, 2000),
}
PEOPLE = [(2000, 2500, 100), (2000, 3500, 50), (6000, 2050, 30), (7000, 1000, 20)]
PLACES = [  # code, name, type, geometry (metres from the origin)
    ("KP1", "西村小学", "school", shapely.Point(2000, 2999)),
    ("KP2", "西村市场", "market", shapely.Point(2000, 900)),
    ("KP3", "西村商场", "mall", shapely.box(1900, 2900, 2100, 3100)),
    ("KP4", "东村医院", "hospital", shapely.Point(7000, 3000)),
    ("KP9", "邻县工地", "construction_site", shapely.Point(9500, 2000)),  # outside the city
]
EVENTS = [(2000, 2500, "2026-06-01T10:00:00+08:00"), (2000, 3600, "2026-07-01T10:00:00+08:00"),
          (6000, 2050, "2026-08-01T10:00:00+08:00"), (2000, 2500, "2025-06-01T10:00:00+08:00")]  # fmt: skip


def polygon_area(radius: float, sides: int = 128) -> float:
    """Area of the regular polygon that GEOS and PostGIS buffer a point into (quad_segs = sides / 4)."""
    return sides / 2 * radius**2 * math.sin(2 * math.pi / sides)


def to_lonlat(geom: shapely.Geometry) -> shapely.Geometry:
    fwd = Transformer.from_crs(EPSG, 4326, always_xy=True)
    moved = shapely.transform(
        shapely.segmentize(geom, 10.0) if not isinstance(geom, shapely.Point) else geom,
        lambda xy: np.column_stack(fwd.transform(xy[:, 0] + X0, xy[:, 1] + Y0)),
    )
    return moved


def lonlat(x: float, y: float) -> tuple[float, float]:
    point = to_lonlat(shapely.Point(x, y))
    return point.x, point.y


def _multi(geom: shapely.Geometry) -> shapely.MultiPolygon:
    return shapely.MultiPolygon([to_lonlat(geom)])


def load_coverage_city(engine: Engine, *, people: bool = True) -> None:
    west, east, whole = shapely.box(0, 0, 4000, 4000), shapely.box(4000, 0, 8000, 4000), shapely.box(0, 0, 8000, 4000)
    regions = gpd.GeoDataFrame(
        {"code": [CITY, TOWN, WEST, EAST], "name": ["演示市", "演示镇", "西村", "东村"],
         "level": ["city", "town", "community", "community"], "parent_code": ["", CITY, TOWN, TOWN]},
        geometry=[_multi(whole), _multi(whole), _multi(west), _multi(east)], crs=4326,
    )  # fmt: skip
    grids = gpd.GeoDataFrame(
        {"code": [WEST + "001", EAST + "001"], "name": ["西村第1网格", "东村第1网格"],
         "community_code": [WEST, EAST], "workers": ["张三", "李四"], "officer": ["王警官", "赵警官"]},
        geometry=[_multi(west), _multi(east)], crs=4326,
    )  # fmt: skip
    posts = gpd.GeoDataFrame(
        {"code": list(POSTS), "name": ["西村中心警务室", "东村警务室", "演示派出所"],
         "level": [v[0] for v in POSTS.values()]},
        geometry=[to_lonlat(shapely.Point(x, y)) for _, x, y in POSTS.values()], crs=4326,
    )  # fmt: skip
    places = gpd.GeoDataFrame(
        {"code": [p[0] for p in PLACES], "name": [p[1] for p in PLACES], "type": [p[2] for p in PLACES]},
        geometry=[to_lonlat(p[3]) for p in PLACES], crs=4326,
    )  # fmt: skip
    events = gpd.GeoDataFrame(
        {"category": ["public_order.fight"] * len(EVENTS), "occurred_at": [e[2] for e in EVENTS],
         "id": [str(i) for i in range(len(EVENTS))]},
        geometry=[to_lonlat(shapely.Point(e[0], e[1])) for e in EVENTS], crs=4326,
    )  # fmt: skip
    with transaction(engine) as session:
        remember_metric_epsg(session, EPSG)
        load_reference_data(session)
        import_frame(session, "regions", regions, version="v1")
        import_frame(session, "grids", grids, version="v1")
        publish(session, "v1", datetime(2020, 1, 1, tzinfo=UTC), **PUBLISHING)
        import_frame(session, "posts", posts)
        import_frame(session, "places", places)
        import_frame(session, "events", events)
        if people:
            for x, y, count in PEOPLE:
                lon, lat = lonlat(x, y)
                session.execute(
                    text("INSERT INTO population (count, geom) VALUES (:n, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
                    {"n": count, "x": lon, "y": lat},
                )
