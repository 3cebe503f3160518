"""Event counts grouped by one dimension: a region level, category, status, or a local day/week/month."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.stats.filters import LOCAL_TZ, Condition

CountBy = Literal["town", "community", "grid", "category", "status", "owner", "day", "week", "month"]

KEYS: dict[str, str] = {
    "town": "e.town_code",
    "community": "e.community_code",
    "grid": "e.grid_code",
    "category": "e.category_code",
    "status": "e.status",
    "owner": "(e.owner_kind || ':' || e.owner_code)",  # unit:<region or grid code>, department:<code>
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


# Day, week and month: events are first counted per quarter hour of UTC (plain arithmetic on the
# epoch), and only those groups are put in local periods and formatted. Time zone offsets are whole
# quarter hours, so a quarter hour never straddles a local midnight; ``AT TIME ZONE`` and
# ``to_char`` once per event were most of the time of a count by month over a million events.
QUARTER_HOUR_S = 900
PERIODS: dict[str, tuple[str, str]] = {
    "day": ("day", "YYYY-MM-DD"),
    "week": ("week", 'IYYY-"W"IW'),  # date_trunc's week starts on Monday, as the ISO week does
    "month": ("month", "YYYY-MM"),
}


def event_counts(session: Session, by: CountBy, where: Condition) -> list[dict]:
    """One row per key with its number of events, in key order (events with no key count under null)."""
    name = NAMES.get(by, "NULL")
    if by in PERIODS:
        unit, pattern = PERIODS[by]
        local = f"(to_timestamp(q.quarter * {QUARTER_HOUR_S}) AT TIME ZONE '{LOCAL_TZ}')"
        grouped = f"""
            SELECT to_char(date_trunc('{unit}', {local}), '{pattern}') AS key, sum(q.events)::bigint AS events
              FROM (SELECT floor(date_part('epoch', e.reported_at) / {QUARTER_HOUR_S}) AS quarter, count(*) AS events
                      FROM events e WHERE {where.sql} GROUP BY 1) q
             GROUP BY 1"""
    else:
        grouped = f"SELECT {KEYS[by]} AS key, count(*) AS events FROM events e WHERE {where.sql} GROUP BY 1"
    sql = f"""
        SELECT k.key, {name} AS name, k.events
          FROM ({grouped}) k
         ORDER BY k.key NULLS LAST
    """
    return [dict(r._mapping) for r in session.execute(text(sql), where.params)]
