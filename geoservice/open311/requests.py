"""Reading service requests: citizen reports (source public or 12345 hotline) with names looked up.

Internal finds (grid-worker patrols, video) are not published through Open311, and no reporter
name or phone ever is; a sensitive category's records lose their description, photo and fine place
(``open311.mapping.service_request``). Each request carries the notes staff marked public (its own
and, once merged, its master's) and a merged request its master's state and deadlines. Without
dates, the last 90 days are answered, at most 1,000 requests, newest first, as the spec suggests.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from geoservice.open311.mapping import CLOSED

PUBLIC_SOURCES = ("public", "hotline_12345")
DEFAULT_DAYS = 90
MAX_REQUESTS = 1000

SELECT = """
    SELECT e.id, e.status, e.category_code, e.description, e.reported_at, e.updated_at, e.accept_due_at,
           e.handle_due_at, e.photos, e.grid_code, ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat,
           c.name AS service_name, c.sensitive, d.name AS agency_name,
           concat_ws(' ', t.name, cm.name, g.name) AS address,
           e.merged_into, m.status AS master_status, m.accept_due_at AS master_accept_due_at,
           m.handle_due_at AS master_handle_due_at, m.updated_at AS master_updated_at,
           (SELECT coalesce(jsonb_agg(jsonb_build_object('at', l.at, 'note', l.note) ORDER BY l.at, l.id), '[]')
              FROM event_log l
             WHERE l.event_id IN (e.id, e.merged_into) AND (l.details->>'public_note')::boolean) AS public_notes
      FROM events e
      JOIN categories c ON c.code = e.category_code
      LEFT JOIN events m ON m.id = e.merged_into
      LEFT JOIN departments d ON d.code = e.department_code
      LEFT JOIN grids g ON g.version_id = e.boundary_version_id AND g.code = e.grid_code
      LEFT JOIN regions cm ON cm.version_id = e.boundary_version_id AND cm.code = e.community_code
      LEFT JOIN regions t ON t.version_id = e.boundary_version_id AND t.code = e.town_code
     WHERE e.source IN :sources
"""


def find_requests(
    session: Session,
    *,
    ids: list[int] | None = None,
    service_codes: list[str] | None = None,
    statuses: list[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime,
) -> list[dict[str, Any]]:
    """Events matching GeoReport's query parameters, newest first."""
    sql = SELECT
    params: dict[str, Any] = {"sources": list(PUBLIC_SOURCES)}
    binds = [bindparam("sources", expanding=True)]
    if ids:
        sql += " AND e.id IN :ids"
        params["ids"] = ids
        binds.append(bindparam("ids", expanding=True))
    else:
        if start is None and end is None:
            start = now - timedelta(days=DEFAULT_DAYS)
        if start is not None:
            sql += " AND e.reported_at >= :start"
            params["start"] = start
        if end is not None:
            sql += " AND e.reported_at <= :end"
            params["end"] = end
    if service_codes:
        sql += " AND e.category_code IN :codes"
        params["codes"] = service_codes
        binds.append(bindparam("codes", expanding=True))
    if statuses and set(statuses) != {"open", "closed"}:
        state = "coalesce(m.status, e.status)"  # a merged request is open or closed as its master is
        sql += f" AND {state} IN :closed" if statuses == ["closed"] else f" AND {state} NOT IN :closed"
        params["closed"] = sorted(CLOSED)
        binds.append(bindparam("closed", expanding=True))
    sql += f" ORDER BY e.reported_at DESC, e.id DESC LIMIT {MAX_REQUESTS}"
    return [dict(r._mapping) for r in session.execute(text(sql).bindparams(*binds), params)]


def services(session: Session, code: str | None = None) -> list[dict[str, Any]]:
    """Every subcategory (or the one ``code``) with its class name, own deadlines and attributes, in code order."""
    rows = session.execute(
        text(
            "SELECT s.code, s.name, p.name AS class_name, s.accept_hours, s.handle_hours, s.attributes "
            "FROM categories s JOIN categories p ON p.code = s.parent_code "
            "WHERE CAST(:code AS text) IS NULL OR s.code = :code ORDER BY s.code"
        ),
        {"code": code},
    )
    return [dict(r._mapping) for r in rows]


def city_jurisdiction(session: Session) -> tuple[str | None, str]:
    """The loaded city's adcode (the default ``jurisdiction_id``) and time zone (for dates given without one)."""
    found = dict(session.execute(
        text("SELECT key, value FROM dataset_settings WHERE key IN ('city_adcode', 'city_timezone')")
    ).all())  # fmt: skip
    return found.get("city_adcode") or None, found.get("city_timezone") or "Asia/Shanghai"
