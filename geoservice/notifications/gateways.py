"""Outbound channels: an SMS gateway interface (a file gateway by default) and signed webhooks.

Every message carries its delivery id. The outbox sends at least once (a crash between sending and
recording it sends again), so receivers deduplicate by that id; with it, each message is processed once.

A webhook is signed like Stripe's: ``X-Geoservice-Signature: sha256=<hex>`` is HMAC-SHA256 over
``"<timestamp>.<body>"`` with the shared secret, and ``X-Geoservice-Timestamp`` is that Unix time, so a
receiver can refuse replays of old bodies; ``X-Geoservice-Delivery`` is the delivery id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import httpx

DELIVERY_HEADER = "X-Geoservice-Delivery"
TIMESTAMP_HEADER = "X-Geoservice-Timestamp"
SIGNATURE_HEADER = "X-Geoservice-Signature"


class DeliveryFailed(Exception):
    """The channel did not take the message; the outbox retries it later."""


class SmsGateway(Protocol):
    """What an SMS provider adapter implements: send one text to one phone, or raise ``DeliveryFailed``."""

    def send(self, phone: str, text: str, delivery_id: int) -> None: ...


class FileSmsGateway:
    """Appends one JSON line per message to a file: the default, for development and for audits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def send(self, phone: str, text: str, delivery_id: int) -> None:
        line = json.dumps(
            {"delivery_id": delivery_id, "phone": phone, "text": text, "at": datetime.now(UTC).isoformat()},
            ensure_ascii=False,
        )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock, self.path.open("a", encoding="utf-8") as out:
                out.write(line + "\n")
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            raise DeliveryFailed(f"cannot write {self.path.name}: {exc.strerror}") from exc


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``timestamp.body``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_headers(secret: str, body: bytes, delivery_id: int, now: float | None = None) -> dict[str, str]:
    """The headers of one webhook request."""
    timestamp = str(int(now if now is not None else time.time()))
    return {
        "Content-Type": "application/json",
        DELIVERY_HEADER: str(delivery_id),
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def verify(secret: str, headers: Mapping[str, str], body: bytes, tolerance_s: float = 300) -> bool:
    """What a receiver runs: the signature matches and the timestamp is recent (constant-time compare)."""
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp = lower.get(TIMESTAMP_HEADER.lower(), "")
    given = lower.get(SIGNATURE_HEADER.lower(), "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(given, signature(secret, timestamp, body))


class WebhookSender:
    """POSTs signed JSON bodies; any answer but 2xx, or no answer within the timeout, is a failure."""

    def __init__(self, secret: str, timeout_s: float) -> None:
        self.secret = secret
        self.client = httpx.Client(timeout=timeout_s)

    def send(self, url: str, payload: Mapping[str, object], delivery_id: int) -> None:
        body = json.dumps({**payload, "delivery_id": delivery_id}, ensure_ascii=False).encode()
        try:
            answer = self.client.post(url, content=body, headers=signed_headers(self.secret, body, delivery_id))
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
        if not answer.is_success:
            raise DeliveryFailed(f"HTTP {answer.status_code} from the receiver")

    def close(self) -> None:
        self.client.close()
