"""``POST /v1/events`` answered before FastAPI's routing, when nothing about it needs the framework.

A report's own work on the event loop is small (its checks, a queue, the answer's JSON); FastAPI's
route matching, dependency solving and body validation were most of the loop's time per report,
and the loop shares one GIL with the writer that stores the batches (bench/RESULTS.md, "A report
before routing"). This middleware takes the common report itself — a JSON body that the route's
own model (``EventCreate``) accepts, no query string and no ``Idempotency-Key`` header (the route
reconciles the two keys), from a caller this process already knows whose role may report and, for
the public, within the in-process rate limit — and hands everything else to the route (with the
body, when it had to read it to know). Both paths read the body into the same ``ReportRequest``
(``events.report_of``), submit it to the same intake and build the same answer
(``events.answer_of``); a report the intake refuses gets the app's own exception handler's answer,
as the route's refusal would. The public's rate limit is charged only once the body is a report,
so a body the route refuses is charged once, by the route.
"""

from __future__ import annotations

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geoservice.api import events as events_api
from geoservice.api.locate_hits import known_or_anonymous
from geoservice.api.problems import ProblemError
from geoservice.auth.policy import charge_public
from geoservice.auth.users import Principal
from layers.models import Role

PATH = "/v1/events"
ROUTE = next(r for r in events_api.router.routes if getattr(r, "endpoint", None) is events_api.post_event)
JSON_TYPES = (b"application/json", b"application/json; charset=utf-8")


class ReportHits:
    """ASGI middleware: the plain ``POST /v1/events`` without the framework."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = _eligible(scope)
        if principal is None:  # not a plain report: the body is left unread, for the route
            await self.app(scope, receive, send)
            return
        body, rest = await _read(receive)
        response = await _answer(scope, principal, body) if rest is None else None
        if response is None:
            await self.app(scope, _replay(body, rest, receive), send)
            return
        scope["route"] = ROUTE  # the access log and metrics name the route, as for any request
        await response(scope, receive, send)


def _eligible(scope: Scope) -> Principal | None:
    """The caller of a report this middleware may take, from the request's line and headers; else None."""
    if not (scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == PATH):
        return None
    headers = dict(scope["headers"])
    if scope["query_string"] or b"idempotency-key" in headers:
        return None
    if headers.get(b"content-type", b"").lower() not in JSON_TYPES:
        return None
    principal = known_or_anonymous(scope)
    if principal is None or principal.role not in events_api.REPORTERS.roles:
        return None
    limiter = getattr(scope["app"].state, "public_rate", None)
    if principal.role == Role.public and limiter is not None and limiter.blocking:
        return None  # a rate limit kept in the database: the route's work
    return principal


async def _answer(scope: Scope, principal: Principal, raw: bytes) -> Response | None:
    try:
        body = events_api.EventCreate.model_validate(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValidationError):
        return None  # the route says why; nothing was charged here, so the public is charged once
    app = scope["app"]
    request = Request(scope)
    try:
        charge_public(request, principal)  # the route's own charge: staff are never limited
    except ProblemError:
        return None  # a refused check takes nothing: the route refuses again and says why
    address = request.client.host if request.client else None
    report = events_api.report_of(body, principal, body.idempotency_key, address)
    try:
        receipt = await events_api.intake_of(app).submit(report)
    except Exception as exc:  # refused, so not stored
        return await _refusal(scope, exc)
    return events_api.answer_of(app, principal, receipt)


async def _refusal(scope: Scope, exc: Exception) -> Response | None:
    """The answer the route would give ``exc``: the app's own exception handler for it (one wording).

    Not the route itself: it would submit the report again and charge the public's rate limit twice.
    None (the route tries again) for an exception no handler words.
    """
    handlers = scope["app"].exception_handlers
    for kind in type(exc).__mro__:
        if kind in handlers:
            return await handlers[kind](Request(scope), exc)
    return None


async def _read(receive: Receive) -> tuple[bytes, Message | None]:
    """The whole body; and the message that ended reading early (a disconnect), else None."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), None


def _replay(body: bytes, rest: Message | None, receive: Receive) -> Receive:
    """A ``receive`` that gives the route the body read here, then what the server sends next."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": rest is not None}]
    if rest is not None:  # the client went away mid-body: the route sees it as it would have
        pending.append(rest)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay
