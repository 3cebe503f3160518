"""A tiny hand-made city for import tests: 1 city, 1 town, 2 communities, 4 square grids.

Squares of 0.01° near 如皋 share their edges exactly, so the coverage is valid by construction and
each test breaks exactly one thing.
"""

from pathlib import Path

import geopandas as gpd
from shapely import MultiPolygon, Point, box

X0, Y0, D = 120.50, 32.30, 0.01
CITY = "320682000000"
TOWN = "320682100000"
WEST, EAST = "320682100200", "320682100201"


def square(col: int, row: int = 0) -> MultiPolygon:
    return MultiPolygon([box(X0 + col * D, Y0 + row * D, X0 + (col + 1) * D, Y0 + (row + 1) * D)])


def regions() -> gpd.GeoDataFrame:
    rows = [
        (CITY, "演示市", "city", "", box(X0, Y0, X0 + 4 * D, Y0 + D)),
        (TOWN, "演示镇", "town", CITY, box(X0, Y0, X0 + 4 * D, Y0 + D)),
        (WEST, "西村", "community", TOWN, box(X0, Y0, X0 + 2 * D, Y0 + D)),
        (EAST, "东村", "community", TOWN, box(X0 + 2 * D, Y0, X0 + 4 * D, Y0 + D)),
    ]
    return gpd.GeoDataFrame(
        [r[:4] for r in rows],
        columns=["code", "name", "level", "parent_code"],
        geometry=[MultiPolygon([r[4]]) for r in rows],
        crs=4326,
    )


def grids() -> gpd.GeoDataFrame:
    rows = [
        (WEST + "001", "西村第1网格", WEST, "张三;李四", "王警官", square(0)),
        (WEST + "002", "西村第2网格", WEST, "赵五", "王警官", square(1)),
        (EAST + "001", "东村第1网格", EAST, "钱六", "孙警官", square(2)),
        (EAST + "002", "东村第2网格", EAST, "", "", square(3)),
    ]
    return gpd.GeoDataFrame(
        [r[:5] for r in rows],
        columns=["code", "name", "community_code", "workers", "officer"],
        geometry=[r[5] for r in rows],
        crs=4326,
    )


def posts() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "code": ["PS001", "VR0001"],
            "name": ["演示派出所", "西村警务室"],
            "level": ["station", "village_room"],
        },
        geometry=[Point(X0 + 2.5 * D, Y0 + 0.5 * D), Point(X0 + 0.5 * D, Y0 + 0.5 * D)],
        crs=4326,
    )


def write(frame: gpd.GeoDataFrame, path: Path) -> Path:
    frame.to_file(path)
    return path
