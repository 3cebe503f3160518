"""Request ids, JSON access logs and Prometheus metrics, as one ASGI middleware.

Every request gets an id (the caller's ``X-Request-ID`` when it sends a sane one, else a new
one), echoed in the response and carried by every log line written while the request runs, so an
operator can follow one report from the access log to the database error it met. Metrics are per
app instance (their own ``CollectorRegistry``), so tests that build many apps never share counters;
with several uvicorn workers each worker counts its own requests (scrape each, or run one worker
per container as is usual).
"""

from __future__ import annotations

import logging
import random
import re
import time
from contextvars import ContextVar
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
ACCESS = logging.getLogger("geoservice.access")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RequestIdFilter(logging.Filter):
    """Stamp each record with the id of the request being served (``-`` outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def logging_config(log_format: str = "json", level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the server (uvicorn applies it in every worker).

    One line per record on stderr: JSON objects for log shippers, or plain text. uvicorn's own
    access log is switched off: ``ObservabilityMiddleware`` writes a richer one.
    """
    formats = {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
        },
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"main": formats[log_format]},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "main", "filters": ["request_id"]}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }


class Metrics:
    """The app's Prometheus registry: request counts and latencies, plus state read at scrape time."""

    def __init__(self, app_state: Any) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "geoservice_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "geoservice_http_request_duration_seconds",
            "time from request to the last byte of the answer",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StateCollector(app_state))


class _StateCollector:
    """Router version and events by state, read when Prometheus scrapes (never stale, no bookkeeping)."""

    def __init__(self, app_state: Any) -> None:
        self.state = app_state

    def collect(self) -> list[GaugeMetricFamily]:
        families = []
        registry = getattr(self.state, "routers", None)
        router = registry.loaded() if registry is not None else None
        if router is not None:
            version = GaugeMetricFamily("geoservice_router_version", "boundary version of this worker's router")
            version.add_metric([], router.version_id)
            families.append(version)
        sessions = getattr(self.state, "sessions", None)
        if sessions is not None:
            events = GaugeMetricFamily("geoservice_events", "stored events by state", labels=["status"])
            with sessions() as session:
                for status, count in session.execute(text("SELECT status, count(*) FROM events GROUP BY status")):
                    events.add_metric([status], count)
            families.append(events)
        return families


def _new_request_id() -> str:
    """32 random hex digits, as ``uuid4().hex`` has, drawn without a system call.

    Why not ``uuid4``: its ``os.urandom`` gives up the GIL for the ``getrandom`` call, and under load
    the event loop then waits behind the report writer and the fan-out threads to take it back, on
    every request (py-spy put 9 % of the loop's samples there). An id to find a request in the logs
    needs to be unique, not unpredictable.
    """
    return f"{random.getrandbits(128):032x}"


class ObservabilityMiddleware:
    """Request id in and out, one access-log line and the metrics of every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SANE_ID.match(incoming) else _new_request_id()
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            metrics: Metrics | None = getattr(scope["app"].state, "metrics", None)
            if metrics is not None:
                metrics.requests.labels(scope["method"], route, str(status)).inc()
                metrics.latency.labels(scope["method"], route).observe(elapsed)
            ACCESS.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={"route": route, "status": status, "duration_ms": round(elapsed * 1000, 2)},
            )
            REQUEST_ID.reset(token)
