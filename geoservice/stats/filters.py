"""Which events a statistic counts: a time window, a region subtree, and the caller's scope.

Each part becomes a SQL condition on ``events e`` with bound parameters, so the aggregate queries
stay one statement each and the scope is applied exactly where the lists apply it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.boundaries.units import HINT, UnknownRegion

LOCAL_TZ = "Asia/Shanghai"  # days, weeks and months are the city's, as its people count them


@dataclass(frozen=True)
class Condition:
    """A SQL boolean over ``events e`` and the parameters it binds (names are unique per part)."""

    sql: str = "true"
    params: dict[str, Any] = field(default_factory=dict)

    def __and__(self, other: Condition) -> Condition:
        return Condition(f"({self.sql}) AND ({other.sql})", {**self.params, **other.params})


def time_window(
    since: datetime | date | None, until: datetime | date | None, column: str = "e.reported_at", name: str = ""
) -> Condition:
    """Events reported in [since, until): the report time is when the city learnt of it.

    ``column``/``name``: the same window over another column (the local month of the monthly
    groups), its parameters named apart so that both can stand in one statement.
    """
    parts, params = [], {}
    if since is not None:
        parts.append(f"{column} >= :{name}since")
        params[f"{name}since"] = since
    if until is not None:
        parts.append(f"{column} < :{name}until")
        params[f"{name}until"] = until
    return Condition(" AND ".join(parts) or "true", params)


def region_subtree(session: Session, code: str | None, name: str = "region") -> Condition:
    """Events in a region's subtree (city, town, community) or in one grid, by the codes routed onto them.

    The level is read from the regions of any boundary version, so a code retired by a redraw still
    answers for the events routed to it while it was in force.
    """
    if code is None:
        return Condition()
    if len(code) == 15:
        found = session.execute(text("SELECT 1 FROM grids WHERE code = :c LIMIT 1"), {"c": code}).first()
        if not found:
            raise UnknownRegion(f"no grid has code {code!r}")
        return Condition(f"e.grid_code = :{name}", {name: code})
    level = session.execute(
        text("SELECT level::text FROM regions WHERE code = :c ORDER BY version_id DESC LIMIT 1"), {"c": code}
    ).scalar()
    if level is None:
        raise UnknownRegion(f"no region has code {code!r} ({HINT})")
    if level == "town":
        return Condition(f"e.town_code = :{name}", {name: code})
    if level == "community":
        return Condition(f"e.community_code = :{name}", {name: code})
    return Condition(f"e.town_code IN (SELECT code FROM regions WHERE parent_code = :{name})", {name: code})


def grid_subtree(session: Session, code: str | None, name: str = "grid_region") -> Condition:
    """Grids (``grids g``) inside a region's subtree, or the one grid of a 15-digit code."""
    if code is None:
        return Condition()
    if len(code) == 15:
        return Condition(f"g.code = :{name}", {name: code})
    level = session.execute(
        text("SELECT level::text FROM regions WHERE code = :c ORDER BY version_id DESC LIMIT 1"), {"c": code}
    ).scalar()
    if level is None:
        raise UnknownRegion(f"no region has code {code!r} ({HINT})")
    if level == "community":
        return Condition(f"g.community_code = :{name}", {name: code})
    if level == "town":
        sql = (
            "g.community_code IN (SELECT r.code FROM regions r "
            f"WHERE r.version_id = g.version_id AND r.parent_code = :{name})"
        )
        return Condition(sql, {name: code})
    return Condition()
