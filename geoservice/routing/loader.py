"""Build a ``Router`` for one boundary version from PostGIS (a few queries, then shapely/numpy)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyproj
import shapely
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geoservice.infra.database import session_factory
from geoservice.routing.index_store import DatabaseIndexStore, settle
from geoservice.routing.router import GridRecord, PlaceSet, PostSet, Region, Router
from geoservice.routing.rules import Rule
from geoservice.settings import RoutingSettings
from layers.crs import city_metric_epsg, metric_transformer, project
from layers.enums import POST_LEVELS


def load_router(session: Session, version_id: int, settings: RoutingSettings) -> Router:
    """Read the version's grids and regions and the current posts; build the indexes.

    Distances are in ``settings.metric_crs`` when configured, else the dataset's metric CRS.
    """
    epsg = city_metric_epsg(session, settings.metric_crs)
    # The posts and places are projected here, by the transformer the router projects every point
    # with, not by PostGIS: a new backend's first ST_Transform loads PROJ (0.07-0.08 s measured, paid by
    # every ``geoservice route``), and both ends of a distance now come from the same PROJ. Choosing
    # its operation (0.1 s when no cache directory remembers it) runs while the rows below are read.
    choosing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="router-transformer")
    chosen = choosing.submit(metric_transformer, epsg, settings.index_cache_dir)
    choosing.shutdown(wait=False)  # its thread ends with the search, whether or not the reads below succeed
    name = session.execute(text("SELECT name FROM boundary_versions WHERE id = :v"), {"v": version_id}).scalar_one()
    rows = session.execute(
        text(
            "SELECT code, name, community_code, workers, officer, ST_AsBinary(geom) AS wkb "
            "FROM grids WHERE version_id = :v"
        ),
        {"v": version_id},
    ).all()
    grids = [GridRecord(r.code, r.name, r.community_code, tuple(r.workers or ()), r.officer) for r in rows]
    grid_geoms = shapely.from_wkb([bytes(r.wkb) for r in rows])
    del rows  # the WKB (19 MB on the prefecture) would otherwise stay through the index build, at its peak
    regions = {
        r.code: Region(r.code, r.name, r.level, r.parent_code)
        for r in session.execute(
            text("SELECT code, name, level::text AS level, parent_code FROM regions WHERE version_id = :v"),
            {"v": version_id},
        )
    }
    posts = session.execute(
        text(
            "SELECT code, name, level::text AS level, ST_X(geom) AS lon, ST_Y(geom) AS lat, "
            "ST_AsBinary(jurisdiction) AS area FROM police_posts ORDER BY code"
        )
    ).all()
    by_level = {level: [p for p in posts if p.level == level] for level in POST_LEVELS}
    stations = by_level["station"]
    to_metric = chosen.result()  # before _places, which projects with the same (cached) transformer
    return Router(
        version_id=version_id,
        version_name=name,
        grids=grids,
        grid_geoms=grid_geoms,
        regions=regions,
        stations=_post_set(stations, to_metric),
        jurisdictions=np.array([shapely.from_wkb(bytes(p.area)) if p.area else None for p in stations], dtype=object),
        posts={level: _post_set(rows, to_metric) for level, rows in by_level.items()},
        places=_places(session, epsg),
        rules=_rules(session),
        metric_epsg=epsg,
        snap_tolerance_m=settings.snap_tolerance_m,
        rings_m=settings.rings_m,
        cell_m=settings.index_cell_m,
        index_cache_dir=settings.index_cache_dir,
        index_store=DatabaseIndexStore(_engine_of(session)),
    )


def fill_index_cache(engine: Engine, version_id: int, settings: RoutingSettings) -> str:
    """Build a version's router indexes into the router cache now; how its grid index was served.

    Publishing is when the boundaries change, so it is when their indexes are built: a ``route`` run
    right after would otherwise build the grid index itself (on the county, 1 M points took 1.7x
    the geopandas script's time instead of 2.4x, issue 23), and so would every worker that has not
    heard of the version yet (the build is offered to the database too, for other machines).
    ``"built"``, ``"hit"`` (already there), ``"shared"`` (the database's copy, now in the directory),
    ``"uncached"`` (the cache could not be written) or ``"off"`` (no cache configured: nothing to do).
    """
    if settings.index_cache_dir is None:
        return "off"
    with session_factory(engine)() as session:
        state = load_router(session, version_id, settings).grid_index.cache
    settle()  # published means stored for the other machines too, when this returns
    return state


def _engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def _places(session: Session, epsg: int) -> dict[str, PlaceSet]:
    rows = session.execute(text("SELECT type, name, ST_AsBinary(geom) AS wkb FROM key_places ORDER BY code")).all()
    by_type: dict[str, list] = {}
    for row in rows:
        by_type.setdefault(row.type, []).append(row)
    return {
        kind: PlaceSet(
            np.array([r.name for r in group], dtype=str), project(shapely.from_wkb([bytes(r.wkb) for r in group]), epsg)
        )
        for kind, group in by_type.items()
    }


def _rules(session: Session) -> list[Rule]:
    rows = session.execute(
        text(
            "SELECT id, category_code, department_code, priority, region_code, place_type, place_distance_m, "
            "zone_layer, description FROM routing_rules WHERE enabled ORDER BY id"
        )
    ).all()
    return [Rule(**row._mapping) for row in rows]


def _post_set(rows: list, to_metric: pyproj.Transformer) -> PostSet:
    lon = np.array([r.lon for r in rows], dtype=np.float64)
    lat = np.array([r.lat for r in rows], dtype=np.float64)
    return PostSet(
        codes=np.array([r.code for r in rows], dtype=str),
        names=np.array([r.name for r in rows], dtype=str),
        xy=np.column_stack(to_metric.transform(lon, lat)),
    )
