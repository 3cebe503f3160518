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

# Each statement below fills a temporary table; ``APPLY`` then writes every event once. Three
# UPDATEs of ``events`` (place, station, department) rewrote each row three times with its indexes
# and triggers: 40–45 s of the demo city's load (50,000 events), where finding the answers takes
# 1.5 s. One UPDATE: 22–25 s (bench/RESULTS.md, "Stop 43").
PLACES = text(
    """
    CREATE TEMP TABLE bulk_places ON COMMIT DROP AS
    SELECT hit.event_id, hit.code, hit.community_code, c.parent_code AS town_code, hit.version_id
      FROM (SELECT DISTINCT ON (e.id) e.id AS event_id, g.code, g.community_code, g.version_id
              FROM events e
              JOIN boundary_versions v
                ON v.status <> 'draft' AND tstzrange(v.effective_from, v.effective_to) @> e.occurred_at
              JOIN grids g ON g.version_id = v.id AND ST_Covers(g.geom, e.geom)
             WHERE e.grid_code IS NULL
             ORDER BY e.id, g.code) AS hit
      JOIN regions c ON c.version_id = hit.version_id AND c.code = hit.community_code
    """
)

# The station whose jurisdiction covers the event (smallest code where two would), else the nearest
# on the spheroid (smallest code on a tie).
STATIONS = text(
    """
    CREATE TEMP TABLE bulk_stations ON COMMIT DROP AS
    SELECT DISTINCT ON (e.id) e.id AS event_id, p.code
      FROM events e JOIN police_posts p ON p.level = 'station' AND ST_Covers(p.jurisdiction, e.geom)
     WHERE e.station_code IS NULL
     ORDER BY e.id, p.code
    """
)
NEAREST_STATIONS = text(
    """
    INSERT INTO bulk_stations (event_id, code)
    SELECT e.id, (SELECT p.code FROM police_posts p WHERE p.level = 'station'
                   ORDER BY ST_Distance(p.geom::geography, e.geom::geography), p.code LIMIT 1)
      FROM events e
     WHERE e.station_code IS NULL AND NOT EXISTS (SELECT 1 FROM bulk_stations b WHERE b.event_id = e.id)
    """
)

APPLY = text(
    """
    UPDATE events e
       SET grid_code = CASE WHEN p.event_id IS NULL THEN e.grid_code ELSE p.code END,
           community_code = CASE WHEN p.event_id IS NULL THEN e.community_code ELSE p.community_code END,
           town_code = CASE WHEN p.event_id IS NULL THEN e.town_code ELSE p.town_code END,
           boundary_version_id = CASE WHEN p.event_id IS NULL THEN e.boundary_version_id ELSE p.version_id END,
           station_code = coalesce(e.station_code, s.code),
           department_code = CASE WHEN r.id IS NULL THEN e.department_code ELSE r.department_code END,
           rule_id = CASE WHEN r.id IS NULL THEN e.rule_id ELSE r.rule_id END,
           route_reason = CASE WHEN r.id IS NULL THEN e.route_reason ELSE r.reason END
      FROM (SELECT event_id AS id FROM bulk_places UNION SELECT event_id FROM bulk_stations WHERE code IS NOT NULL
            UNION SELECT id FROM bulk_routed) AS touched
      LEFT JOIN bulk_places p ON p.event_id = touched.id
      LEFT JOIN bulk_stations s ON s.event_id = touched.id
      LEFT JOIN bulk_routed r ON r.id = touched.id
     WHERE e.id = touched.id
    """
)

# The tables a call fills, and their columns (``_apply`` makes empty the ones a call did not fill).
FOUND = {
    "bulk_places": "event_id bigint, code text, community_code text, town_code text, version_id int",
    "bulk_stations": "event_id bigint, code text",
    "bulk_routed": "id bigint, department_code text, rule_id int, reason text",
}


def route_imported_events(session: Session, routing: RoutingSettings) -> tuple[int, int]:
    """Place every event that has no grid yet, and give a department to those without one.

    Departments are decided by the version in force now (its rules and zones), as a report made
    today would be; before any version is published, events are placed but get no department.
    Returns (placed, given a department).
    """
    placed = _find_places(session)
    version_id = current_version_id(session)
    routed = _decide_departments(session, load_router(session, version_id, routing)) if version_id is not None else 0
    _apply(session)
    return placed, routed


def assign_places(session: Session) -> int:
    """Fill grid, community, town and station of every event that has none yet; return how many."""
    placed = _find_places(session)
    _apply(session)
    return placed


def assign_departments(session: Session, router: Router) -> int:
    """Decide the department (and rule, and reason) of every event that has none; return how many."""
    routed = _decide_departments(session, router)
    _apply(session)
    return routed


def _find_places(session: Session) -> int:
    session.execute(PLACES)
    session.execute(STATIONS)
    session.execute(NEAREST_STATIONS)
    return session.execute(text("SELECT count(*) FROM bulk_places")).scalar_one()


def _decide_departments(session: Session, router: Router) -> int:
    session.execute(text(f"CREATE TEMP TABLE bulk_routed ({FOUND['bulk_routed']}) ON COMMIT DROP"))
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
    copy_rows(
        session,
        "bulk_routed",
        ["id", "department_code", "rule_id", "reason"],
        (
            (int(i), d, int(r), described[int(r)])
            for i, d, r in zip(ids[decided], routed["department"][decided], routed["rule_id"][decided], strict=True)
        ),
    )
    return int(decided.sum())


def _apply(session: Session) -> None:
    """Write what was found in one UPDATE (a table not filled this time is made empty), then drop the tables."""
    for table, columns in FOUND.items():
        session.execute(text(f"CREATE TEMP TABLE IF NOT EXISTS {table} ({columns}) ON COMMIT DROP"))
    session.execute(APPLY)
    session.execute(text(f"DROP TABLE {', '.join(FOUND)}"))
