"""Inspections of key places (场所巡查): a visit, against the pack's inspection duty, with the place's code.

An inspection is not a model of its own: it is a visit (``geoservice.field.duties``) recorded against
the duty named by ``GEOSERVICE_PLACE_INSPECTION_DUTY`` for the unit holding the place (its grid for
a grid-level duty, its community for a community-level one), carrying ``place_code``. What the
phone needs before recording one — is this worker responsible for the place, which duty and unit,
when was it last inspected, when is it due (the place's own ``inspection_cycle_days`` if the pack
gives one, else the duty's cycle) — is answered here, so the phone never guesses a unit the server
would refuse.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.auth.scope import region_prefix
from geoservice.auth.users import Principal
from geoservice.field.duties import worker_units
from geoservice.field.place_codes import place_of


def place_for_worker(
    session: Session, principal: Principal, code: str, version_id: int, duty_code: str, now: datetime
) -> dict[str, Any]:
    """The place as its grid worker needs it: where, ``responsible`` (the worker serves its grid), its inspection."""
    place = place_of(session, code)
    grid = session.execute(
        text(
            "SELECT g.code, g.name, g.community_code, r.name AS community_name FROM grids g "
            "LEFT JOIN regions r ON r.version_id = g.version_id AND r.code = g.community_code "
            "WHERE g.version_id = :version AND ST_Covers(g.geom, ST_SetSRID(ST_Point(:lon, :lat), 4326)) "
            "ORDER BY g.code LIMIT 1"
        ),
        {"version": version_id, "lon": place["lon"], "lat": place["lat"]},
    ).first()
    units = worker_units(session, principal, version_id)  # the grids this worker serves (user_grids or region)
    responsible = grid is not None and grid.code in units["grid"]
    answer: dict[str, Any] = {
        "code": place["code"], "name": place["name"], "type": place["type"], "lon": place["lon"], "lat": place["lat"],
        "grid": {"code": grid.code, "name": grid.name} if grid else None,
        "community": {"code": grid.community_code, "name": grid.community_name or grid.community_code}
        if grid else None,
        "responsible": responsible, "inspection": None,
    }  # fmt: skip
    if not responsible:
        return answer
    duty = session.execute(
        text("SELECT code, name, level, every_days, region_code FROM duties WHERE code = :c"), {"c": duty_code}
    ).first()
    if duty is None or duty.level not in ("grid", "community"):
        return answer  # the pack has no inspection duty (or one at a level a place does not identify)
    unit = answer["grid"] if duty.level == "grid" else answer["community"]
    if duty.region_code and not unit["code"].startswith(region_prefix(duty.region_code)):
        return answer
    last = session.execute(
        text("SELECT max(visited_at) FROM visits WHERE duty_code = :d AND place_code = :p"),
        {"d": duty.code, "p": place["code"]},
    ).scalar()
    every = place["inspection_cycle_days"] or duty.every_days
    due = last + timedelta(days=every) if last else None
    answer["inspection"] = {
        "duty_code": duty.code, "duty_name": duty.name, "level": duty.level, "unit_code": unit["code"],
        "unit_name": unit["name"], "every_days": every, "last_visit_at": last, "due_at": due,
        "overdue": due is None or due < now,
    }  # fmt: skip
    return answer
