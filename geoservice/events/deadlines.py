"""Deadlines and the red/yellow/blue warnings (红黄蓝三色预警).

Two clocks run in an event's life: *accept* (from the report until someone accepts or rejects it)
and *handle* (from dispatch until the handler feeds back). Their lengths are data (the ``deadlines``
table, per category and priority); the warning colour is a pure function of the running clock, used
on read, in list filters (the same rule in SQL) and by the sweep.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.settings import EventSettings

COLOURS = ("none", "blue", "yellow", "red")
ACCEPT_CLOCK_STATES = frozenset({"reported"})
HANDLE_CLOCK_STATES = frozenset({"dispatched", "handling", "reopened"})

# Exact category, else its class, else the category's own hours × the priority factor: one
# candidate query, written once for a single lookup (``:c``, ``:p``) and for a batch's pairs (``k.c``, ``k.p``).
CANDIDATES = """
    SELECT accept_hours, handle_hours FROM (
        SELECT 1 AS rank, accept_hours, handle_hours FROM deadlines WHERE category_code = {c} AND priority = {p}
        UNION ALL
        SELECT 2, d.accept_hours, d.handle_hours FROM deadlines d
          JOIN categories c ON d.category_code = c.parent_code WHERE c.code = {c} AND d.priority = {p}
        UNION ALL
        SELECT 3, c.accept_hours * coalesce(f.accept_hours, 1), c.handle_hours * coalesce(f.handle_hours, 1)
          FROM categories c LEFT JOIN deadlines f ON f.category_code IS NULL AND f.priority = {p}
         WHERE c.code = {c}
    ) AS candidates ORDER BY rank LIMIT 1
"""
LOOKUP = text(CANDIDATES.format(c=":c", p=":p"))
LOOKUP_MANY = text(
    "SELECT k.c, k.p, h.accept_hours, h.handle_hours "
    "FROM jsonb_to_recordset(CAST(:pairs AS jsonb)) AS k(c text, p text) "
    f"CROSS JOIN LATERAL ({CANDIDATES.format(c='k.c', p='k.p')}) AS h"
)


@dataclass(frozen=True)
class DeadlineHours:
    """How long accepting and handling may take for one category and priority."""

    accept_hours: float
    handle_hours: float

    def accept_due(self, start: datetime) -> datetime:
        return start + timedelta(hours=self.accept_hours)

    def handle_due(self, start: datetime) -> datetime:
        return start + timedelta(hours=self.handle_hours)


@dataclass(frozen=True)
class Clock:
    """The deadline running now: which one, since when, until when."""

    kind: str  # "accept" | "handle"
    started_at: datetime
    due_at: datetime


def deadline_hours(session: Session, category_code: str, priority: str) -> DeadlineHours | None:
    """Exact category, else its parent class, else the category's own hours × the priority factor."""
    row = session.execute(LOOKUP, {"c": category_code, "p": priority}).first()
    return None if row is None else DeadlineHours(float(row.accept_hours), float(row.handle_hours))


def deadline_hours_many(session: Session, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], DeadlineHours]:
    """``deadline_hours`` of every (category, priority) pair in one round trip; unknown categories are absent.

    The intake asks this once per batch of reports rather than once per report.
    """
    if not pairs:
        return {}
    rows = session.execute(LOOKUP_MANY, {"pairs": json.dumps([{"c": c, "p": p} for c, p in sorted(pairs)])})
    return {(r.c, r.p): DeadlineHours(float(r.accept_hours), float(r.handle_hours)) for r in rows}


def running_clock(event: dict[str, Any]) -> Clock | None:
    """The clock an event in its current state runs against, if any (None once it is handled)."""
    status = event["status"]
    if status in ACCEPT_CLOCK_STATES and event.get("accept_due_at"):
        return Clock("accept", event["reported_at"], event["accept_due_at"])
    if status in HANDLE_CLOCK_STATES and event.get("handle_due_at") and event.get("dispatched_at"):
        return Clock("handle", event["dispatched_at"], event["handle_due_at"])
    return None


def warning_colour(clock: Clock | None, now: datetime, settings: EventSettings) -> str:
    """The colour (none, blue, yellow, red) by the share of the deadline used up; red also means overdue by default."""
    if clock is None:
        return "none"
    span = (clock.due_at - clock.started_at).total_seconds()
    used = (now - clock.started_at).total_seconds() / span if span > 0 else float("inf")
    if used >= settings.warning_red or now >= clock.due_at:
        return "red"
    if used >= settings.warning_yellow:
        return "yellow"
    if used >= settings.warning_blue:
        return "blue"
    return "none"


def is_overdue(clock: Clock | None, now: datetime) -> bool:
    """Past the due time of the running clock."""
    return clock is not None and now >= clock.due_at


# The states whose clock runs (``warning_sql``'s first branch): only these can be blue, yellow or red.
CLOCKED_STATUSES = ("reported", "dispatched", "handling", "reopened")


def warning_sql(settings: EventSettings, alias: str = "e") -> str:
    """The same colour rule as ``warning_colour``, as a SQL expression over ``alias`` and ``:now``.

    Thresholds are the process's settings (numbers, not user input), so they are inlined.
    """
    accept = f"{alias}.status = 'reported' AND {alias}.accept_due_at IS NOT NULL"
    handle = (
        f"{alias}.status IN ('dispatched', 'handling', 'reopened') "
        f"AND {alias}.handle_due_at IS NOT NULL AND {alias}.dispatched_at IS NOT NULL"
    )
    start = f"(CASE WHEN {accept} THEN {alias}.reported_at WHEN {handle} THEN {alias}.dispatched_at END)"
    due = f"(CASE WHEN {accept} THEN {alias}.accept_due_at WHEN {handle} THEN {alias}.handle_due_at END)"
    # date_part is float8 (extract is numeric since PostgreSQL 14): cheaper, and it divides as Python does.
    used = (
        f"(date_part('epoch', CAST(:now AS timestamptz) - {start}) "
        f"/ nullif(date_part('epoch', {due} - {start}), 0))"
    )
    blue, yellow, red = float(settings.warning_blue), float(settings.warning_yellow), float(settings.warning_red)
    # The first branch only saves work: most events are closed, and for them it decides at once.
    return (
        f"(CASE WHEN {alias}.status NOT IN {CLOCKED_STATUSES!r} THEN 'none' "
        f"WHEN {due} IS NULL THEN 'none' "
        f"WHEN CAST(:now AS timestamptz) >= {due} OR coalesce({used}, 'Infinity') >= {red} THEN 'red' "
        f"WHEN {used} >= {yellow} THEN 'yellow' WHEN {used} >= {blue} THEN 'blue' ELSE 'none' END)"
    )
