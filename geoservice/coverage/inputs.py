"""Everything a coverage report reads from PostGIS, projected once into the city's metric CRS.

This is the I/O edge of the coverage package: one function per layer, each returning plain arrays
(metric coordinates, numpy) so that the figures (``report``) and the siting (``siting``) are pure
functions of what is loaded here. Only what the region's bounding box touches is read; the exact
"inside this region" test happens in the figures, on metric geometries.

Posts are read in full, not clipped to the region: a post across the border covers people here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.boundaries.units import UnknownRegion, unit_by_code
from geoservice.boundaries.versions import NoVersionInForce, current_version_id
from layers.crs import city_metric_epsg, metric_transformer, project
from layers.models import POST_LEVELS

LEVELS = POST_LEVELS
CHILD_LEVEL = {"city": "town", "town": "community", "community": "grid", "grid": None}


class NoDemandLayer(LookupError):
    """The demand asked for has no layer loaded (e.g. no population).

    Defined here, with the inputs, rather than in ``service`` (which re-exports it): the API's error
    table needs the class in every server worker, the service's imports (geopandas) only on use.
    """


@dataclass(frozen=True)
class Unit:
    """A region (city, town, community) or a grid that figures are given for; ``geom`` is metric."""

    code: str
    name: str
    level: str
    geom: BaseGeometry


@dataclass(frozen=True)
class Posts:
    """The posts of one level: ids and codes as stored, metric coordinates."""

    ids: np.ndarray
    codes: np.ndarray
    names: np.ndarray
    xy: np.ndarray  # (n, 2)


@dataclass(frozen=True)
class Places:
    """Key places in the region's bounding box: metric geometries (points or polygons)."""

    codes: np.ndarray
    names: np.ndarray
    types: np.ndarray
    geoms: np.ndarray


@dataclass(frozen=True)
class Points:
    """Weighted points (population cells or events) in the region's bounding box, metric."""

    xy: np.ndarray  # (n, 2)
    weight: np.ndarray  # (n,)


@dataclass(frozen=True)
class CoverageInputs:
    """One consistent snapshot of everything a report needs."""

    version_id: int
    version_name: str
    epsg: int
    region: Unit
    children: list[Unit]  # by code
    posts: dict[str, Posts]
    places: Places
    events: Points
    people: Points | None  # None: no population layer is loaded at all
    as_of: datetime
    since: datetime


def year_before(moment: datetime) -> datetime:
    """``moment`` twelve months earlier (29 February falls back to the 28th)."""
    try:
        return moment.replace(year=moment.year - 1)
    except ValueError:
        return moment.replace(year=moment.year - 1, day=28)


def load_inputs(session: Session, code: str | None, as_of: datetime, *, metric_crs: str | None) -> CoverageInputs:
    """The region ``code`` (default: the city) in the version in force, its children and its layers.

    ``metric_crs`` is the configured ``GEOSERVICE_METRIC_CRS`` (None: the dataset's metric CRS), as the router uses.
    """
    version = session.execute(
        text("SELECT id, name FROM boundary_versions WHERE id = :v"), {"v": current_version_id(session)}
    ).first()
    if version is None:
        raise NoVersionInForce("no boundary version is in force yet: publish one first")
    epsg = city_metric_epsg(session, metric_crs)
    region, children = load_units(session, version.id, code, epsg)
    bbox = _bbox(session, version.id, region)
    return CoverageInputs(
        version_id=version.id,
        version_name=version.name,
        epsg=epsg,
        region=region,
        children=children,
        posts=load_posts(session, epsg),
        places=_places(session, bbox, epsg),
        events=_events(session, bbox, epsg, year_before(as_of), as_of),
        people=_people(session, bbox, epsg),
        as_of=as_of,
        since=year_before(as_of),
    )


def load_units(session: Session, version_id: int, code: str | None, epsg: int) -> tuple[Unit, list[Unit]]:
    """The region (or grid) and its children one level down, metric, children by code."""
    if code is None:
        code = session.execute(
            text("SELECT code FROM regions WHERE version_id = :v AND level = 'city' ORDER BY code LIMIT 1"),
            {"v": version_id},
        ).scalar()
        if code is None:
            raise UnknownRegion("the version in force has no city region")
    row = unit_by_code(session, version_id, code)
    child = CHILD_LEVEL[row.level]
    if child == "grid":
        sql = (
            "SELECT code, name, 'grid' AS level, ST_AsBinary(geom) AS wkb FROM grids "
            "WHERE version_id = :v AND community_code = :c"
        )
    elif child is not None:
        sql = (
            "SELECT code, name, level::text AS level, ST_AsBinary(geom) AS wkb FROM regions "
            "WHERE version_id = :v AND parent_code = :c"
        )
    rows = [row, *(session.execute(text(sql + " ORDER BY code"), {"v": version_id, "c": code}) if child else [])]
    geoms = project(shapely.from_wkb([bytes(r.wkb) for r in rows]), epsg)
    units = [Unit(r.code, r.name, r.level, g) for r, g in zip(rows, geoms, strict=True)]
    return units[0], units[1:]


def load_posts(session: Session, epsg: int) -> dict[str, Posts]:
    """Every post, by level, in code order."""
    rows = session.execute(
        text(
            "SELECT id, code, name, level::text AS level, ST_X(geom) AS lon, ST_Y(geom) AS lat "
            "FROM police_posts ORDER BY code"
        )
    ).all()
    out = {}
    for level in LEVELS:
        mine = [r for r in rows if r.level == level]
        x, y = metric_transformer(epsg).transform([r.lon for r in mine], [r.lat for r in mine])
        out[level] = Posts(
            np.array([r.id for r in mine], dtype=np.int64),
            np.array([r.code for r in mine], dtype=object),
            np.array([r.name for r in mine], dtype=object),
            np.column_stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)]).reshape(-1, 2),
        )
    return out


def _bbox(session: Session, version_id: int, region: Unit) -> tuple[float, float, float, float]:
    table = "grids" if region.level == "grid" else "regions"
    box = session.execute(
        text(
            f"SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM "
            f"(SELECT ST_Envelope(geom) AS b FROM {table} WHERE version_id = :v AND code = :c) s"
        ),
        {"v": version_id, "c": region.code},
    ).one()
    return tuple(box)


_ENVELOPE = "geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)"


def _box_params(bbox: tuple[float, float, float, float]) -> dict[str, float]:
    return dict(zip(("x0", "y0", "x1", "y1"), bbox, strict=True))


def _places(session: Session, bbox: tuple, epsg: int) -> Places:
    rows = session.execute(
        text(f"SELECT code, name, type, ST_AsBinary(geom) AS wkb FROM key_places WHERE {_ENVELOPE} ORDER BY code"),
        _box_params(bbox),
    ).all()
    return Places(
        np.array([r.code for r in rows], dtype=object),
        np.array([r.name for r in rows], dtype=object),
        np.array([r.type for r in rows], dtype=object),
        project(shapely.from_wkb([bytes(r.wkb) for r in rows]), epsg) if rows else np.empty(0, dtype=object),
    )


def _points(session: Session, sql: str, params: dict, epsg: int) -> Points:
    """Points as two float arrays and a weight array, fetched as three Postgres arrays (one row)."""
    lon, lat, weight = session.execute(text(sql), params).one()
    x, y = metric_transformer(epsg).transform(np.asarray(lon or [], dtype=float), np.asarray(lat or [], dtype=float))
    return Points(np.column_stack([x, y]).reshape(-1, 2), np.asarray(weight or [], dtype=float))


def _events(session: Session, bbox: tuple, epsg: int, since: datetime, until: datetime) -> Points:
    """Events of the twelve months before ``until`` (``since`` < occurred_at ≤ ``until``), weight 1."""
    return _points(
        session,
        "SELECT array_agg(ST_X(geom) ORDER BY id), array_agg(ST_Y(geom) ORDER BY id), array_agg(1.0) FROM events "
        f"WHERE {_ENVELOPE} AND occurred_at > :since AND occurred_at <= :until",
        {**_box_params(bbox), "since": since, "until": until},
        epsg,
    )


def _people(session: Session, bbox: tuple, epsg: int) -> Points | None:
    if session.execute(text("SELECT NOT EXISTS (SELECT 1 FROM population)")).scalar():
        return None
    return _points(
        session,
        "SELECT array_agg(ST_X(geom) ORDER BY id), array_agg(ST_Y(geom) ORDER BY id), array_agg(count ORDER BY id) "
        f"FROM population WHERE {_ENVELOPE}",
        _box_params(bbox),
        epsg,
    )


@dataclass(frozen=True)
class Sites:
    """Candidate sites for new posts: metric points, where each came from, and its code and name."""

    xy: np.ndarray  # (n, 2)
    source: np.ndarray  # "community" | "grid" | "place" | "file"
    codes: np.ndarray
    names: np.ndarray


def load_candidate_sites(session: Session, inputs: CoverageInputs) -> Sites:
    """The default candidate rule: the centre of every community and grid, and every key place, in the bbox.

    Centres are ``ST_PointOnSurface`` (always inside, unlike a centroid): a community or grid centre is
    where a post can stand without crossing into another unit, and key places are where people gather.
    The caller keeps those inside the region.
    """
    bbox = _bbox(session, inputs.version_id, inputs.region)
    rows = session.execute(
        text(
            "SELECT 'community' AS source, code, name, ST_X(p) AS lon, ST_Y(p) AS lat FROM "
            "(SELECT code, name, ST_PointOnSurface(geom) AS p FROM regions "
            f"WHERE version_id = :v AND level = 'community' AND {_ENVELOPE}) c "
            "UNION ALL SELECT 'grid', code, name, ST_X(p), ST_Y(p) FROM "
            f"(SELECT code, name, ST_PointOnSurface(geom) AS p FROM grids WHERE version_id = :v AND {_ENVELOPE}) g "
            "UNION ALL SELECT 'place', code, name, ST_X(p), ST_Y(p) FROM "
            f"(SELECT code, name, ST_PointOnSurface(geom) AS p FROM key_places WHERE {_ENVELOPE}) k "
            "ORDER BY 1, 2"
        ),
        {"v": inputs.version_id, **_box_params(bbox)},
    ).all()
    return sites_from_lonlat(
        [r.lon for r in rows], [r.lat for r in rows], [r.source for r in rows], [r.code for r in rows],
        [r.name for r in rows], inputs.epsg,
    )  # fmt: skip


def sites_from_lonlat(
    lon: list[float], lat: list[float], source: list[str], codes: list[str], names: list[str], epsg: int
) -> Sites:
    x, y = metric_transformer(epsg).transform(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return Sites(
        np.column_stack([x, y]).reshape(-1, 2),
        np.array(source, dtype=object),
        np.array(codes, dtype=object),
        np.array(names, dtype=object),
    )
