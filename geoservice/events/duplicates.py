"""Possible duplicates of a report: open events of the same category family, near and recent.

"Near" and "recent" are the reported category's ``duplicate_radius_m`` (50 m by default) and
``duplicate_window_hours`` (72 h) from ``categories``. Distances are metres on the spheroid
(``geography``), served by the ``ix_events_geography`` GiST index through ``ST_DWithin``; never
degrees. The family of a category is its class (the parent), so 垃圾乱堆 finds 占道经营 of the same
class 城市管理; a class reported directly is its own family.

Who sees what: staff get the events of their own scope (``auth.scope``) with category, status and
time; the public (anonymous, signed in, Open311 clients) learns only ids and distances, and only of
reports Open311 already publishes (citizen and hotline reports, not sensitive categories), so the
answer leaks nothing the public API does not already show.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.auth.scope import Scope, scope_sql
from geoservice.events.workflow import OPEN_STATES

MAX_DUPLICATES = 20
PUBLIC_SOURCES = ("public", "hotline_12345")  # what Open311 publishes (open311.requests)

SEARCH = text(
    "SELECT coalesce(parent_code, code) AS family, duplicate_radius_m AS radius_m, "
    "duplicate_window_hours AS window_hours FROM categories WHERE code = :category"
)
# The radius and window are bound as values (read first with SEARCH), so that the planner sees a
# constant radius and serves ``ST_DWithin`` from the ``ix_events_geography`` index.
NEAR = """
    SELECT e.id, ST_Distance(geography(e.geom), geography(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))) AS distance_m,
           e.category_code AS category, e.status, e.reported_at
      FROM events e JOIN categories ec ON ec.code = e.category_code
     WHERE ST_DWithin(geography(e.geom), geography(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)), :radius_m)
       AND coalesce(ec.parent_code, ec.code) = :family
       AND e.status = ANY(:open)
       AND e.reported_at >= :since
       AND e.id <> :exclude
       AND {where}
     ORDER BY distance_m, e.id
     LIMIT :limit
"""


def possible_duplicates(
    session: Session,
    *,
    lon: float,
    lat: float,
    category_code: str,
    now: datetime,
    scope: Scope | None,
    exclude_id: int = 0,
) -> list[dict[str, Any]]:
    """Open events of ``category_code``'s family near (lon, lat) WGS84, nearest first.

    ``scope`` None means the public: ids and distances of published reports only; otherwise the
    events of that scope with ``category``, ``status`` and ``reported_at``.
    """
    search = session.execute(SEARCH, {"category": category_code}).first()
    if search is None:
        return []
    where, params = _visible(scope)
    rows = session.execute(
        text(NEAR.format(where=where)),
        {**params, "lon": lon, "lat": lat, "family": search.family, "radius_m": search.radius_m,
         "since": now - timedelta(hours=search.window_hours), "open": sorted(OPEN_STATES), "exclude": exclude_id,
         "limit": MAX_DUPLICATES},
    )  # fmt: skip
    return [_found(row, scope) for row in rows]


# The same search for many reports at once (the intake's batch): each report's point, category and
# instant come in one JSON array; ``LATERAL`` runs the per-report search, each with its own radius,
# served by the same index. ``later`` are the batch's own events stored after this one: a report
# of the batch sees those stored before it, as if the batch's reports had come one after another.
NEAR_MANY = """
    SELECT i.ord, d.id, d.distance_m, d.category, d.status, d.reported_at
      FROM jsonb_to_recordset(CAST(:items AS jsonb)) AS i(ord integer, lon float8, lat float8, category text,
                                                          now timestamptz, exclude bigint, later bigint[])
      JOIN categories c ON c.code = i.category
     CROSS JOIN LATERAL (
        SELECT e.id,
               ST_Distance(geography(e.geom), geography(ST_SetSRID(ST_MakePoint(i.lon, i.lat), 4326))) AS distance_m,
               e.category_code AS category, e.status, e.reported_at
          FROM events e JOIN categories ec ON ec.code = e.category_code
         WHERE ST_DWithin(geography(e.geom), geography(ST_SetSRID(ST_MakePoint(i.lon, i.lat), 4326)),
                          c.duplicate_radius_m)
           AND coalesce(ec.parent_code, ec.code) = coalesce(c.parent_code, c.code)
           AND e.status = ANY(:open)
           AND e.reported_at >= i.now - c.duplicate_window_hours * interval '1 hour'
           AND e.id <> i.exclude
           AND e.id <> ALL(i.later)
           AND {where}
         ORDER BY distance_m, e.id
         LIMIT :limit
     ) AS d
     ORDER BY i.ord, d.distance_m, d.id
"""


@dataclass(frozen=True)
class DuplicateQuery:
    """One report's duplicate search: its point (WGS84), category, instant, own id and the batch's later ids."""

    lon: float
    lat: float
    category_code: str
    now: datetime
    exclude_id: int
    later_ids: tuple[int, ...] = ()


def possible_duplicates_many(
    session: Session, queries: list[DuplicateQuery], scope: Scope | None
) -> list[list[dict[str, Any]]]:
    """``possible_duplicates`` of each query (all in the same ``scope``) in one round trip, in order."""
    if not queries:
        return []
    where, params = _visible(scope)
    items = json.dumps([
        {"ord": k, "lon": q.lon, "lat": q.lat, "category": q.category_code, "now": q.now.isoformat(),
         "exclude": q.exclude_id, "later": list(q.later_ids)}
        for k, q in enumerate(queries)
    ])  # fmt: skip
    found: list[list[dict[str, Any]]] = [[] for _ in queries]
    rows = session.execute(
        text(NEAR_MANY.format(where=where)),
        {**params, "items": items, "open": sorted(OPEN_STATES), "limit": MAX_DUPLICATES},
    )
    for row in rows:
        found[row.ord].append(_found(row, scope))
    return found


def duplicates_of(session: Session, event: dict[str, Any], scope: Scope, now: datetime) -> list[dict[str, Any]]:
    """Possible duplicates of a stored event (``GET /v1/events/{id}/duplicates``), in ``scope``.

    The window counts back from the event's own report, so an old report still finds the ones that
    were open beside it then and now.
    """
    moment = min(now, event["reported_at"]) if event.get("reported_at") else now
    return possible_duplicates(
        session, lon=event["lon"], lat=event["lat"], category_code=event["category_code"], now=moment, scope=scope,
        exclude_id=event["id"],
    )  # fmt: skip


def _visible(scope: Scope | None) -> tuple[str, dict[str, Any]]:
    """The events a search may show: the caller's scope, or for the public the published reports only."""
    if scope is None:
        return "e.source = ANY(:sources) AND NOT ec.sensitive", {"sources": list(PUBLIC_SOURCES)}
    return scope_sql(scope)


def _found(row: Any, scope: Scope | None) -> dict[str, Any]:
    """One possible duplicate as the caller may see it: the public its id and distance, staff more."""
    item = {"id": row.id, "distance_m": round(row.distance_m, 1)}
    if scope is not None:
        item.update(category=row.category, status=row.status, reported_at=row.reported_at)
    return item
