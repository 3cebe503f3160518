"""Co-handling (联合处置): the tasks of the co-departments of a dispatch, and what they gate.

A dispatch names a lead department (the event's ``department_code``) and, optionally,
co-departments; each co-department gets its own row in ``event_tasks`` with the handling deadline
of the event's category, and moves it open → handling → fed_back. The lead may feed back the
event only once no co-task is open: that 409 names the departments still working. A re-dispatch
replaces the live tasks (marks them ``replaced``) with the new dispatch's. Every task step is a
step in the event's log.

While their task is live a co-department's handlers see the event (``auth.scope``), but they work
on their task only: the event's own steps stay with the lead department.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.auth.scope import scope_of, scope_sql
from geoservice.auth.users import Principal
from geoservice.errors import Conflict, Forbidden, InvalidInput, NotFound
from geoservice.events.deadlines import COLOURS, Clock, warning_colour
from geoservice.events.log import log_step
from geoservice.events.queries import fetch_event
from geoservice.settings import EventSettings
from layers.models import Role

LIVE = ("open", "handling")
MAX_CO_DEPARTMENTS = 10
MAX_NOTE = 2000
TASK_COLUMNS = """
    t.id, t.event_id, t.department_code, d.name AS department_name, t.status, t.created_at, t.created_by,
    t.due_at, t.started_at, t.started_by, t.fed_back_at, t.fed_back_by, t.feedback
"""


def check_co_departments(session: Session, lead: str, co_departments: list[str]) -> list[str]:
    """The co-departments of a dispatch, checked: not the lead, no duplicates, each one known."""
    if len(co_departments) > MAX_CO_DEPARTMENTS:
        raise InvalidInput(f"at most {MAX_CO_DEPARTMENTS} co-departments", title="Too many co-departments")
    if lead in co_departments:
        raise InvalidInput(f"{lead!r} leads this dispatch; it cannot also be a co-department",
                           title="Lead named as co-department")  # fmt: skip
    twice = sorted({c for c in co_departments if co_departments.count(c) > 1})
    if twice:
        raise InvalidInput(f"co-departments named twice: {', '.join(twice)}", title="Duplicate co-department")
    known = set(
        session.execute(text("SELECT code FROM departments WHERE code = ANY(:c)"), {"c": co_departments}).scalars()
    )
    unknown = [c for c in co_departments if c not in known]
    if unknown:
        raise InvalidInput(f"no department {', '.join(map(repr, unknown))}", title="Unknown department")
    return list(co_departments)


def replace_tasks(
    session: Session, event_id: int, co_departments: list[str], due_at: datetime | None, actor: str, now: datetime
) -> None:
    """Mark the event's live tasks replaced and open one per co-department of this dispatch."""
    session.execute(
        text("UPDATE event_tasks SET status = 'replaced' WHERE event_id = :id AND status IN ('open', 'handling')"),
        {"id": event_id},
    )
    for department in co_departments:
        session.execute(
            text(
                "INSERT INTO event_tasks (event_id, department_code, status, created_at, created_by, due_at) "
                "VALUES (:id, :d, 'open', :now, :by, :due)"
            ),
            {"id": event_id, "d": department, "now": now, "by": actor, "due": due_at},
        )


def refuse_feedback_with_open_tasks(session: Session, event_id: int) -> None:
    """The lead may not feed back while a co-task is live: a 409 naming them."""
    live = session.execute(
        text(
            "SELECT department_code, status FROM event_tasks WHERE event_id = :id AND status IN ('open', 'handling') "
            "ORDER BY department_code"
        ),
        {"id": event_id},
    ).all()
    if live:
        names = ", ".join(f"{r.department_code} ({r.status})" for r in live)
        raise Conflict(f"co-tasks still open: {names}; the lead feeds back once every co-department has",
                       title="Co-tasks open", open_co_tasks=[r.department_code for r in live])  # fmt: skip


def refuse_co_department_step(actor: Principal, event: dict[str, Any]) -> None:
    """A handler who reaches an event only through a co-task works on that task, not on the event's steps."""
    if actor.role == Role.handler and actor.department_code != event["department_code"]:
        raise Forbidden(
            f"department {actor.department_code} co-handles this event: use /v1/events/{event['id']}/tasks/"
            f"{actor.department_code}/start and /feedback; the event's steps are its lead's, "
            f"{event['department_code']}",
            title="Not allowed",
        )


def list_tasks(
    session: Session, event_id: int, principal: Principal, now: datetime, settings: EventSettings
) -> list[dict[str, Any]]:
    """The event's tasks (replaced ones too, as history), each with its warning colour and ``overdue``."""
    _event(session, event_id, principal)
    rows = session.execute(
        text(
            f"SELECT {TASK_COLUMNS} FROM event_tasks t JOIN departments d ON d.code = t.department_code "
            "WHERE t.event_id = :id ORDER BY t.id"
        ),
        {"id": event_id},
    )
    return [task_view(dict(r._mapping), now, settings) for r in rows]


def live_tasks_of(
    session: Session, principal: Principal, now: datetime, settings: EventSettings, limit: int
) -> dict[str, Any]:
    """The live co-tasks the caller works on (``/v1/queue/cotasks``): ``counts`` per colour, then the ``items``.

    A handler's are their department's (a co-department's handler finds its work nowhere else: the
    event's queue is the lead's); a dispatcher's, those on events in their scope (they may move a task
    too); an admin's, every one. The events are read through ``auth.scope`` like every other surface.
    Each item carries what the phone lists without another request: the event's category, state and
    place (community and grid names of the version the event was placed in), the task's deadline and
    its warning colour (``task_view``, the deadlines module's rule). Earliest deadline first.
    """
    seen, params = scope_sql(scope_of(principal))
    mine = "TRUE"
    if principal.role == Role.handler:
        mine, params = "t.department_code = :department", {**params, "department": principal.department_code}
    rows = session.execute(
        text(
            f"SELECT {TASK_COLUMNS}, e.category_code, e.status AS event_status, e.description, e.grid_code, "
            "e.community_code, g.name AS grid_name, r.name AS community_name, "
            "ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat "
            "FROM event_tasks t JOIN departments d ON d.code = t.department_code "
            "JOIN events e ON e.id = t.event_id "
            "LEFT JOIN grids g ON g.version_id = e.boundary_version_id AND g.code = e.grid_code "
            "LEFT JOIN regions r ON r.version_id = e.boundary_version_id AND r.code = e.community_code "
            f"WHERE t.status IN ('open', 'handling') AND {seen} AND {mine} "
            "ORDER BY t.due_at NULLS LAST, t.id LIMIT :limit"
        ),
        {**params, "limit": limit},
    )
    items = []
    for row in rows:
        task = dict(row._mapping)
        names = [task["community_name"] or task["community_code"], task["grid_name"] or task["grid_code"]]
        task["place"] = " ".join(n for n in names if n)
        items.append(task_view(task, now, settings))
    counts = dict.fromkeys(COLOURS, 0)
    for item in items:
        counts[item["warning"]] += 1
    return {"counts": {**counts, "total": len(items)}, "items": items}


def task_view(task: dict[str, Any], now: datetime, settings: EventSettings) -> dict[str, Any]:
    """A task with the colour of its own clock (from its creation to its deadline, while it is live)."""
    clock = Clock("handle", task["created_at"], task["due_at"]) if task["status"] in LIVE and task["due_at"] else None
    return {**task, "warning": warning_colour(clock, now, settings),
            "overdue": clock is not None and now >= clock.due_at}  # fmt: skip


def start_task(session: Session, event_id: int, department: str, actor: Principal, now: datetime) -> dict[str, Any]:
    """Start the task, open → handling; starting a task already in hand is a retry and changes nothing."""
    event, task = _task(session, event_id, department, actor)
    if task["status"] == "handling":
        return task
    if task["status"] != "open":
        raise Conflict(f"the task of {department} is {task['status']}", title="Not allowed in this state")
    return _step(session, event, task, actor, now, "co_task_start", "handling", note="")


def feed_back_task(
    session: Session, event_id: int, department: str, actor: Principal, note: str, now: datetime
) -> dict[str, Any]:
    """Feed the task back, handling → fed_back with a note; the same note again is a retry, another note a 409."""
    note = (note or "").strip()
    if not note:
        raise InvalidInput("say what your department did (note)", title="A note is required")
    if len(note) > MAX_NOTE:
        raise InvalidInput(f"the note has at most {MAX_NOTE:,} characters", title="Text too long")
    try:
        event, task = _task(session, event_id, department, actor)
    except NotFound:
        # A fed-back task takes the event out of its handler's scope: the same feedback again (its first
        # answer lost on the phone's network) would find no event. Their own stored feedback is the answer.
        retry = _own_feedback(session, event_id, department, actor, note)
        if retry is None:
            raise
        return retry
    if task["status"] == "fed_back" and task["feedback"] == note:
        return task
    if task["status"] != "handling":
        hint = "; start it first" if task["status"] == "open" else ""
        raise Conflict(f"the task of {department} is {task['status']}{hint}", title="Not allowed in this state")
    return _step(session, event, task, actor, now, "co_task_feedback", "fed_back", note=note)


def _step(
    session: Session, event: dict[str, Any], task: dict[str, Any], actor: Principal, now: datetime, action: str,
    target: str, *, note: str,
) -> dict[str, Any]:  # fmt: skip
    stamp = "started" if target == "handling" else "fed_back"
    feedback = ", feedback = :note" if target == "fed_back" else ""
    session.execute(
        text(f"UPDATE event_tasks SET status = :target, {stamp}_at = :now, {stamp}_by = :by{feedback} WHERE id = :id"),
        {"target": target, "now": now, "by": actor.username, "note": note, "id": task["id"]},
    )
    log_step(
        session, event["id"], at=now, actor=actor.username, role=str(actor.role), action=action,
        from_status=event["status"], to_status=event["status"], note=note,
        details={"task_id": task["id"], "department": task["department_code"], "task_from": task["status"],
                 "task_to": target},
    )  # fmt: skip
    return {**task, "status": target, f"{stamp}_at": now, f"{stamp}_by": actor.username,
            **({"feedback": note} if feedback else {})}  # fmt: skip


def _own_feedback(
    session: Session, event_id: int, department: str, actor: Principal, note: str
) -> dict[str, Any] | None:
    """The department's current task on the event if ``actor`` fed it back with exactly ``note``; else None.

    Only what the actor wrote themselves is answered, so nothing of an event outside their scope shows.
    """
    row = session.execute(
        text(
            f"SELECT {TASK_COLUMNS} FROM event_tasks t JOIN departments d ON d.code = t.department_code "
            "WHERE t.event_id = :id AND t.department_code = :d AND t.status <> 'replaced' "
            "ORDER BY t.id DESC LIMIT 1"
        ),
        {"id": event_id, "d": department},
    ).first()
    if row is None or row.status != "fed_back" or row.fed_back_by != actor.username or row.feedback != note:
        return None
    return dict(row._mapping)


def _task(session: Session, event_id: int, department: str, actor: Principal) -> tuple[dict, dict]:
    """The event (in the actor's scope) and the department's latest task on it, locked; who may work it."""
    event = _event(session, event_id, actor)
    if actor.role == Role.handler and actor.department_code != department:
        raise Forbidden(f"only handlers of {department} (or dispatchers) work on its task", title="Not allowed")
    row = session.execute(
        text(
            f"SELECT {TASK_COLUMNS} FROM event_tasks t JOIN departments d ON d.code = t.department_code "
            "WHERE t.event_id = :id AND t.department_code = :d AND t.status <> 'replaced' "
            "ORDER BY t.id DESC LIMIT 1 FOR UPDATE OF t"
        ),
        {"id": event_id, "d": department},
    ).first()
    if row is None:
        raise NotFound(f"event {event_id} has no task for department {department!r}", title="No such task")
    return event, dict(row._mapping)


def _event(session: Session, event_id: int, principal: Principal) -> dict[str, Any]:
    event = fetch_event(session, event_id, scope_of(principal))
    if event is None:
        raise NotFound(f"there is no event {event_id} that you may see", title="No such event")
    return event
