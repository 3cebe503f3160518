"""Merging a duplicate report into its master: the report ends ``merged`` and follows the master.

Masters are one hop: an event that is itself merged cannot be a master (merging A into B when B is
merged into A — a cycle — is refused the same way), and when a master is later merged into another
event, the reports that followed it are re-pointed to the new master, each with its own log row.
Both events must be in the caller's scope; both rows are locked (in id order, so two crossing
merges cannot deadlock) before anything is checked, so concurrent merges serialise.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.auth.scope import scope_of
from geoservice.auth.users import Principal
from geoservice.errors import Conflict, InvalidInput, NotFound
from geoservice.events.log import log_step
from geoservice.events.queries import fetch_event
from geoservice.events.workflow import check_step

MAX_NOTE = 2000
NO_MASTER_STATES = frozenset({"merged", "rejected"})  # a report cannot follow what will never be handled

MERGE = text(
    "UPDATE events SET status = 'merged', merged_into = :into, merged_at = :now, row_version = row_version + 1, "
    "updated_at = :now WHERE id = :id RETURNING id"
)
REPOINT = text(
    "UPDATE events SET merged_into = :into, row_version = row_version + 1, updated_at = :now "
    "WHERE merged_into = :old RETURNING id"
)


def merge_event(
    session: Session,
    event_id: int,
    into: int,
    actor: Principal,
    note: str = "",
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Merge report ``event_id`` into master ``into`` as ``actor``; returns the merged report.

    404 when the report is outside the caller's scope; 422 for merging into itself or a master the
    caller may not see; 403/409 from the workflow table (dispatchers and admins, from open states);
    409 when the master is itself merged (or rejected). The same merge again answers the merged
    report as it is, without a second log row, so a retried request is harmless.
    """
    now = now or datetime.now(UTC)
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise InvalidInput(f"the note has at most {MAX_NOTE:,} characters", title="Text too long")
    if into == event_id:
        raise InvalidInput("an event cannot be merged into itself", title="Invalid merge")
    scope = scope_of(actor)
    session.execute(
        text("SELECT id FROM events WHERE id IN (:a, :b) ORDER BY id FOR UPDATE"), {"a": event_id, "b": into}
    )
    event = fetch_event(session, event_id, scope)
    if event is None:
        raise NotFound(f"there is no event {event_id} that you may see", title="No such event")
    if event["status"] == "merged" and event["merged_into"] == into:
        return event  # the same merge again (a retry): already done, nothing more to write
    check_step(event["status"], "merge", actor.role, event["escalation_level"])
    master = fetch_event(session, into, scope)
    if master is None:
        raise InvalidInput(f"there is no event {into} that you may see to merge into", title="Unknown master")
    if master["status"] in NO_MASTER_STATES:
        further = f"; merge into event {master['merged_into']}, its master" if master["merged_into"] else ""
        raise Conflict(
            f"event {into} is {master['status']} and cannot be a master{further}",
            title="Not a master",
            master=master["merged_into"],
        )
    session.execute(MERGE, {"into": into, "now": now, "id": event_id})
    who = {"at": now, "actor": actor.username, "role": str(actor.role), "note": note}
    log_step(session, event_id, action="merge", from_status=event["status"], to_status="merged",
             details={"master": into}, **who)  # fmt: skip
    log_step(session, into, action="merged_in", from_status=master["status"], to_status=master["status"],
             details={"duplicate": event_id}, **who)  # fmt: skip
    for (follower,) in session.execute(REPOINT, {"into": into, "now": now, "old": event_id}).all():
        log_step(session, follower, action="remerge", from_status="merged", to_status="merged",
                 details={"from_master": event_id, "master": into}, **who)  # fmt: skip
    merged = fetch_event(session, event_id)
    assert merged is not None
    return merged
