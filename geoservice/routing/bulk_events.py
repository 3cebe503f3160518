"""Route events loaded in bulk (imports, the demo): place, then department.

Places are set-based, in PostGIS, in the boundaries in force when each event occurred: grid,
community, town (covering grid, smallest code on shared edges) and station (jurisdiction, else the
nearest, measured on the spheroid, never in degrees). Departments come from the routing rules,
evaluated by the router's vectorised path, so a bulk load decides exactly as a single report would.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from etl.load import copy_rows
from geoservice.boundaries.versions import current_version_id
from geoservice.routing.bulk import route_points
from geoservice.routing.loader import load_router
from geoservice.routing.router import Router
from geoservice.settings import RoutingSettings

PLACE_BY_VERSION_AT_OCCURRENCE = text(
    """
    UPDATE events e
       SET grid_code = hit.code, community_code = hit.community_code, town_code = c.parent_code,
           boundary_version_id = hit.version_id
      FROM (SELECT DISTINCT ON (e.id) e.id AS event_id, g.code, g.community_code, g.version_id
              FROM events e
              JOIN boundary_versions v
                ON v.status <> 'draft' AND tstzrange(v.effective_from, v.effective_to) @> e.occurred_at
              JOIN grids g ON g.version_id = v.id AND ST_Covers(g.geom, e.geom)
             WHERE e.grid_code IS NULL
             ORDER BY e.id, g.code) AS hit
      JOIN regions c ON c.version_id = hit.version_id AND c.code = hit.community_code
     WHERE e.id = hit.event_id
    """
)

STATION_BY_JURISDICTION = text(
    """
    UPDATE events e SET station_code = p.code
      FROM police_posts p
     WHERE e.station_code IS NULL AND p.level = 'station' AND ST_Covers(p.jurisdiction, e.geom)
    """
)

NEAREST_STATION = text(
    """
    UPDATE events e SET station_code = (
        SELECT p.code FROM police_posts p WHERE p.level = 'station'
         ORDER BY ST_Distance(p.geom::geography, e.geom::geography), p.code LIMIT 1)
     WHERE e.station_code IS NULL
    """
)


def route_imported_events(session: Session, routing: RoutingSettings) -> tuple[int, int]:
    """Place every event that has no grid yet, and give a department to those without one.

    Departments are decided by the version in force now (its rules and zones), as a report made
    today would be; before any version is published, events are placed but get no department.
    Returns (placed, given a department).
    """
    placed = assign_places(session)
    version_id = current_version_id(session)
    routed = assign_departments(session, load_router(session, version_id, routing)) if version_id is not None else 0
    return placed, routed


def assign_places(session: Session) -> int:
    """Fill grid, community, town and station of every event that has none yet; return how many."""
    placed = session.execute(PLACE_BY_VERSION_AT_OCCURRENCE).rowcount
    session.execute(STATION_BY_JURISDICTION)
    session.execute(NEAREST_STATION)
    return placed


def assign_departments(session: Session, router: Router) -> int:
    """Decide the department (and rule, and reason) of every event that has none; return how many."""
    rows = session.execute(
        text("SELECT id, ST_X(geom), ST_Y(geom), category_code FROM events WHERE department_code IS NULL")
    ).all()
    if not rows:
        return 0
    ids, lon, lat, categories = (np.array(column) for column in zip(*rows, strict=True))
    routed = route_points(router, lon.astype(float), lat.astype(float), categories.astype(object))
    decided = routed["rule_id"].notna().to_numpy()
    described = {
        rule.id: f"rule {rule.id} ({rule.description}), decided when the event was loaded" for rule in router.rules
    }
    session.execute(
        text("CREATE TEMP TABLE routed (id bigint, department_code text, rule_id int, reason text) ON COMMIT DROP")
    )
    copy_rows(
        session,
        "routed",
        ["id", "department_code", "rule_id", "reason"],
        (
            (int(i), d, int(r), described[int(r)])
            for i, d, r in zip(ids[decided], routed["department"][decided], routed["rule_id"][decided], strict=True)
        ),
    )
    session.execute(
        text(
            "UPDATE events e SET department_code = r.department_code, rule_id = r.rule_id, "
            "route_reason = r.reason FROM routed r WHERE e.id = r.id"
        )
    )
    session.execute(text("DROP TABLE routed"))
    return int(decided.sum())
