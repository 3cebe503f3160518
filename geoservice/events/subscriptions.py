"""Area subscriptions (FixMyStreet-style): a signed-in user follows a polygon or a circle and categories.

Limits keep one account from watching the whole city: at most ``MAX_SUBSCRIPTIONS`` per user, a
circle's radius at most ``MAX_RADIUS_M``, a polygon's area at most ``MAX_AREA_KM2`` (measured on
the spheroid) and ``MAX_VERTICES`` points. A circle is stored as its polygon (a geography buffer,
so the radius is metres), keeping centre and radius to show back; matching an event is then one
point-in-polygon test served by the GiST index (``events.followers``).
"""

from __future__ import annotations

import json
import math
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.errors import Conflict, InvalidInput, NotFound

MAX_SUBSCRIPTIONS = 10
MAX_RADIUS_M = 2000.0
MAX_AREA_KM2 = 25.0
MAX_VERTICES = 500
MAX_CATEGORIES = 30
COLUMNS = (
    "id, ST_AsGeoJSON(geom, 7)::json AS area, center_lon, center_lat, radius_m, categories, created_at, "
    "round((ST_Area(geography(geom)) / 1e6)::numeric, 4)::float8 AS area_km2"
)


def add_subscription(
    session: Session,
    username: str,
    *,
    polygon: dict[str, Any] | None = None,
    circle: tuple[float, float, float] | None = None,
    categories: list[str] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Store a subscription of ``username``: a GeoJSON Polygon (WGS84) or a circle (lon, lat, radius_m).

    Returns it and whether it is new: the same area and categories again (a retried request) answer
    the stored one instead of a second copy.
    """
    categories = sorted(set(categories or []))
    if (polygon is None) == (circle is None):
        raise InvalidInput("give either a polygon or a circle", title="Invalid area")
    _check_categories(session, categories)
    # One writer per account at a time: the count limit and the retry check below cannot race.
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('subscriptions:' || :u))"), {"u": username})
    if circle is not None:
        lon, lat, radius = circle
        _check_point(lon, lat)
        if not (math.isfinite(radius) and 0 < radius <= MAX_RADIUS_M):
            raise InvalidInput(f"radius_m must be more than 0 and at most {MAX_RADIUS_M:,.0f} m", title="Invalid area")
        geometry = "ST_Buffer(geography(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)), :radius, 'quad_segs=16')::geometry"
        params: dict[str, Any] = {"lon": lon, "lat": lat, "radius": radius}
    else:
        _check_polygon(session, polygon)
        geometry = "ST_SetSRID(ST_GeomFromGeoJSON(:geojson), 4326)"
        params = {"geojson": json.dumps(polygon), "lon": None, "lat": None, "radius": None}
    same = session.execute(
        text(
            f"SELECT {COLUMNS} FROM subscriptions WHERE username = :u AND categories = CAST(:categories AS text[]) "
            f"AND ST_Equals(geom, {geometry})"
        ),
        {**params, "u": username, "categories": categories},
    ).first()
    if same is not None:
        return dict(same._mapping), False
    count = session.execute(
        text("SELECT count(*) FROM subscriptions WHERE username = :u"), {"u": username}
    ).scalar_one()
    if count >= MAX_SUBSCRIPTIONS:
        raise Conflict(f"you follow {count} areas, the most one account may; delete one first",
                       title="Too many subscriptions")  # fmt: skip
    row = session.execute(
        text(
            f"INSERT INTO subscriptions (username, geom, center_lon, center_lat, radius_m, categories) "
            f"VALUES (:u, {geometry}, :lon, :lat, :radius, :categories) RETURNING {COLUMNS}"
        ),
        {**params, "u": username, "categories": categories},
    ).one()
    return dict(row._mapping), True


def list_subscriptions(session: Session, username: str) -> list[dict[str, Any]]:
    """The user's subscriptions, oldest first."""
    rows = session.execute(
        text(f"SELECT {COLUMNS} FROM subscriptions WHERE username = :u ORDER BY id"), {"u": username}
    )
    return [dict(r._mapping) for r in rows]


def delete_subscription(session: Session, username: str, subscription_id: int) -> None:
    """Remove one of the user's subscriptions; someone else's is "not found", like one that never was."""
    gone = session.execute(
        text("DELETE FROM subscriptions WHERE id = :id AND username = :u RETURNING id"),
        {"id": subscription_id, "u": username},
    ).first()
    if gone is None:
        raise NotFound(f"you have no subscription {subscription_id}", title="No such subscription")


def _check_point(lon: float, lat: float) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput(f"({lon}, {lat}) is not a WGS84 longitude and latitude", title="Invalid area")


def _check_polygon(session: Session, polygon: dict[str, Any] | None) -> None:
    """A GeoJSON Polygon with closed rings of WGS84 points, valid (OGC) and not too large; else 422."""
    bad = InvalidInput("area must be a GeoJSON Polygon: {\"type\": \"Polygon\", \"coordinates\": [[[lon, lat], …]]}",
                       title="Invalid area")  # fmt: skip
    if not isinstance(polygon, dict) or polygon.get("type") != "Polygon":
        raise bad
    rings = polygon.get("coordinates")
    if not isinstance(rings, list) or not rings or not all(isinstance(r, list) and len(r) >= 4 for r in rings):
        raise bad
    points = [p for ring in rings for p in ring]
    if len(points) > MAX_VERTICES:
        raise InvalidInput(f"{len(points)} points; at most {MAX_VERTICES}", title="Invalid area")
    for point in points:
        ok = isinstance(point, list) and len(point) == 2 and all(isinstance(v, int | float) for v in point)
        if not ok:
            raise bad
        _check_point(float(point[0]), float(point[1]))
    if any(ring[0] != ring[-1] for ring in rings):
        raise InvalidInput("every ring must end where it starts", title="Invalid area")
    why, area_km2 = session.execute(
        text(
            "SELECT CASE WHEN ST_IsValid(g) THEN NULL ELSE ST_IsValidReason(g) END, ST_Area(geography(g)) / 1e6 "
            "FROM (SELECT ST_SetSRID(ST_GeomFromGeoJSON(:g), 4326) AS g) s"
        ),
        {"g": json.dumps(polygon)},
    ).one()
    if why is not None:
        raise InvalidInput(f"the polygon is not valid: {why}", title="Invalid area")
    if not 0 < area_km2 <= MAX_AREA_KM2:
        raise InvalidInput(f"the polygon covers {area_km2:,.3f} km²; at most {MAX_AREA_KM2:g} km² and more than 0",
                           title="Invalid area")  # fmt: skip


def _check_categories(session: Session, categories: list[str]) -> None:
    if len(categories) > MAX_CATEGORIES:
        raise InvalidInput(f"at most {MAX_CATEGORIES} categories", title="Invalid request")
    if not categories:
        return
    known = set(session.execute(text("SELECT code FROM categories WHERE code = ANY(:c)"), {"c": categories}).scalars())
    unknown = [c for c in categories if c not in known]
    if unknown:
        raise InvalidInput(f"no category {', '.join(unknown)}", title="Unknown category")
