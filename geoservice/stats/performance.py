"""How well the loop runs: on-time rate, handling time (mean, p90), reopen rate, satisfaction.

Definitions (docs/stats.md says the same):

* handled — the event reached ``handled`` at least once (``handled_at`` set);
* on-time rate — handled events with ``handled_at <= handle_due_at``, among handled events that
  have a handling deadline;
* handling time — ``handled_at − dispatched_at`` in hours (from the last dispatch to the last
  feedback: the time the department had the event in hand), over handled events dispatched first;
* reopen rate — handled events reopened at least once, among handled events;
* satisfaction — mean of the 1–5 evaluations given;
* supervision (督办) — orders received on the group's events, answered on time (replied by the
  reply deadline), and overdue (answered late, or unanswered past the deadline now).
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.stats.filters import Condition

GroupBy = Literal["none", "town", "community", "department", "category"]
GROUP_KEYS = {
    "none": "NULL::text",
    "town": "e.town_code",
    "community": "e.community_code",
    "department": "e.department_code",
    "category": "e.category_code",
}
COLUMNS = ("key", "events", "handled", "on_time", "on_time_rate", "mean_handling_h", "p90_handling_h",
           "reopened", "reopen_rate", "evaluated", "mean_satisfaction", "supervision_orders",
           "supervision_on_time", "supervision_overdue")  # fmt: skip

_HANDLING_H = "extract(epoch FROM e.handled_at - e.dispatched_at) / 3600.0"
_TIMED = "e.handled_at IS NOT NULL AND e.dispatched_at IS NOT NULL AND e.handled_at >= e.dispatched_at"
FIGURES_SQL = f"""
    SELECT {{key}} AS key,
           count(*) AS events,
           count(*) FILTER (WHERE e.handled_at IS NOT NULL) AS handled,
           count(*) FILTER (WHERE e.handled_at IS NOT NULL AND e.handle_due_at IS NOT NULL) AS with_deadline,
           count(*) FILTER (WHERE e.handled_at <= e.handle_due_at) AS on_time,
           avg({_HANDLING_H}) FILTER (WHERE {_TIMED}) AS mean_handling_h,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY {_HANDLING_H}) FILTER (WHERE {_TIMED}) AS p90_handling_h,
           count(*) FILTER (WHERE e.handled_at IS NOT NULL AND e.reopen_count > 0) AS reopened,
           count(e.satisfaction) AS evaluated,
           avg(e.satisfaction)::float8 AS mean_satisfaction,
           coalesce(sum(so.orders), 0)::int AS supervision_orders,
           coalesce(sum(so.on_time), 0)::int AS supervision_on_time,
           coalesce(sum(so.overdue), 0)::int AS supervision_overdue
      FROM events e
      LEFT JOIN LATERAL (
           SELECT count(*) AS orders,
                  count(*) FILTER (WHERE o.replied_at <= o.reply_due_at) AS on_time,
                  count(*) FILTER (WHERE coalesce(o.replied_at, now()) > o.reply_due_at) AS overdue
             FROM supervision_orders o WHERE o.event_id = e.id) AS so ON TRUE
     WHERE {{where}}
     GROUP BY 1
     ORDER BY 1 NULLS LAST
"""


def performance(session: Session, where: Condition, by: GroupBy = "none") -> list[dict]:
    """The figures per group (one row with key null when ``by`` is ``none``)."""
    sql = FIGURES_SQL.format(key=GROUP_KEYS[by], where=where.sql)
    rows = [with_rates(dict(r._mapping)) for r in session.execute(text(sql), where.params)]
    if by == "none" and not rows:
        rows = [with_rates({"key": None, "events": 0, "handled": 0, "with_deadline": 0, "on_time": 0,
                            "mean_handling_h": None, "p90_handling_h": None, "reopened": 0, "evaluated": 0,
                            "mean_satisfaction": None, "supervision_orders": 0, "supervision_on_time": 0,
                            "supervision_overdue": 0})]  # fmt: skip
    return rows


def with_rates(row: dict) -> dict:
    """Add the two rates; a rate over nothing is null, never a made-up 0 or 1."""
    with_deadline = row.pop("with_deadline")
    row["on_time_rate"] = row["on_time"] / with_deadline if with_deadline else None
    row["reopen_rate"] = row["reopened"] / row["handled"] if row["handled"] else None
    for key in ("mean_handling_h", "p90_handling_h", "mean_satisfaction"):
        row[key] = None if row[key] is None else float(row[key])
    return {c: row[c] for c in COLUMNS}
