"""Limits that keep one client from hurting the others: request body size, and a rate for the public.

The body limit is an ASGI middleware so that an oversized upload is refused before any handler
reads it: a ``Content-Length`` over the limit is refused at once, a chunked body as soon as the
bytes read pass the limit. The public rate limit applies to the public role — the anonymous per
client address, signed-in citizens per account — on the endpoints the public may use (locate,
reporting, following one's own report), and to every sign-in per address whatever token comes
with it; a locate batch counts its points. Signed-in staff are never throttled. The bucket is kept in
PostgreSQL and shared by every worker (``geoservice.api.shared_rate``, ``GEOSERVICE_RATE_LIMIT_SHARED``,
the default), or per process here (``PublicRateLimiter``). Behind a
reverse proxy run uvicorn with ``--forwarded-allow-ips`` so the client address is the real one.
"""

from __future__ import annotations

import math
import threading
import time

from limits import parse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geoservice.api.problems import ProblemError, problem


class BodySizeLimit:
    """Answer 413 to request bodies larger than ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is None and b"chunked" not in headers.get(b"transfer-encoding", b"").lower():
            await self.app(scope, receive, send)  # no body at all (a GET): nothing to count
            return
        if declared is not None:  # the server holds the body to its declared length
            if not declared.isdigit() or int(declared) <= self.max_bytes:
                await self.app(scope, receive, send)
            else:
                await self._refuse(scope, receive, send)
            return
        # Chunked: read it here, up to the limit, and hand the app a replay. A framework would turn
        # an exception raised while it reads into a 400, so the decision has to be made before.
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request body is larger than {self.max_bytes:,} bytes; send less per request"
        await problem(413, "Request too large", detail)(scope, receive, send)


class PublicRateLimiter:
    """A token bucket per client address for anonymous callers (e.g. ``120/minute``: bursts of 120, then 2/s).

    The notation is parsed by the ``limits`` package, but the bucket is ours: its in-memory storage
    starts a timer thread every few milliseconds while requests come in, which cost more than the
    requests it limited. A bucket is two floats under one lock.
    """

    MAX_CLIENTS = 100_000  # past this, full buckets (clients quiet long enough) are forgotten
    blocking = False  # checked on the event loop: two floats under a lock

    def __init__(self, rate: str) -> None:
        item = parse(rate)
        self.text = str(item)
        self.capacity = float(item.amount)
        self.seconds_per_token = item.get_expiry() / item.amount
        self._buckets: dict[str, tuple[float, float]] = {}  # client → (tokens left, when counted)
        self._lock = threading.Lock()

    def check(self, client: str, cost: int = 1) -> None:
        """Count ``cost`` units (a request, or a batch's points) of ``client``; a 429 with ``Retry-After`` when short.

        A refused batch takes nothing from the bucket, so the client can send a smaller one.
        """
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(client, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) / self.seconds_per_token)
            if tokens >= cost:
                self._buckets[client] = (tokens - cost, now)
                if len(self._buckets) > self.MAX_CLIENTS:
                    self._forget_full(now)
                return
            self._buckets[client] = (tokens, now)
        raise too_many(self.text, tokens, cost, self.capacity, self.seconds_per_token)

    def _forget_full(self, now: float) -> None:
        refill = self.seconds_per_token
        self._buckets = {c: (t, at) for c, (t, at) in self._buckets.items() if t + (now - at) / refill < self.capacity}


def too_many(rate: str, tokens: float, cost: int, capacity: float, seconds_per_token: float) -> ProblemError:
    """The 429 problem for a bucket holding ``tokens`` asked for ``cost``, with the seconds to wait."""
    wait = max(1, math.ceil((min(cost, capacity) - tokens) * seconds_per_token))
    return ProblemError(
        429,
        "Too many requests",
        f"at most {rate} for the public (a locate batch counts its points); try again in {wait} s "
        "(staff: sign in for no limit)",
        headers={"Retry-After": str(wait)},
    )
