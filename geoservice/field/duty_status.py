"""Overdue duties counted over a region: the dispatcher's warnings and the assessment's figures.

A worker's own list (``duties.my_duties``) walks their units in Python; a town or a city has
thousands of grids × a duty list of a hundred items, so here the same rule — overdue when the last
visit is more than a cycle ago or there was none (red), due soon in the cycle's last quarter
(yellow) — runs as one SQL statement grouped by community and town.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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

    def as_dict(self) -> dict[str, int]:
        return {"red": self.red, "yellow": self.yellow, "total": self.total}


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
        SELECT u.community, u.town, d.every_days,
               (SELECT max(v.visited_at) FROM visits v WHERE v.duty_code = d.code AND v.unit_code = u.code) AS last
          FROM d JOIN units u ON u.level = d.level AND u.code LIKE d.prefix || '%' AND u.code LIKE :scope
    )
    SELECT {key} AS key, count(*) AS total,
           count(*) FILTER (WHERE last IS NULL OR last + make_interval(days => every_days) < :now) AS red,
           count(*) FILTER (WHERE last + make_interval(days => every_days) >= :now
                              AND last + make_interval(days => every_days) - :now
                                  <= make_interval(days => every_days) * :soon) AS yellow
      FROM pairs GROUP BY 1
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
    if not duties:
        return {}
    rows = session.execute(
        text(STATUS_SQL.format(key=KEYS[by])),
        {"codes": [d.code for d in duties], "levels": [d.level for d in duties],
         "days": [d.every_days for d in duties],
         "prefixes": [region_prefix(d.region_code) if d.region_code else "" for d in duties],
         "version": version_id, "scope": prefix + "%", "now": now, "soon": DUE_SOON},
    ).all()  # fmt: skip
    return {r.key: DutyCounts(r.total, r.red, r.yellow) for r in rows if r.key is not None}
