"""Overdue duties counted over a region: the dispatcher's warnings and the assessment's figures.

A worker's own list (``duties.my_duties``) walks their units in Python; a town or a city has
thousands of grids × a duty list of a hundred items, so here the same rule — overdue when the last
visit is more than a cycle ago or there was none (red), due soon in the cycle's last quarter
(yellow) — runs as one SQL statement grouped by community and town.

Key people's visits count too, each person a pair of its own due by the person's visit cycle, in
the person's grid's community and town: one more branch of the same statement (an index on
``visits (key_person_id, visited_at)`` answers each person's last visit). Only counts leave here,
never a person, so nothing is logged as a read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.auth.scope import Scope, region_prefix
from geoservice.field.duties import DUE_SOON


@dataclass(frozen=True)
class DutyCounts:
    """Duty × unit pairs of one area, by warning colour."""

    total: int = 0
    red: int = 0
    yellow: int = 0
    people_total: int = 0  # of which key people's visits
    people_red: int = 0
    people_yellow: int = 0

    def as_dict(self) -> dict[str, Any]:
        people = {"red": self.people_red, "yellow": self.people_yellow, "total": self.people_total}
        return {"red": self.red, "yellow": self.yellow, "total": self.total, "key_people": people}


STATUS_SQL = """
    WITH d AS (
        SELECT * FROM unnest(CAST(:codes AS text[]), CAST(:levels AS text[]), CAST(:days AS integer[]),
                             CAST(:prefixes AS text[])) AS d(code, level, every_days, prefix)
    ), units AS (
        SELECT 'grid' AS level, g.code, g.community_code AS community, c.parent_code AS town
          FROM grids g LEFT JOIN regions c ON c.version_id = g.version_id AND c.code = g.community_code
         WHERE g.version_id = :version
        UNION ALL
        SELECT 'community', r.code, r.code, r.parent_code FROM regions r
         WHERE r.version_id = :version AND r.level = 'community'
    ), pairs AS (
        SELECT u.community, u.town, d.every_days, false AS person,
               (SELECT max(v.visited_at) FROM visits v WHERE v.duty_code = d.code AND v.unit_code = u.code) AS last
          FROM d JOIN units u ON u.level = d.level AND u.code LIKE d.prefix || '%' AND u.code LIKE :scope
        UNION ALL
        SELECT g.community_code, c.parent_code, kp.visit_cycle_days, true,
               (SELECT max(v.visited_at) FROM visits v WHERE v.key_person_id = kp.id)
          FROM key_people kp
          LEFT JOIN grids g ON g.version_id = :version AND g.code = kp.grid_code
          LEFT JOIN regions c ON c.version_id = :version AND c.code = g.community_code
         WHERE kp.grid_code LIKE :scope
    ), judged AS (
        SELECT community, town, person,
               last IS NULL OR last + make_interval(days => every_days) < :now AS red,
               last + make_interval(days => every_days) >= :now
                 AND last + make_interval(days => every_days) - :now <= make_interval(days => every_days) * :soon
                 AS yellow
          FROM pairs
    )
    SELECT {key} AS key, count(*) AS total, count(*) FILTER (WHERE red) AS red,
           count(*) FILTER (WHERE yellow) AS yellow, count(*) FILTER (WHERE person) AS people_total,
           count(*) FILTER (WHERE person AND red) AS people_red,
           count(*) FILTER (WHERE person AND yellow) AS people_yellow
      FROM judged GROUP BY 1
"""
KEYS = {"all": "''", "community": "community", "town": "town"}


def duty_counts(
    session: Session, version_id: int, scope: Scope, now: datetime, by: str = "all"
) -> dict[str, DutyCounts]:
    """Counts per community or town (``by``), or ``{"": counts}`` for the whole scope.

    Duties are the grids' and communities' own affairs: a caller who sees every event counts the
    city's, a region-scoped one their subtree's; department and public scopes count none.
    """
    if scope.everything:
        prefix = ""
    elif scope.region_prefix is not None:
        prefix = scope.region_prefix
    else:
        return {}
    duties = session.execute(text("SELECT code, level, every_days, region_code FROM duties ORDER BY code")).all()
    rows = session.execute(
        text(STATUS_SQL.format(key=KEYS[by])),
        {"codes": [d.code for d in duties], "levels": [d.level for d in duties],
         "days": [d.every_days for d in duties],
         "prefixes": [region_prefix(d.region_code) if d.region_code else "" for d in duties],
         "version": version_id, "scope": prefix + "%", "now": now, "soon": DUE_SOON},
    ).all()  # fmt: skip
    return {
        r.key: DutyCounts(r.total, r.red, r.yellow, r.people_total, r.people_red, r.people_yellow)
        for r in rows
        if r.key is not None
    }
