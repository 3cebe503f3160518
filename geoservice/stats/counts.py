"""Event counts grouped by one dimension: a region level, category, status, or a local day/week/month."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.auth.scope import Scope, grouped_scope_sql, scope_of
from geoservice.auth.users import Principal
from geoservice.stats.filters import LOCAL_TZ, Condition, time_window
from geoservice.stats.scope import scope_condition

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


# ``event_month_counts`` (migration 0019): events per local month, town, community, the first 12
# characters of their place and leading department; the triggers that keep it exact write the same
# zone as LOCAL_TZ. Each key as the groups hold it, and as it is read from an event.
MONTHLY_KEYS: dict[str, tuple[str, str]] = {
    "town": ("e.town_code", "e.town_code"),
    "community": ("e.community_code", "e.community_code"),
    "month": ("to_char(e.month, 'YYYY-MM')", f"to_char(e.reported_at AT TIME ZONE '{LOCAL_TZ}', 'YYYY-MM')"),
}
PLACE_PREFIX_LENGTH = 12


def monthly_counts(
    session: Session,
    by: CountBy,
    scope: Scope,
    since: datetime | None,
    until: datetime | None,
    region: Condition,
    region_code: str | None,
) -> list[dict] | None:
    """``event_counts`` read from the monthly groups, or None where they cannot give the same answer.

    They can for counts by town, community or month, in a scope of a community or wider, all, or a
    department (plus the events it co-handles, read from ``events``: a few live tasks); for a region
    of a community or wider; in a window whose ends are local month starts: tens of thousands of
    rows where the events are a million. ``region`` is ``region_subtree``'s condition, which for such
    a region names only town and community codes, columns the groups share with ``events`` (both
    are read as ``e``).
    """
    scope_where = grouped_scope_sql(scope, PLACE_PREFIX_LENGTH)
    since_month, until_month = (_month_start(m) if m is not None else None for m in (since, until))
    unaligned = (since is not None and since_month is None) or (until is not None and until_month is None)
    too_narrow = region_code is not None and len(region_code) > PLACE_PREFIX_LENGTH
    if by not in MONTHLY_KEYS or scope_where is None or unaligned or too_narrow:
        return None
    in_groups, beyond_groups, scope_params = scope_where
    group_key, event_key = MONTHLY_KEYS[by]
    grouped = Condition(in_groups, scope_params) & region & time_window(since_month, until_month, "e.month", "month_")
    parts = [f"SELECT {group_key} AS key, e.events FROM event_month_counts e WHERE {grouped.sql}"]
    params = grouped.params
    if beyond_groups is not None:
        beyond = Condition(beyond_groups, scope_params) & region & time_window(since, until)
        parts.append(f"SELECT {event_key} AS key, 1 AS events FROM events e WHERE {beyond.sql}")
        params = {**params, **beyond.params}
    sql = f"""
        SELECT k.key, {NAMES.get(by, "NULL")} AS name, k.events
          FROM (SELECT p.key, sum(p.events)::bigint AS events FROM ({" UNION ALL ".join(parts)}) p
                 GROUP BY 1 HAVING sum(p.events) > 0) k
         ORDER BY k.key NULLS LAST
    """
    return [dict(r._mapping) for r in session.execute(text(sql), params)]


def counts_in_scope(
    session: Session,
    by: CountBy,
    principal: Principal,
    since: datetime | None,
    until: datetime | None,
    region: Condition,
    region_code: str | None,
) -> list[dict]:
    """What ``/v1/stats/counts`` answers: from the monthly groups where they can say it, else from the events."""
    rows = monthly_counts(session, by, scope_of(principal), since, until, region, region_code)
    if rows is not None:
        return rows
    return event_counts(session, by, scope_condition(principal) & time_window(since, until) & region)


def _month_start(moment: datetime) -> date | None:
    """The local date of ``moment`` if it is the first instant of a local month, else None."""
    local = moment.astimezone(ZoneInfo(LOCAL_TZ))
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return local.date() if local == first else None
