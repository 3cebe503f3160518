"""The delivery loop of the transactional outbox: send each due delivery, retry with backoff, then give up.

Written here rather than with pgqueuer or procrastinate: deliveries are rows the fan-out writes in the
same transaction as the step's inbox rows and its ``done`` mark (which a trigger queued in the step's
own transaction), and the dead-letter list and ``retry`` read and change those same rows. A job library
would add its own tables and a second enqueue path beside them.

A delivery is claimed ``FOR UPDATE SKIP LOCKED`` and the row stays locked while it is sent, so two
loops (in two processes) never send it at once; the outcome is committed right after, one delivery per
transaction. A crash (or PostgreSQL going away) between the send and the commit leaves it pending, and
it is sent again: delivery is at least once, and the delivery id lets the receiver process it once.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geoservice.errors import NotFound
from geoservice.infra.database import transaction
from geoservice.notifications.gateways import DeliveryFailed, FileSmsGateway, SmsGateway, WebhookSender
from geoservice.notifications.settings import NotifySettings

log = logging.getLogger(__name__)

CLAIM = text(
    """
    SELECT id, channel, target, payload, attempts, now() AS now FROM deliveries
     WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= now()
     ORDER BY next_attempt_at, id LIMIT 1
       FOR UPDATE SKIP LOCKED
    """
)
DELIVERED = text(
    "UPDATE deliveries SET attempts = attempts + 1, delivered_at = now(), last_error = NULL WHERE id = :id"
)
FAILED = text(
    "UPDATE deliveries SET attempts = :attempts, last_error = :error, next_attempt_at = :next, "
    "dead_at = CASE WHEN :dead THEN now() END WHERE id = :id"
)


@dataclass
class Gateways:
    """The channels the loop sends through (tests and deployments may pass their own SMS adapter)."""

    sms: SmsGateway
    webhook: WebhookSender | None

    @classmethod
    def from_settings(cls, settings: NotifySettings) -> Gateways:
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
        sender = WebhookSender(secret, settings.webhook_timeout_s) if settings.webhooks else None
        return cls(FileSmsGateway(settings.sms_path), sender)

    def send(self, channel: str, target: str, payload: dict[str, Any], delivery_id: int) -> None:
        if channel == "sms":
            self.sms.send(target, str(payload.get("text", "")), delivery_id)
        elif channel == "webhook" and self.webhook is not None:
            self.webhook.send(target, payload, delivery_id)
        else:
            raise DeliveryFailed(f"no gateway for {channel}")


def backoff(attempts: int, settings: NotifySettings, rng: random.Random | None = None) -> float:
    """Seconds to wait after ``attempts`` failures: doubling from ``backoff_s``, capped, with ±20 % jitter.

    The jitter keeps the deliveries of a receiver that was down from all coming back in the same second.
    """
    base = min(settings.backoff_s * 2 ** (attempts - 1), settings.backoff_max_s)
    return base * (0.8 + 0.4 * (rng or random).random())


def deliver_one(session: Session, gateways: Gateways, settings: NotifySettings) -> bool:
    """Send the next due delivery and record the outcome (in the caller's transaction); False when none is due."""
    row = session.execute(CLAIM).first()
    if row is None:
        return False
    try:
        gateways.send(row.channel, row.target, row.payload, row.id)
    except Exception as exc:  # any failure of the channel (not of the database) counts as an attempt
        attempts = row.attempts + 1
        dead = attempts >= settings.max_attempts
        wait = timedelta(seconds=backoff(attempts, settings))
        session.execute(FAILED, {"id": row.id, "attempts": attempts, "error": str(exc)[:1000],
                                 "next": row.now + wait, "dead": dead})  # fmt: skip
        log.warning("delivery %s failed (attempt %s%s): %s", row.id, attempts, ", dead" if dead else "", exc)
        return True
    session.execute(DELIVERED, {"id": row.id})
    return True


def drain(engine: Engine, gateways: Gateways, settings: NotifySettings, limit: int = 1000) -> int:
    """Deliver what is due, committing after each, until nothing is (or ``limit``); how many were tried."""
    tried = 0
    while tried < limit:
        with transaction(engine) as session:
            if not deliver_one(session, gateways, settings):
                return tried
        tried += 1
    return tried


def dead_letters(session: Session, limit: int = 100) -> list[dict[str, Any]]:
    """Deliveries that ran out of attempts, newest first."""
    rows = session.execute(
        text("SELECT id, event_id, channel, target, attempts, last_error, created_at, dead_at FROM deliveries "
             "WHERE dead_at IS NOT NULL ORDER BY dead_at DESC, id DESC LIMIT :n"),
        {"n": limit},
    ).mappings()  # fmt: skip
    return [dict(r) for r in rows]


def retry(session: Session, delivery_id: int, now: datetime | None = None) -> None:
    """Give a dead (or waiting) delivery a fresh set of attempts, due now; a delivered one is left alone."""
    updated = session.execute(
        text("UPDATE deliveries SET attempts = 0, dead_at = NULL, next_attempt_at = coalesce(:now, now()) "
             "WHERE id = :id AND delivered_at IS NULL RETURNING id"),
        {"id": delivery_id, "now": now},
    ).first()  # fmt: skip
    if updated is None:
        raise NotFound(f"no undelivered delivery {delivery_id}", title="Delivery not found")
