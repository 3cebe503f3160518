"""Place events in the boundaries in force when they occurred: grid, community, town, station.

Set-based, in PostGIS, for loads and imports of many events at once. The tie-break on shared
edges is the design's: the covering grid with the smallest code wins. Stations: the one whose
jurisdiction covers the point, else the nearest (metric distance on the spheroid, never degrees).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

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


def assign_places(session: Session) -> int:
    """Fill grid, community, town and station of every event that has none yet; return how many."""
    placed = session.execute(PLACE_BY_VERSION_AT_OCCURRENCE).rowcount
    session.execute(STATION_BY_JURISDICTION)
    session.execute(NEAREST_STATION)
    return placed
