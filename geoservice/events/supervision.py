"""Supervision orders (督办): a supervisor's instruction on an event, its reply, and escalation when late.

An order is a row of ``supervision_orders`` plus a ``supervise`` step in the event's log; a reply is
written on the order and logged as ``supervision_reply``. An event with an order awaiting reply is
flagged ``supervised`` in every answer. The sweep escalates, once, the event of every order whose
reply deadline passed without a reply: the order is claimed with ``UPDATE … WHERE escalated_at IS
NULL … RETURNING``, so two sweeps at once (two API workers) cannot both escalate it.

Who may reply is one function, ``may_reply``: whoever acts for the event's owner now.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.auth.scope import acts_for_owner, region_prefix, scope_of, scope_sql
from geoservice.auth.users import Principal
from geoservice.errors import Conflict, Forbidden, InvalidInput, NotFound
from geoservice.events.deadlines import is_overdue, running_clock
from geoservice.events.escalation import escalate_one_level
from geoservice.events.log import log_step
from geoservice.events.owners import served_grids
from geoservice.events.queries import COLUMNS, fetch_event
from geoservice.events.workflow import OPEN_STATES
from layers.models import Role

ISSUERS = frozenset({Role.supervisor, Role.admin})
REPLIERS = frozenset({Role.dispatcher, Role.grid_worker, Role.handler, Role.admin})
SWEEP_ACTOR = "supervision-sweep"
SWEEP_ROLE = "system"
MAX_TEXT = 2000
MAX_REPLY_HOURS = 24 * 30
ORDER_COLUMNS = """
    o.id, o.event_id, o.issued_at, o.issued_by, o.issuer_role, o.unit_code, o.instruction, o.reply_due_at,
    o.replied_at, o.replied_by, o.reply, o.escalated_at, o.escalated_to
"""
INSERT = text(
    f"""
    INSERT INTO supervision_orders AS o (event_id, issued_at, issued_by, issuer_role, unit_code, instruction,
                                         reply_due_at)
    VALUES (:event_id, :now, :by, :role, :unit, :instruction, :due) RETURNING {ORDER_COLUMNS}
    """
)
WAITING = text(f"SELECT {ORDER_COLUMNS} FROM supervision_orders o WHERE o.event_id = :id AND o.replied_at IS NULL")
LOCK_EVENT = text("SELECT status FROM events WHERE id = :id FOR UPDATE")
# The claim: only the sweep whose UPDATE flips escalated_at from NULL gets the row back.
CLAIM_LATE = text(
    """
    UPDATE supervision_orders o SET escalated_at = :now
      FROM events e
     WHERE e.id = o.event_id AND o.replied_at IS NULL AND o.escalated_at IS NULL AND o.reply_due_at <= :now
       AND e.status = ANY(:open)
    RETURNING o.id, o.event_id, o.reply_due_at
    """
)


def may_reply(session: Session, principal: Principal, event: dict[str, Any]) -> bool:
    """Whether ``principal`` may answer a supervision order on ``event``: whoever acts for its owner now.

    The order is flagged in the owner's queue, so the owner answers it (``auth.scope.acts_for_owner``):
    an admin, a handler of the department holding it, a dispatcher of the unit holding it (or above
    it in their subtree), a grid worker of the grid holding it. After an escalation the new owner
    answers; the previous one keeps reading it. A co-department answers through its task.
    """
    if principal.role not in REPLIERS:
        return False
    grids = served_grids(session, principal.username) if principal.role == Role.grid_worker else None
    return acts_for_owner(principal, event.get("owner_kind"), event.get("owner_code"), grids)


def reply_due(now: datetime, reply_due_at: datetime | None, reply_hours: float | None) -> datetime:
    """The reply deadline from exactly one of a zoned time or a number of hours; in the future, within 30 days."""
    if (reply_due_at is None) == (reply_hours is None):
        raise InvalidInput("give the reply deadline as reply_due_at or as reply_hours (one of them)",
                           title="Reply deadline required")  # fmt: skip
    if reply_hours is not None:
        if not 0 < reply_hours <= MAX_REPLY_HOURS:
            raise InvalidInput(f"reply_hours must be above 0 and at most {MAX_REPLY_HOURS}", title="Invalid deadline")
        return now + timedelta(hours=reply_hours)
    assert reply_due_at is not None
    if reply_due_at.tzinfo is None:
        raise InvalidInput("reply_due_at needs a time zone, e.g. 2026-12-05T18:00:00+08:00", title="Invalid deadline")
    if not now < reply_due_at <= now + timedelta(hours=MAX_REPLY_HOURS):
        raise InvalidInput("reply_due_at must be in the future and within 30 days", title="Invalid deadline")
    return reply_due_at


def issue_order(
    session: Session, event_id: int, issuer: Principal, instruction: str, due: datetime, now: datetime
) -> tuple[dict[str, Any], bool]:
    """Order a reply on one event; (the order, whether it is new).

    An event has at most one order awaiting reply: the same instruction again from the same issuer
    is a retry and answers the order stored first; anything else is a 409 naming the waiting order.
    """
    instruction = _text("instruction", instruction)
    event = _event(session, event_id, issuer)
    order, created = _issue(session, event, issuer, instruction, due, now, unit=None)
    if not created and (order["issued_by"] != issuer.username or order["instruction"] != instruction):
        raise Conflict(
            f"event {event_id} already has supervision order {order['id']} awaiting a reply by "
            f"{order['reply_due_at'].isoformat()}",
            title="Already under supervision",
            order_id=order["id"],
        )
    return order, created


def issue_unit_orders(
    session: Session, unit: str, issuer: Principal, instruction: str, due: datetime, now: datetime
) -> dict[str, Any]:
    """One order per overdue open event in the subtree of region or grid ``unit`` (督办 a unit's overdue work).

    Overdue is the deadlines module's own rule (the running clock past its due time). Events that
    already await a reply are left as they are and listed, so a retry adds nothing.
    """
    instruction = _text("instruction", instruction)
    known = session.execute(
        text("SELECT 1 FROM regions WHERE code = :u UNION ALL SELECT 1 FROM grids WHERE code = :u LIMIT 1"),
        {"u": unit},
    ).first()
    if known is None:
        raise InvalidInput(f"no region or grid {unit!r}", title="Unknown unit")
    candidates = session.execute(
        text(
            f"SELECT {COLUMNS} FROM events e "
            "WHERE coalesce(e.grid_code, e.community_code, e.town_code, '') LIKE :prefix "
            "AND e.status IN ('reported', 'dispatched', 'handling', 'reopened') ORDER BY e.id"
        ),
        {"prefix": region_prefix(unit) + "%"},
    )
    issued, waiting = [], []
    for row in candidates.all():  # one read of the subtree; overdue is the deadlines module's rule
        event = dict(row._mapping)
        if not is_overdue(running_clock(event), now):
            continue
        order, created = _issue(session, event, issuer, instruction, due, now, unit=unit)
        (issued if created else waiting).append(order if created else order["id"])
    return {"unit": unit, "orders": issued, "already_waiting": waiting}


def reply_to_order(session: Session, order_id: int, replier: Principal, reply: str, now: datetime) -> dict[str, Any]:
    """Answer an order; a retry with the same words answers the stored reply, other words are a 409."""
    reply = _text("reply", reply)
    order = session.execute(
        text(f"SELECT {ORDER_COLUMNS} FROM supervision_orders o WHERE o.id = :id FOR UPDATE"), {"id": order_id}
    ).first()
    event = None if order is None else fetch_event(session, order.event_id, scope_of(replier))
    if order is None or event is None:
        raise NotFound(f"there is no supervision order {order_id} that you may see", title="No such order")
    if not may_reply(session, replier, event):
        raise Forbidden(f"a {replier.role} may not reply to supervision orders; replies come from those who "
                        "act on the event (dispatcher, grid worker, handler)", title="Not allowed")  # fmt: skip
    if order.replied_at is not None:
        if order.replied_by == replier.username and order.reply == reply:
            return dict(order._mapping)
        raise Conflict(f"order {order_id} was answered by {order.replied_by} at {order.replied_at.isoformat()}",
                       title="Already answered")  # fmt: skip
    answered = session.execute(
        text(
            f"UPDATE supervision_orders o SET replied_at = :now, replied_by = :by, reply = :reply WHERE o.id = :id "
            f"RETURNING {ORDER_COLUMNS}"
        ),
        {"now": now, "by": replier.username, "reply": reply, "id": order_id},
    ).one()
    log_step(
        session, order.event_id, at=now, actor=replier.username, role=str(replier.role), action="supervision_reply",
        from_status=event["status"], to_status=event["status"], note=reply,
        details={"order_id": order_id, "reply_due_at": order.reply_due_at, "on_time": now <= order.reply_due_at},
    )  # fmt: skip
    return dict(answered._mapping)


def list_orders(
    session: Session, principal: Principal, *, waiting: bool | None, event_id: int | None, limit: int
) -> list[dict[str, Any]]:
    """Orders, newest first: every one for issuers (supervisors, admins), else those on events in scope."""
    where, params = ("TRUE", {}) if principal.role in ISSUERS else scope_sql(scope_of(principal))
    clauses = [where]
    if waiting is not None:
        clauses.append("o.replied_at IS NULL" if waiting else "o.replied_at IS NOT NULL")
    if event_id is not None:
        clauses.append("o.event_id = :event_id")
        params["event_id"] = event_id
    rows = session.execute(
        text(
            f"SELECT {ORDER_COLUMNS}, e.status AS event_status FROM supervision_orders o "
            f"JOIN events e ON e.id = o.event_id WHERE {' AND '.join(clauses)} ORDER BY o.id DESC LIMIT :limit"
        ),
        {**params, "limit": limit},
    )
    return [dict(r._mapping) for r in rows]


def order_view(order: dict[str, Any], now: datetime) -> dict[str, Any]:
    """An order as answered: ``overdue`` when the reply is late or still missing past its deadline."""
    replied = order["replied_at"]
    late = replied > order["reply_due_at"] if replied is not None else now > order["reply_due_at"]
    return {**order, "overdue": late}


def sweep_supervision(session: Session, now: datetime) -> list[int]:
    """Escalate, once, the open event of every order past its reply deadline without a reply; the order ids."""
    claimed = session.execute(CLAIM_LATE, {"now": now, "open": sorted(OPEN_STATES)}).all()
    for order in sorted(claimed, key=lambda o: o.id):
        to_level = escalate_one_level(
            session, order.event_id, now, actor=SWEEP_ACTOR, role=SWEEP_ROLE,
            note=f"supervision order {order.id} not answered by {order.reply_due_at.isoformat()}",
            details={"order_id": order.id, "reply_due_at": order.reply_due_at},
        )  # fmt: skip
        session.execute(
            text("UPDATE supervision_orders SET escalated_to = :to WHERE id = :id"), {"to": to_level, "id": order.id}
        )
    return [o.id for o in claimed]


def _issue(
    session: Session, event: dict[str, Any], issuer: Principal, instruction: str, due: datetime, now: datetime,
    *, unit: str | None,
) -> tuple[dict[str, Any], bool]:  # fmt: skip
    """Lock the event, then look for a waiting order: two issuers at once serialise on the event row."""
    status = session.execute(LOCK_EVENT, {"id": event["id"]}).scalar_one()
    if status not in OPEN_STATES:
        raise Conflict(f"event {event['id']} is {status}: only open events are supervised", title="Event closed")
    waiting = session.execute(WAITING, {"id": event["id"]}).first()
    if waiting is not None:
        return dict(waiting._mapping), False
    order = session.execute(
        INSERT, {"event_id": event["id"], "now": now, "by": issuer.username, "role": str(issuer.role), "unit": unit,
                 "instruction": instruction, "due": due},
    ).one()  # fmt: skip
    log_step(
        session, event["id"], at=now, actor=issuer.username, role=str(issuer.role), action="supervise",
        from_status=status, to_status=status, note=instruction,
        details={"order_id": order.id, "reply_due_at": due, "unit": unit},
    )  # fmt: skip
    return dict(order._mapping), True


def _event(session: Session, event_id: int, principal: Principal) -> dict[str, Any]:
    event = fetch_event(session, event_id, scope_of(principal))
    if event is None:
        raise NotFound(f"there is no event {event_id} that you may see", title="No such event")
    return event


def _text(name: str, value: str) -> str:
    value = (value or "").strip()
    if not value:
        raise InvalidInput(f"{name} is required", title="Text required")
    if len(value) > MAX_TEXT:
        raise InvalidInput(f"{name} has at most {MAX_TEXT:,} characters", title="Text too long")
    return value
