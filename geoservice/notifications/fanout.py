"""Fan-out: turn queued steps into inbox rows and outbox deliveries, in one transaction with their ``done``.

The queue rows are claimed ``FOR UPDATE SKIP LOCKED`` (two workers never take the same step, neither
waits on the other) and marked done in the same transaction that writes what they fan out to; every
insert is ``ON CONFLICT DO NOTHING`` on a key per (step, person[, channel]), so a step fanned out twice
(a crash after the commit was sent but before it was seen) writes nothing the second time.

Up to ``BATCH`` steps share a transaction: the claim, the read of their events, the ``done``
update, the wake-up, the inbox rows' insert and the commit (a WAL flush) are paid once for them
rather than once each; the city's dispatchers, the batch's grid workers and its area subscribers are
read once per batch (``recipients.prime``). One step a transaction, the fan-out fell behind a burst
of reports in the same process (issue 22; docs/notifications.md).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geoservice.events.transitions import PUBLIC_NOTE
from geoservice.infra.database import transaction
from geoservice.notifications.recipients import Recipient, prime, recipients
from geoservice.notifications.rules import PROGRESS, rule_for, told_followers
from geoservice.notifications.settings import NotifySettings
from layers.names import STATUS_NAMES, WARNING_NAMES

CLAIM = text(
    """
    SELECT q.log_id, l.event_id, l.at, l.actor, l.role, l.action, l.from_status, l.to_status, l.note, l.details
      FROM notification_queue q JOIN event_log l ON l.id = q.log_id
     WHERE q.done_at IS NULL
     ORDER BY q.log_id LIMIT :limit
       FOR UPDATE OF q SKIP LOCKED
    """
)
EVENTS = text(
    "SELECT e.id, e.status, e.escalation_level, e.grid_code, e.community_code, e.town_code, e.department_code, "
    "e.handler_username, e.reporter_username, e.description, e.category_code, c.name AS category_name "
    "FROM events e LEFT JOIN categories c ON c.code = e.category_code WHERE e.id = ANY(:ids)"
)
# A batch's inbox rows in one statement, in the order the steps and their people came.
INBOX = text(
    "INSERT INTO notifications (user_id, event_id, log_id, action, title, body, created_at) "
    "SELECT r.user_id, r.event_id, r.log_id, r.action, r.title, r.body, now() "
    "FROM unnest(CAST(:user_id AS int[]), CAST(:event_id AS bigint[]), CAST(:log_id AS bigint[]), "
    "CAST(:action AS text[]), CAST(:title AS text[]), CAST(:body AS text[])) "
    "WITH ORDINALITY AS r(user_id, event_id, log_id, action, title, body, n) ORDER BY r.n "
    "ON CONFLICT DO NOTHING RETURNING log_id"
)
INBOX_COLUMNS = ("user_id", "event_id", "log_id", "action", "title", "body")
OUTBOX = text(
    "INSERT INTO deliveries (log_id, event_id, user_id, channel, target, payload, idempotency_key) "
    "VALUES (:log_id, :event_id, :user_id, :channel, :target, CAST(:payload AS jsonb), :key) ON CONFLICT DO NOTHING"
)
DONE = text("UPDATE notification_queue SET done_at = now() WHERE log_id = ANY(:log_ids)")
# Delivered at commit, so a live stream never wakes for an inbox row that then rolls back.
WAKE = text("SELECT pg_notify('geoservice_live', message) FROM unnest(CAST(:messages AS text[])) AS message")
BATCH = 50  # steps per transaction
STATUS_ZH = STATUS_NAMES  # one table of names (layers.names), also served to the pages
COLOUR_ZH = {k: v for k, v in WARNING_NAMES.items() if k != "none"}


@dataclass(frozen=True)
class FanOut:
    """What one step became."""

    log_id: int
    inbox: int
    deliveries: int


def fan_out_steps(session: Session, settings: NotifySettings, limit: int = BATCH) -> list[FanOut]:
    """Claim up to ``limit`` queued steps and fan each out, in the caller's transaction; [] when none wait."""
    steps = session.execute(CLAIM, {"limit": limit}).mappings().all()
    if not steps:
        return []
    found = session.execute(EVENTS, {"ids": list({step["event_id"] for step in steps})}).mappings()
    events = {row["id"]: row for row in found}
    prime(session, events.values())
    rows: list[dict[str, Any]] = []
    deliveries = [_fan_out(session, settings, step, events.get(step["event_id"]), rows) for step in steps]
    told = _write_inbox(session, rows)
    session.execute(DONE, {"log_ids": [step["log_id"] for step in steps]})
    session.execute(WAKE, {"messages": sorted({f"inbox:{step['event_id']}" for step in steps})})
    return [FanOut(step["log_id"], told[step["log_id"]], queued)
            for step, queued in zip(steps, deliveries, strict=True)]  # fmt: skip


def _write_inbox(session: Session, rows: list[dict[str, Any]]) -> Counter[int]:
    """Insert the inbox rows; how many were new per step (a step fanned out before writes none again)."""
    if not rows:
        return Counter()
    columns = {name: [row[name] for row in rows] for name in INBOX_COLUMNS}
    return Counter(session.execute(INBOX, columns).scalars())


def _fan_out(session: Session, settings: NotifySettings, step: Any, found: Any, inbox: list[dict[str, Any]]) -> int:
    """One step's deliveries queued and its inbox rows added to ``inbox``; how many deliveries.

    ``found``: its event as it is now (None: deleted).
    """
    deliveries = 0
    event = as_of_step(found, step["details"] or {}) if found is not None else None
    rule = rule_for(step["action"])
    rules = [rule] if rule is not None else []
    if (step["details"] or {}).get(PUBLIC_NOTE) and not told_followers(rule):
        rules.append(PROGRESS)
    told: set[int] = set()
    for current in rules if event is not None else []:
        named = recipients(session, event, current.audiences, actor=step["actor"])
        people = [p for p in named if p.user_id not in told]
        told.update(p.user_id for p in people)
        title = current.title.format(id=event["id"])
        bodies = {False: _body(step, event, public=False), True: _body(step, event, public=True)}
        if "inbox" in current.channels:
            inbox.extend({"user_id": person.user_id, "event_id": event["id"], "log_id": step["log_id"],
                          "action": step["action"], "title": title, "body": bodies[person.follower]}
                         for person in people)  # fmt: skip
        if "sms" in current.channels:
            for person in (p for p in people if p.phone and not p.follower):
                text_ = f"{title}：{bodies[False]}"
                deliveries += _queue(session, step, "sms", person.phone, {"text": text_}, person)
        if "webhook" in current.channels:
            payload = _payload(step, event, title, bodies[False], people)
            for url in settings.webhooks:
                deliveries += _queue(session, step, "webhook", url, payload, None)
    return deliveries


def as_of_step(event: Any, details: dict[str, Any]) -> dict[str, Any]:
    """The event with the department, handler and level the step itself set (its log ``details``).

    The fan-out may run after later steps changed the event: a dispatch is told to the department it
    went to, an escalation to the dispatchers of the level it reached, whatever happened since.
    """
    event = dict(event)
    for column, key in (("department_code", "department"), ("handler_username", "handler"),
                        ("escalation_level", "to_level")):  # fmt: skip
        if details.get(key) or (key == "handler" and key in details):  # a dispatch to no one named names no one
            event[column] = details[key]
    return event


def drain(engine: Engine, settings: NotifySettings, limit: int = 1000) -> int:
    """Fan out queued steps, ``BATCH`` a transaction, until the queue is empty (or ``limit``); how many."""
    done = 0
    while done < limit:
        with transaction(engine) as session:
            fanned = fan_out_steps(session, settings, min(BATCH, limit - done))
        if not fanned:
            return done
        done += len(fanned)
    return done


def _queue(session: Session, step: Any, channel: str, target: str, payload: dict, person: Recipient | None) -> int:
    who = str(person.user_id) if person is not None else hashlib.sha256(target.encode()).hexdigest()[:16]
    key = f"{step['log_id']}:{channel}:{who}"
    row = {"log_id": step["log_id"], "event_id": step["event_id"], "user_id": person.user_id if person else None,
           "channel": channel, "target": target, "payload": json.dumps(payload, ensure_ascii=False),
           "key": key}  # fmt: skip
    return session.execute(OUTBOX, row).rowcount


def _body(step: Any, event: Any, *, public: bool) -> str:
    """Category, status, colour, description and note.

    The public get the note only when it is public, and no description (a subscriber's area holds
    other people's reports).
    """
    parts = [event["category_name"] or event["category_code"], STATUS_ZH.get(event["status"], event["status"])]
    if step["action"] == "warning":
        parts.append(COLOUR_ZH.get((step["details"] or {}).get("colour", ""), ""))
    if event["description"] and not public:
        parts.append(event["description"][:60])
    if step["note"] and (not public or (step["details"] or {}).get(PUBLIC_NOTE)):
        parts.append(step["note"][:200])
    return " · ".join(p for p in parts if p)


def _payload(step: Any, event: Any, title: str, body: str, people: list[Recipient]) -> dict[str, Any]:
    """The webhook body: the step as the audit log shows it, and whom the service told."""
    return {
        "event_id": event["id"], "log_id": step["log_id"], "action": step["action"], "at": step["at"].isoformat(),
        "actor": step["actor"], "from_status": step["from_status"], "to_status": step["to_status"],
        "status": event["status"], "escalation_level": event["escalation_level"],
        "department_code": event["department_code"], "title": title, "body": body,
        "recipients": [p.username for p in people],
    }  # fmt: skip
