"""Open events under new boundaries: which would move, and re-routing them at publish.

The policy: an event already dispatched, or further along (dispatched, handling, handled, verified,
reopened), keeps its assignment — people are working on it, and taking it away mid-way helps no
one. The rest of the open events (reported, accepted, returned) are routed again by the new
version's router (grid, community, town, station, department, rule), and each change is written to
the event log in the publisher's transaction. Closed events (rejected, archived, evaluated) are
history and never touched. An event whose routing does not change is not logged.

The same happens once more in each worker as it swaps in the new router (``reroute_window``): the
reports it routed by the retired version after the publish, in the seconds its new router was
being built, are routed again by the version in force at their instant.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from etl.load import copy_rows
from geoservice.boundaries.versions import hold_routing
from geoservice.infra.database import transaction
from geoservice.routing.bulk import route_points
from geoservice.routing.router import Router

log = logging.getLogger(__name__)
REROUTED = ("reported", "accepted", "returned")
KEPT = ("dispatched", "handling", "handled", "verified", "reopened")
FIELDS = ("grid_code", "community_code", "town_code", "station_code", "department_code")


@dataclass(frozen=True)
class EventMove:
    """An open event whose grid or department differs under the new router."""

    id: int
    status: str
    category_code: str
    lon: float
    lat: float
    old: dict[str, str | None]
    new: dict[str, str | None]
    rule_id: int | None

    @property
    def action(self) -> str:
        """What publishing does with it: 'reroute' or 'keep' (already dispatched or later)."""
        return "reroute" if self.status in REROUTED else "keep"


def event_moves(
    session: Session, router: Router, *, lock: bool = False, reported_since: datetime | None = None
) -> list[EventMove]:
    """Open events (reroutable and kept) whose grid or department would change under ``router``.

    ``reported_since``: only those reported since then and routed by another version (a window).
    """
    # Routed by another version: events stored without one (imports, direct loads) were not routed by a worker.
    window = " AND reported_at >= :since AND boundary_version_id <> :v" if reported_since else ""
    rows = session.execute(
        text(
            "SELECT id, status, category_code, ST_X(geom) AS lon, ST_Y(geom) AS lat, "
            + ", ".join(FIELDS)
            + f" FROM events WHERE status = ANY(:open){window} ORDER BY id"
            + (" FOR UPDATE" if lock else "")
        ),
        {"open": list(REROUTED + KEPT), "since": reported_since, "v": router.version_id},
    ).all()
    if not rows:
        return []
    lon = np.array([r.lon for r in rows], dtype=float)
    lat = np.array([r.lat for r in rows], dtype=float)
    import pandas as pd  # deferred: every server worker imports this module (re-route on publish), few re-route

    routed = route_points(router, lon, lat, np.array([r.category_code for r in rows], dtype=object))
    routed = routed.rename(columns={"department": "department_code"})
    moves = []
    for k, row in enumerate(rows):
        old = {f: getattr(row, f) or None for f in FIELDS}
        new = {f: routed[f].iat[k] or None for f in FIELDS}
        if old["grid_code"] != new["grid_code"] or old["department_code"] != new["department_code"]:
            rule = routed["rule_id"].iat[k]
            moves.append(EventMove(
                row.id, row.status, row.category_code, row.lon, row.lat, old, new,
                None if pd.isna(rule) else int(rule),
            ))  # fmt: skip
    return moves


def reroute_events(
    session: Session, router: Router, *, actor: str, role: str, reported_since: datetime | None = None
) -> tuple[list[EventMove], list[EventMove]]:
    """Re-route the reroutable open events the new router places elsewhere; (rerouted, kept).

    Rows are locked first, so an event that a dispatcher moves on meanwhile is either re-routed
    before its transition or seen afterwards in its new status; never half of each.
    """
    moves = event_moves(session, router, lock=True, reported_since=reported_since)
    rerouted = [m for m in moves if m.action == "reroute"]
    kept = [m for m in moves if m.action == "keep"]
    if not rerouted:
        return rerouted, kept
    reason = f"re-routed when boundary version {router.version_name} was published"
    session.execute(
        text(
            "CREATE TEMP TABLE rerouted (id bigint, grid_code text, community_code text, town_code text, "
            "station_code text, department_code text, rule_id int, details jsonb) ON COMMIT DROP"
        )
    )
    copy_rows(
        session,
        "rerouted",
        ["id", *FIELDS, "rule_id", "details"],
        (
            (m.id, *(m.new[f] for f in FIELDS), m.rule_id,
             json.dumps({"version": {"id": router.version_id, "name": router.version_name},
                         "old": m.old, "new": m.new}, ensure_ascii=False))
            for m in rerouted
        ),
    )  # fmt: skip
    session.execute(
        text(
            "UPDATE events e SET grid_code = r.grid_code, community_code = r.community_code, "
            "town_code = r.town_code, station_code = r.station_code, department_code = r.department_code, "
            "rule_id = r.rule_id, route_reason = :reason, boundary_version_id = :v, "
            "row_version = e.row_version + 1, updated_at = now() FROM rerouted r WHERE e.id = r.id"
        ),
        {"reason": reason, "v": router.version_id},
    )
    session.execute(
        text(
            "INSERT INTO event_log (event_id, actor, role, action, from_status, to_status, note, details) "
            "SELECT r.id, :actor, :role, 'reroute', e.status, e.status, "
            "'grid ' || coalesce((r.details->'old'->>'grid_code'), '—') || ' → ' || coalesce(r.grid_code, '—') "
            "|| ', department ' || coalesce((r.details->'old'->>'department_code'), '—') || ' → ' "
            "|| coalesce(r.department_code, '—') || ' (' || :reason || ')', r.details "
            "FROM rerouted r JOIN events e ON e.id = r.id ORDER BY r.id"
        ),
        {"actor": actor, "role": role, "reason": reason},
    )
    session.execute(text("DROP TABLE rerouted"))
    return rerouted, kept


def reroute_window(engine: Engine, router: Router) -> list[EventMove]:
    """Route again the open reports routed by another version since ``router``'s version took effect.

    A worker calls this when it has swapped in ``router``: until then it answered from the retired
    version (or, with a later ``effective_from``, from the one before until its periodic check). The
    exclusive ``ROUTING_LOCK`` waits for reports still being routed by the old router to commit.
    """
    with transaction(engine) as session:
        hold_routing(session, exclusive=True)
        since = session.execute(
            text("SELECT effective_from FROM boundary_versions WHERE id = :v AND status = 'published'"),
            {"v": router.version_id},
        ).scalar()
        if since is None:  # retired meanwhile: the next swap catches up
            return []
        rerouted, _ = reroute_events(session, router, actor="system", role="admin", reported_since=since)
    if rerouted:
        log.info("re-routed %d reports made while version %s was being loaded", len(rerouted), router.version_name)
    return rerouted

