"""Event counts grouped by one dimension: a region level, category, status, or a local day/week/month."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.stats.filters import LOCAL_TZ, Condition

CountBy = Literal["town", "community", "grid", "category", "status", "owner", "day", "week", "month"]

_LOCAL = f"(e.reported_at AT TIME ZONE '{LOCAL_TZ}')"
KEYS: dict[str, str] = {
    "town": "e.town_code",
    "community": "e.community_code",
    "grid": "e.grid_code",
    "category": "e.category_code",
    "status": "e.status",
    "owner": "(e.owner_kind || ':' || e.owner_code)",  # unit:<region or grid code>, department:<code>
    "day": f"to_char({_LOCAL}, 'YYYY-MM-DD')",
    "week": f"to_char({_LOCAL}, 'IYYY-\"W\"IW')",
    "month": f"to_char({_LOCAL}, 'YYYY-MM')",
}
# Names come from the newest boundary version that has the code, so retired codes keep a name.
NAMES: dict[str, str] = {
    "town": "(SELECT name FROM regions WHERE code = k.key ORDER BY version_id DESC LIMIT 1)",
    "community": "(SELECT name FROM regions WHERE code = k.key ORDER BY version_id DESC LIMIT 1)",
    "grid": "(SELECT name FROM grids WHERE code = k.key ORDER BY version_id DESC LIMIT 1)",
    "category": "(SELECT name FROM categories WHERE code = k.key)",
    "owner": "(CASE WHEN k.key LIKE 'department:%' THEN (SELECT name FROM departments WHERE code = substr(k.key, 12)) "
    "ELSE coalesce((SELECT name FROM regions WHERE code = substr(k.key, 6) ORDER BY version_id DESC LIMIT 1), "
    "(SELECT name FROM grids WHERE code = substr(k.key, 6) ORDER BY version_id DESC LIMIT 1)) END)",
}
COLUMNS = ("key", "name", "events")


def event_counts(session: Session, by: CountBy, where: Condition) -> list[dict]:
    """One row per key with its number of events, in key order (events with no key count under null)."""
    name = NAMES.get(by, "NULL")
    sql = f"""
        SELECT k.key, {name} AS name, k.events
          FROM (SELECT {KEYS[by]} AS key, count(*) AS events FROM events e WHERE {where.sql} GROUP BY 1) k
         ORDER BY k.key NULLS LAST
    """
    return [dict(r._mapping) for r in session.execute(text(sql), where.params)]
