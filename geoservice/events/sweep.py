"""The deadline sweep: escalate events whose accept or handling deadline has passed (timeout escalation).

A breach is recorded in ``deadline_breaches`` keyed by (event, clock, due time) before anything else
happens, with ``ON CONFLICT DO NOTHING``: a second sweep — or two sweeps at once in two workers —
finds the breach recorded and does nothing, so each breach escalates an event once and logs once.
A new deadline (a re-dispatch) is a new breach. Rows a person is changing right now are skipped
(``SKIP LOCKED``) and picked up by the next sweep.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geoservice.events.escalation import escalate_one_level
from geoservice.events.log import log_step
from geoservice.events.supervision import sweep_supervision
from geoservice.events.warnings import record_warnings
from geoservice.events.workflow import next_level
from geoservice.infra.database import transaction
from geoservice.settings import EventSettings

SWEEP_ACTOR = "deadline-sweep"
SWEEP_ROLE = "system"
log = logging.getLogger(__name__)

OVERDUE = text(
    """
    SELECT e.id, e.status, e.escalation_level, e.escalation_count, c.kind, c.due_at
      FROM events e
      CROSS JOIN LATERAL (VALUES
          ('accept', CASE WHEN e.status = 'reported' THEN e.accept_due_at END),
          ('handle', CASE WHEN e.status IN ('dispatched', 'handling', 'reopened') THEN e.handle_due_at END)
      ) AS c(kind, due_at)
     WHERE c.due_at IS NOT NULL AND c.due_at <= :now
       AND NOT EXISTS (SELECT 1 FROM deadline_breaches b
                        WHERE b.event_id = e.id AND b.kind = c.kind AND b.due_at = c.due_at)
     ORDER BY e.id
       FOR UPDATE OF e SKIP LOCKED
    """
)
RECORD = text(
    "INSERT INTO deadline_breaches (event_id, kind, due_at, detected_at, escalated_to) "
    "VALUES (:id, :kind, :due_at, :now, :to_level) ON CONFLICT DO NOTHING RETURNING event_id"
)


@dataclass(frozen=True)
class SweepResult:
    """What one sweep found and did."""

    breaches: int
    escalated: int
    at_city_level: int
    warnings: int = 0


def sweep_deadlines(
    session: Session, now: datetime | None = None, settings: EventSettings | None = None
) -> SweepResult:
    """Record every new breach, escalate its event one level (if there is one), log it.

    With ``settings`` (the warning thresholds), new warning colours are logged first (``events.warnings``).
    """
    now = now or datetime.now(UTC)
    breaches = escalated = at_top = 0
    warnings = record_warnings(session, now, settings, actor=SWEEP_ACTOR, role=SWEEP_ROLE) if settings else 0
    for row in session.execute(OVERDUE, {"now": now}).all():
        to_level = next_level(row.escalation_level)
        recorded = session.execute(
            RECORD, {"id": row.id, "kind": row.kind, "due_at": row.due_at, "now": now, "to_level": to_level}
        ).first()
        if recorded is None:
            continue  # another sweep got here first
        breaches += 1
        what = f"the {row.kind} deadline ({row.due_at.isoformat()}) passed"
        if to_level is None:
            at_top += 1
            log_step(
                session, row.id, at=now, actor=SWEEP_ACTOR, role=SWEEP_ROLE, action="overdue", from_status=row.status,
                to_status=row.status, note=f"{what}; already at city level, nothing higher to escalate to",
                details={"timeout": row.kind, "due_at": row.due_at, "from_level": row.escalation_level,
                         "to_level": None},
            )  # fmt: skip
            continue
        escalated += 1
        escalate_one_level(
            session, row.id, now, actor=SWEEP_ACTOR, role=SWEEP_ROLE,
            note=f"{what}: escalated from {row.escalation_level} to {to_level}",
            details={"timeout": row.kind, "due_at": row.due_at},
        )  # fmt: skip
    return SweepResult(breaches, escalated, at_top, warnings)


class StagedFiles(Protocol):
    """The one thing the sweep needs of a media store (``geoservice.media.store``, a room above this one)."""

    def sweep_staged(self, older_than_s: float) -> int: ...


class PeriodicSweep:
    """Runs the sweep every ``interval_s`` seconds in a daemon thread, for the life of the server.

    With a ``media`` store it also removes the store's staged files older than ``staged_max_age_s``
    (uploads a crash or a failed transaction left behind), so no cron job is needed for them.
    """

    def __init__(
        self,
        engine: Engine,
        interval_s: float,
        settings: EventSettings | None = None,
        media: StagedFiles | None = None,
        staged_max_age_s: float = 86400.0,
    ) -> None:
        self.engine, self.interval_s, self.settings = engine, interval_s, settings
        self.media, self.staged_max_age_s = media, staged_max_age_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.interval_s > 0:
            self._thread = threading.Thread(target=self._run, name="deadline-sweep", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sweep_once()

    def sweep_once(self) -> None:
        """One round: deadlines, supervision orders, staged media; each failure logged, none stops the rest."""
        try:
            with transaction(self.engine) as session:
                result = sweep_deadlines(session, settings=self.settings)
            if result.breaches or result.warnings:
                log.info("deadline sweep: %s", result)
        except Exception:  # a failed sweep must not end the loop: the next one retries
            log.exception("deadline sweep failed")
        try:  # its own transaction: a failure here does not undo the deadline escalations
            with transaction(self.engine) as session:
                late = sweep_supervision(session, datetime.now(UTC))
            if late:
                log.info("supervision sweep escalated orders %s", late)
        except Exception:
            log.exception("supervision sweep failed")
        if self.media is not None:
            try:  # files only, no database: staged files belong to no row
                removed = self.media.sweep_staged(self.staged_max_age_s)
                if removed:
                    log.info("media sweep removed %d staged files older than %ss", removed, self.staged_max_age_s)
            except Exception:
                log.exception("media sweep failed")
