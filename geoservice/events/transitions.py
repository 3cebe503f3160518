"""Taking one step of the closed loop on one event, with optimistic locking and its log row.

The caller states the ``row_version`` it read; the update only happens ``WHERE row_version =
expected``, so of two people acting on the same version exactly one wins and the other gets a 409
saying the event changed. The log row goes in the same transaction: no step without its audit row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.auth.scope import acts_for_owner, scope_of
from geoservice.auth.users import Principal
from geoservice.errors import Conflict, Forbidden, InvalidInput, NotFound
from geoservice.events.cotasks import (
    check_co_departments,
    refuse_co_department_step,
    refuse_feedback_with_open_tasks,
    replace_tasks,
)
from geoservice.events.deadlines import deadline_hours
from geoservice.events.escalation import escalate_one_level
from geoservice.events.levels import configured_level_hours
from geoservice.events.log import log_step
from geoservice.events.owners import DEPARTMENT, UNIT, hand_over, served_grids, unit_at
from geoservice.events.queries import fetch_event
from geoservice.events.workflow import ACTIONS_NEEDING_A_NOTE, Step, check_step, previous_level
from layers.models import Role

PUBLIC_NOTE = "public_note"  # the log row's ``details`` flag: Open311, follow links and the reporter see the note

MAX_NOTE = 2000
# Steps taken on a closed event by whoever speaks for the reporter: no one holds it any more.
NOT_OWNED_ACTIONS = frozenset({"evaluate"})
# What the unit that dispatched may still do while a department holds the event: take it back, send it up.
DISPATCHING_UNIT_ACTIONS = frozenset({"return", "escalate"})


def apply_transition(
    session: Session,
    event_id: int,
    action: str,
    actor: Principal,
    note: str = "",
    expected_version: int | None = None,
    *,
    department_code: str | None = None,
    handler_username: str | None = None,
    satisfaction: int | None = None,
    comment: str | None = None,
    reason: str | None = None,
    photos: list[dict[str, Any]] | None = None,
    public_note: bool = False,
    now: datetime | None = None,
    co_departments: list[str] | None = None,
) -> dict[str, Any]:
    """Take ``action`` on the event as ``actor``; returns the event as it is afterwards.

    Problems: 404 outside the actor's scope, 422 for an unknown action or missing/invalid
    arguments, 403 for a role that may never take the action, 409 from a state that does not allow
    it (naming what is allowed) or when the event changed since ``expected_version``; 403 "No
    longer yours" when someone else holds the event now (the caller may still read it).
    ``public_note``: the note is a progress note the reporter and Open311 may read (staff only).
    """
    now = now or datetime.now(UTC)
    note = (note or reason or "").strip()
    if len(note) > MAX_NOTE or len(comment or "") > MAX_NOTE:
        raise InvalidInput(f"note and comment have at most {MAX_NOTE:,} characters", title="Text too long")
    event = fetch_event(session, event_id, scope_of(actor))
    if event is None:
        raise NotFound(f"there is no event {event_id} that you may see", title="No such event")
    refuse_co_department_step(actor, event)
    _check_public_note(public_note, note, actor)
    step = check_step(event["status"], action, actor.role, event["escalation_level"], bool(event["small_matter"]))
    if not isinstance(expected_version, int) or isinstance(expected_version, bool) or expected_version < 1:
        raise InvalidInput("expected_version (the row_version you read) is required", title="Invalid request")
    if action in ACTIONS_NEEDING_A_NOTE and not note:
        raise InvalidInput(f"say why you {action} the event (note or reason)", title="A note is required")
    if step.action == "merge":
        raise InvalidInput(f"a merge names its master: POST /v1/events/{event_id}/merge with {{\"into\": id}}",
                           title="Merge through its own route")  # fmt: skip
    if expected_version != event["row_version"]:  # a step on a stale read is a conflict, whoever holds it now
        raise _changed(event_id, event["row_version"])
    check_holder(session, event, actor, action)
    if action == "escalate":
        return _escalate(session, event, actor, note, expected_version, now)
    _check_evidence(event, action, note, photos)
    changes, details = _changes(session, event, step, now, department_code, handler_username, satisfaction, comment)
    co_tasks = _co_handling(session, event, step, changes, co_departments)
    if co_tasks is not None:
        details["co_departments"] = co_tasks
    if photos:
        details["photos"] = photos
    if expected_version != event["row_version"]:
        raise _changed(event_id, event["row_version"])
    assignments = ", ".join(f"{column} = :set_{column}" for column in changes)
    updated = session.execute(
        text(
            f"UPDATE events SET {assignments}, row_version = row_version + 1, updated_at = :now "
            "WHERE id = :id AND row_version = :expected RETURNING row_version"
        ),
        {**{f"set_{c}": v for c, v in changes.items()}, "now": now, "id": event_id, "expected": expected_version},
    ).scalar()
    if updated is None:
        current = session.execute(text("SELECT row_version FROM events WHERE id = :id"), {"id": event_id}).scalar()
        raise _changed(event_id, current)
    if co_tasks is not None:
        replace_tasks(session, event_id, co_tasks, changes["handle_due_at"], actor.username, now)
    details.update(_hand_over_after(session, event, action, changes, now))
    if public_note:
        details[PUBLIC_NOTE] = True
    log_step(
        session, event_id, at=now, actor=actor.username, role=str(actor.role), action=action,
        from_status=event["status"], to_status=changes.get("status", event["status"]), note=note, details=details,
    )  # fmt: skip
    after = fetch_event(session, event_id)
    assert after is not None
    return after


def _changes(
    session: Session,
    event: dict[str, Any],
    step: Step,
    now: datetime,
    department_code: str | None,
    handler_username: str | None,
    satisfaction: int | None,
    comment: str | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The columns this step sets, and what the log row should remember about it."""
    changes: dict[str, Any] = {}
    details: dict[str, Any] = {}
    if step.target is not None:
        changes["status"] = step.target
    if step.stamp is not None:
        changes[step.stamp] = now
    if step.action == "dispatch":
        department = department_code or event["department_code"]
        if department is None:
            raise InvalidInput("the event has no routed department: name one to dispatch", title="Department required")
        if not session.execute(text("SELECT 1 FROM departments WHERE code = :c"), {"c": department}).first():
            raise InvalidInput(f"no department {department!r}", title="Unknown department")
        if handler_username is not None and not _is_handler_of(session, handler_username, department):
            raise InvalidInput(
                f"{handler_username!r} is not an active handler of department {department!r}", title="Unknown handler"
            )
        hours = configured_level_hours(session, event["escalation_level"]) or deadline_hours(
            session, event["category_code"], event["priority"]
        )  # an escalated event is handled on its level's clock when the city set one
        changes.update(department_code=department, handler_username=handler_username)
        changes["handle_due_at"] = hours.handle_due(now) if hours else None
        details.update(from_department=event["department_code"], department=department, handler=handler_username,
                       handle_due_at=changes["handle_due_at"])  # fmt: skip
    elif step.action == "return":
        changes["handler_username"] = None
        details["department"] = event["department_code"]
    elif step.action == "reopen":
        changes["reopen_count"] = event["reopen_count"] + 1
    elif step.action == "evaluate":
        if not isinstance(satisfaction, int) or isinstance(satisfaction, bool) or not 1 <= satisfaction <= 5:
            raise InvalidInput("evaluate with a satisfaction from 1 (poor) to 5 (good)", title="Satisfaction required")
        changes.update(satisfaction=satisfaction, evaluation_comment=comment)
        details.update(satisfaction=satisfaction, comment=comment)
    elif step.action == "return_down":
        level = previous_level(event["escalation_level"])
        changes["escalation_level"] = level
        details.update(from_level=event["escalation_level"], to_level=level)
    return changes, details


def _co_handling(
    session: Session, event: dict[str, Any], step: Step, changes: dict[str, Any], co_departments: list[str] | None
) -> list[str] | None:
    """Co-handling's part of a step (``events.cotasks``): the checked co-departments of a dispatch (None: not one).

    A dispatch without co-departments still replaces the live co-tasks (with none); the lead's
    feedback waits for every co-task.
    """
    if step.action == "dispatch":
        return check_co_departments(session, changes["department_code"], co_departments or [])
    if co_departments:
        raise InvalidInput("co_departments go with a dispatch only", title="Invalid request")
    if step.action == "feedback":
        refuse_feedback_with_open_tasks(session, event["id"])
    return None


def check_holder(session: Session, event: dict[str, Any], actor: Principal, action: str) -> None:
    """403 "No longer yours" unless ``actor`` acts for the event's owner now (``auth.scope.acts_for_owner``).

    The unit that dispatched keeps two actions over the department that holds the event: taking it
    back (``return``) and sending it up (``escalate``). Evaluating a closed event is nobody's work.
    """
    if action in NOT_OWNED_ACTIONS:
        return
    kind, code = event["owner_kind"], event["owner_code"]
    grids = served_grids(session, actor.username) if actor.role == Role.grid_worker else None
    if acts_for_owner(actor, kind, code, grids):
        return
    if (
        actor.role == Role.dispatcher
        and kind == DEPARTMENT
        and action in DISPATCHING_UNIT_ACTIONS
        and acts_for_owner(actor, UNIT, unit_at(session, event, event["escalation_level"]))
    ):
        return
    holder = f"{kind} {code}" if kind and code else "no one (an event outside every region)"
    raise Forbidden(
        f"event {event['id']} is held by {holder} now, not by you: you may still read it but not {action} it",
        title="No longer yours",
        owner_kind=kind,
        owner_code=code,
    )


def _escalate(
    session: Session, event: dict[str, Any], actor: Principal, note: str, expected_version: int, now: datetime
) -> dict[str, Any]:
    """A person's escalation: the same hand-over as the sweep's, after the optimistic-lock check."""
    current = session.execute(
        text("SELECT row_version FROM events WHERE id = :id FOR UPDATE"), {"id": event["id"]}
    ).scalar()
    if current != expected_version:
        raise _changed(event["id"], current)
    escalate_one_level(session, event["id"], now, actor=actor.username, role=str(actor.role), note=note)
    after = fetch_event(session, event["id"])
    assert after is not None
    return after


def _check_evidence(event: dict[str, Any], action: str, note: str, photos: list[dict[str, Any]] | None) -> None:
    """小事不出格: a grid worker closes a small matter alone, so its feedback must show what was done."""
    if action == "feedback" and event["small_matter"] and not note and not photos:
        raise InvalidInput(
            "a small matter is fed back with evidence: a note saying what was done, or at least one photo",
            title="Evidence required",
        )


def _hand_over_after(
    session: Session, event: dict[str, Any], action: str, changes: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """Move the owner as the step says; the log details ``from_owner``/``to_owner`` when it moved.

    Dispatch → the department; return and a department's feedback → back to the unit at the event's
    level (which verifies); reopen of a dispatched event → its department again; return_down → the
    unit one level down. A small matter never leaves its grid.
    """
    kind, code = event["owner_kind"], event["owner_code"]
    level = changes.get("escalation_level", event["escalation_level"])
    target: tuple[str, str | None] | None = None
    if action == "dispatch":
        target = (DEPARTMENT, changes["department_code"])
    elif action == "return" or action == "return_down" or (action == "feedback" and kind == DEPARTMENT):
        target = (UNIT, unit_at(session, event, level))
    elif action == "reopen" and event["dispatched_at"] is not None and event["department_code"]:
        target = (DEPARTMENT, event["department_code"])
    if target is None or target == (kind, code):
        return {}
    hand_over(session, event["id"], target[0], target[1], now, action)
    return {"from_owner": f"{kind}:{code}" if kind else None, "to_owner": f"{target[0]}:{target[1]}"}


def _check_public_note(public_note: bool, note: str, actor: Principal) -> None:
    """A public progress note is the staff's word to the reporter: it needs words, and a citizen cannot publish one."""
    if not public_note:
        return
    if actor.role == Role.public:
        raise InvalidInput("only staff mark progress notes public", title="Invalid request")
    if not note:
        raise InvalidInput("public_note marks the note public: write one", title="A note is required")


def _is_handler_of(session: Session, username: str, department: str) -> bool:
    return (
        session.execute(
            text(
                "SELECT 1 FROM users WHERE username = :u AND role = 'handler' AND department_code = :d AND NOT disabled"
            ),
            {"u": username, "d": department},
        ).first()
        is not None
    )


def _changed(event_id: int, current: int | None) -> Conflict:
    return Conflict(
        f"event {event_id} changed since you read it (it is at row_version {current} now): read it again and retry",
        title="Event changed",
        current_version=current,
    )
