"""Build a complete, reproducible demo city inside any county boundary.

Everything is drawn from one ``numpy.random.Generator`` seeded by the caller, in a fixed order and
in the boundary's metric CRS; only the finished layers are projected to WGS84. The layers follow
the import-file contracts (``etl.contracts``), so the demo loads through the same path as a user's
files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from etl.demo.density import town_centres, urban_model
from etl.demo.events import TZ, build_events
from etl.demo.hierarchy import Hierarchy, build_hierarchy
from etl.demo.metric import city_polygon, demo_metric_epsg
from etl.demo.names import RUGAO_ADCODE
from etl.demo.places import build_places
from etl.demo.population import PEOPLE, build_population
from etl.demo.posts import build_posts
from etl.demo.tessellation import SNAP, tessellate

log = logging.getLogger(__name__)

CATEGORIES_CSV = Path(__file__).resolve().parent.parent / "data" / "categories.csv"
DEFAULT_END = pd.Timestamp("2026-11-01T00:00", tz=TZ)


@dataclass
class DemoCity:
    """The six import layers of a demo city and its population cells, in WGS84, plus the metric CRS.

    ``population`` holds points (cell centres) with a ``count`` column: people, for coverage reports.
    """

    regions: gpd.GeoDataFrame
    grids: gpd.GeoDataFrame
    posts: gpd.GeoDataFrame
    station_areas: gpd.GeoDataFrame
    places: gpd.GeoDataFrame
    events: gpd.GeoDataFrame
    population: gpd.GeoDataFrame
    metric_epsg: int


def build_demo_city(
    boundary_wgs84: shapely.Polygon | shapely.MultiPolygon,
    *,
    seed: int = 320682,
    n_towns: int = 14,
    n_communities: int = 300,
    n_grids: int = 1500,
    n_posts: int = 400,
    n_places: int = 2000,
    n_events: int = 50_000,
    people: int = PEOPLE,
    end: datetime | None = None,
    adcode: str = RUGAO_ADCODE,
    city_name: str | None = None,
) -> DemoCity:
    """A city of ``n_grids`` digitised-looking grids in ``n_communities`` communities and ``n_towns`` towns.

    The same arguments always give the same city. ``adcode`` supplies the first six digits of every
    region code (and 如皋's real town names when it is 320682); ``end`` closes the year of events
    (default 2026-11-01 00:00 Beijing time; a naive datetime is taken as Beijing time).
    """
    if n_towns < 1 or n_communities < n_towns or n_grids < n_communities:
        raise ValueError("need 1 ≤ n_towns ≤ n_communities ≤ n_grids")
    rng = np.random.default_rng(seed)
    epsg = demo_metric_epsg(shapely.centroid(boundary_wgs84).x)
    with _stage("boundary"):
        city = city_polygon(boundary_wgs84, epsg, SNAP)
        model = urban_model(city, town_centres(city, n_towns, rng), rng)
    with _stage("tessellation"):
        tess = tessellate(city, model.sample(n_grids, rng), rng)
    with _stage("hierarchy"):
        h = build_hierarchy(tess, model, n_communities, adcode, rng)
    with _stage("posts"):
        posts = build_posts(h, model, n_posts, rng)
    with _stage("places"):
        places = build_places(h, model, n_places, rng)
    with _stage("events"):
        events = build_events(h, model, places, pd.read_csv(CATEGORIES_CSV), n_events, _end(end), rng)
    with _stage("population"):
        population = build_population(model, rng, people=people)
    with _stage("frames"):
        name = city_name or ("如皋市" if adcode.startswith(RUGAO_ADCODE) else "示范市")
        return DemoCity(
            regions=_wgs84(_regions(h, name), epsg, sort=False),
            grids=_wgs84(
                pd.DataFrame(
                    {
                        "code": h.grid_codes,
                        "name": h.grid_names,
                        "community_code": [h.community_codes[c] for c in h.grid_community.tolist()],
                        "workers": h.grid_workers,
                        "officer": h.grid_officers,
                        "geometry": _multi(h.grid_polygons),
                    }
                ),
                epsg,
            ),
            posts=_wgs84(
                pd.DataFrame(
                    {
                        "code": posts.codes,
                        "name": posts.names,
                        "level": posts.levels,
                        "geometry": shapely.points(posts.points),
                    }
                ),
                epsg,
                sort=False,
            ),
            station_areas=_wgs84(
                pd.DataFrame({"code": posts.station_codes, "geometry": _multi(posts.station_areas)}), epsg
            ),
            places=_wgs84(
                pd.DataFrame(
                    {
                        "code": places.codes,
                        "name": places.names,
                        "type": places.types,
                        "geometry": places.geometries,
                    }
                ),
                epsg,
            ),
            events=_wgs84(
                pd.DataFrame(
                    {
                        "id": np.arange(1, n_events + 1),
                        "category": events.category,
                        "occurred_at": events.occurred_at,
                        "description": events.description,
                        "status": events.status,
                        "priority": events.priority,
                        "source": events.source,
                        **events.history_columns(),
                        "geometry": shapely.points(events.xy),
                    }
                ),
                epsg,
                sort=False,
            ),
            population=_wgs84(
                pd.DataFrame({"count": population.count, "geometry": shapely.points(population.xy)}), epsg, sort=False
            ),
            metric_epsg=epsg,
        )


def _end(end: datetime | None) -> pd.Timestamp:
    if end is None:
        return DEFAULT_END
    stamp = pd.Timestamp(end)
    return stamp.tz_localize(TZ) if stamp.tzinfo is None else stamp.tz_convert(TZ)


def _regions(h: Hierarchy, city_name: str) -> pd.DataFrame:
    """City, towns, communities, each level sorted by code."""
    towns = np.argsort(h.town_codes, kind="stable")
    comms = np.argsort(h.community_codes, kind="stable")
    rows = [(h.city_code, city_name, "city", "", h.city_polygon)]
    rows += [(h.town_codes[t], h.town_names[t], "town", h.city_code, h.town_polygons[t]) for t in towns]
    rows += [
        (h.community_codes[c], h.community_names[c], "community", h.town_codes[h.community_town[c]],
         h.community_polygons[c])
        for c in comms
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["code", "name", "level", "parent_code", "geometry"])
    frame["geometry"] = _multi(frame["geometry"].to_numpy())
    return frame


def _multi(geoms: np.ndarray) -> np.ndarray:
    """Every polygon as a MultiPolygon, the one type the polygon layers store."""
    geoms = np.asarray(geoms, dtype=object)
    single = shapely.get_type_id(geoms) == shapely.GeometryType.POLYGON
    out = geoms.copy()
    if single.any():
        out[single] = shapely.multipolygons(geoms[single], indices=np.arange(int(single.sum())))
    return out


def _wgs84(frame: pd.DataFrame, epsg: int, *, sort: bool = True) -> gpd.GeoDataFrame:
    if sort and "code" in frame:
        frame = frame.sort_values("code", kind="stable")
    gdf = gpd.GeoDataFrame(frame.reset_index(drop=True), geometry="geometry", crs=epsg)
    return gdf.to_crs(4326)


@contextmanager
def _stage(name: str) -> Iterator[None]:
    """Log how long a stage took (benchmarks read these at DEBUG level)."""
    started = time.perf_counter()
    yield
    log.debug("demo city: %s took %.2f s", name, time.perf_counter() - started)
