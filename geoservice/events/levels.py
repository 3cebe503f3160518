"""Deadlines of the escalation ladder: how long community, town and city have once an event reaches them.

The city pack's ``[escalation.<level>]`` tables, stored in ``escalation_levels``.

A level the pack does not configure uses ``DEFAULT_LEVEL_HOURS`` for the accept clock escalation
restarts; a dispatch uses a level's handling hours only when the city configured them, otherwise the
category's own (the category knows how long a job takes; the default ladder only says how quickly a
higher level must pick it up).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.events.deadlines import DeadlineHours

LEVELS_WITH_HOURS = ("community", "town", "city")
DEFAULT_LEVEL_HOURS = {
    "community": DeadlineHours(24, 72),
    "town": DeadlineHours(24, 120),
    "city": DeadlineHours(48, 240),
}


def configured_level_hours(session: Session, level: str) -> DeadlineHours | None:
    """The city's own hours for ``level``, or None when its pack says nothing (and for grid level)."""
    row = session.execute(
        text("SELECT accept_hours, handle_hours FROM escalation_levels WHERE level = :l"), {"l": level}
    ).first()
    return None if row is None else DeadlineHours(float(row.accept_hours), float(row.handle_hours))


def level_hours(session: Session, level: str) -> DeadlineHours | None:
    """The configured hours of ``level``, else the documented default; None for grid level."""
    return configured_level_hours(session, level) or DEFAULT_LEVEL_HOURS.get(level)


def save_level_hours(session: Session, hours: dict[str, DeadlineHours]) -> None:
    """Replace the configured levels with ``hours`` (a pack without the tables returns to the defaults)."""
    session.execute(text("DELETE FROM escalation_levels"))
    for level, h in hours.items():
        session.execute(
            text("INSERT INTO escalation_levels (level, accept_hours, handle_hours) VALUES (:l, :a, :h)"),
            {"l": level, "a": h.accept_hours, "h": h.handle_hours},
        )
