"""The monthly ranking of towns or communities by the governance index (``geoservice.stats.index``).

Units are the regions of the level in the boundary version in force that the caller's scope
touches; the month is the city's local calendar month of the report time. Figures are those of the
events reported that month, as they stand now (an event reported in March and handled in April
counts for March).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.stats.filters import LOCAL_TZ, Condition, time_window
from geoservice.stats.index import Ranked, UnitFigures, rank_units
from geoservice.stats.performance import performance

Level = Literal["town", "community"]
COLUMNS = ("rank", "code", "name", "index", "events", "on_time_rate", "mean_satisfaction", "reopen_rate",
           "incidence", "incidence_per", "population", "area_km2", "supervision_orders",
           "supervision_overdue", "duties_total", "duties_overdue")  # fmt: skip

# Units whose events the region :r (null: the whole city) may count: its own subtree, and the
# ancestors that contain it (a community's town is ranked on that community's events alone).
UNITS_SQL = """
    WITH r AS (SELECT code, parent_code, level FROM regions WHERE version_id = :v AND code = :r),
         units AS (
           SELECT u.code, u.name, u.geom FROM regions u
            WHERE u.version_id = :v AND u.level = :level
              AND (CAST(:r AS text) IS NULL OR (SELECT level FROM r) = 'city' OR u.code = :r OR u.parent_code = :r
                   OR u.code = (SELECT parent_code FROM r)))
    SELECT u.code, u.name, ST_Area(u.geom::geography) / 1e6 AS area_km2,
           (SELECT coalesce(sum(p.count), 0) FROM population p WHERE ST_Covers(u.geom, p.geom)) AS population
      FROM units u ORDER BY u.code
"""


def month_window(month: str) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) of ``YYYY-MM`` in the city's time zone."""
    year, mon = (int(p) for p in month.split("-"))
    tz = ZoneInfo(LOCAL_TZ)
    start = datetime(year, mon, 1, tzinfo=tz)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=tz)
    return start, end


def monthly_ranking(
    session: Session, version_id: int, month: str, level: Level, where: Condition, regions: list[str | None]
) -> tuple[list[Ranked], dict[str, float], str]:
    """The ranking, each unit's population and area, and what incidence is counted per.

    ``regions`` are the region codes the caller is limited to (their scope and the one asked for).
    """
    units: dict[str, dict] = {}
    for i, region in enumerate(regions or [None]):
        rows = session.execute(text(UNITS_SQL), {"v": version_id, "level": level, "r": region}).all()
        found = {r.code: dict(r._mapping) for r in rows}
        units = found if i == 0 else {c: u for c, u in units.items() if c in found}
    since, until = month_window(month)
    figures = {r["key"]: r for r in performance(session, where & time_window(since, until), by=level)}
    with_people = any(u["population"] > 0 for u in units.values())
    per = "10k residents" if with_people else "km²"
    ranked_input = []
    for code, unit in units.items():
        f = figures.get(code, {})
        events = f.get("events", 0)
        incidence = events / unit["population"] * 10_000 if with_people and unit["population"] else (
            events / unit["area_km2"] if unit["area_km2"] else 0.0)  # fmt: skip
        ranked_input.append(UnitFigures(code, unit["name"], events, f.get("on_time_rate"),
                                        f.get("mean_satisfaction"), f.get("reopen_rate"), incidence,
                                        f.get("supervision_orders", 0), f.get("supervision_overdue", 0)))  # fmt: skip
    return rank_units(ranked_input), units, per


def ranking_rows(
    ranked: list[Ranked], units: dict[str, dict], per: str, duties: dict[str, tuple[int, int]] | None = None
) -> list[dict]:
    """Flat rows for JSON and CSV.

    ``duties``: each unit's duty-list pairs and those overdue *now*, (total, overdue) (a visit is owed today, whatever
    the month ranked); they stand beside the index, outside its formula. None (or a unit missing)
    when the caller counts no duties.
    """
    duties = duties or {}
    return [
        {"rank": r.rank, "code": r.unit.code, "name": r.unit.name, "index": r.index, "events": r.unit.events,
         "on_time_rate": r.unit.on_time_rate, "mean_satisfaction": r.unit.mean_satisfaction,
         "reopen_rate": r.unit.reopen_rate, "incidence": round(r.unit.incidence, 4), "incidence_per": per,
         "population": float(units[r.unit.code]["population"]), "area_km2": round(units[r.unit.code]["area_km2"], 4),
         "supervision_orders": r.unit.supervision_orders, "supervision_overdue": r.unit.supervision_overdue,
         "duties_total": duties[r.unit.code][0] if r.unit.code in duties else None,
         "duties_overdue": duties[r.unit.code][1] if r.unit.code in duties else None,
         "components": r.components}  # fmt: skip
        for r in ranked
    ]
