"""Tile arithmetic written out independently of ``tiles.address``, and a client on the events city."""

import math
from collections.abc import Iterator
from contextlib import contextmanager

import mapbox_vector_tile
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.geoservice.events_city import events_client
from tiles.service import TileService
from tiles.settings import TileSettings

R = 6378137.0
HALF = math.pi * R


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The XYZ tile holding a point (the slippy-map formula)."""
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def tile_point_to_lonlat(z: int, x: int, y: int, px: float, py: float, extent: int = 4096) -> tuple[float, float]:
    """Tile coordinates (origin top left, y down) back to degrees."""
    size = 2 * HALF / 2**z
    mx = -HALF + (x + px / extent) * size
    my = HALF - (y + py / extent) * size
    return math.degrees(mx / R), math.degrees(2 * math.atan(math.exp(my / R)) - math.pi / 2)


def decode(body: bytes) -> dict:
    return mapbox_vector_tile.decode(body, default_options={"y_coord_down": True}) if body else {}


def features(response, layer: str) -> list[dict]:
    assert response.status_code in (200, 204), response.text
    if response.status_code == 204:
        assert response.content == b""
        return []
    assert response.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    return decode(response.content).get(layer, {}).get("features", [])


@contextmanager
def tiles_client(engine: Engine, **settings: object) -> Iterator[TestClient]:
    """The events city's app; its tiles read the data versions every time, events one by one from zoom 12."""
    with events_client(engine) as client:
        use_tile_settings(client, engine, **settings)
        yield client


def use_tile_settings(client: TestClient, engine: Engine, **settings: object) -> None:
    """A fresh tile service (empty cache) with these settings over the defaults of ``tiles_client``."""
    chosen = {"version_check_s": 0, "events_cluster_until": 12, **settings}
    client.app.state.tile_service = TileService(engine, TileSettings(**chosen))
