"""RFC 7807 problem responses, from one place.

Each domain error maps to one status; handlers render ``application/problem+json`` with a
``detail`` a person can act on. Request validation errors become 422 problems listing each field.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from geoservice.boundaries.versions import VersionError
from layers.crs import InvalidCoordinates, UnknownCRSError

PROBLEM = "application/problem+json"
log = logging.getLogger(__name__)


class ProblemError(Exception):
    """An error that already knows its status and may carry extra members for the problem body."""

    def __init__(
        self, status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: object
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra
        self.headers = headers or {}


STATUS_OF: dict[type[Exception], tuple[int, str]] = {
    UnknownCRSError: (422, "Unknown coordinate reference system"),
    InvalidCoordinates: (422, "Invalid coordinates"),
    VersionError: (409, "Boundary version conflict"),
}


def problem_error(exc: Exception) -> ProblemError:
    """The problem a mapped domain error is answered with, for code that must raise or embed it itself.

    Event reports raise it (Open311 catches ``ProblemError`` to answer in its own format), and a
    batch answer embeds one per refused point; the status and title still come from ``STATUS_OF``.
    """
    status, title = next(STATUS_OF[kind] for kind in type(exc).__mro__ if kind in STATUS_OF)
    return ProblemError(status, title, str(exc))


def problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: object
) -> JSONResponse:
    """A problem+json response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def register_error_handlers(app: FastAPI) -> None:
    """Install the handlers once, on the app."""

    @app.exception_handler(ProblemError)
    async def _problem(_: Request, exc: ProblemError) -> JSONResponse:
        return problem(exc.status, exc.title, exc.detail, exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem(422, "Invalid request", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), str(exc.detail))

    @app.exception_handler(OperationalError)
    async def _database_unavailable(_: Request, exc: OperationalError) -> JSONResponse:
        # The database restarting or unreachable: nothing was committed (the transaction died with
        # the connection), so the client may retry; the pool's pre-ping reconnects on the next call.
        log.warning("database unavailable: %s", str(exc.orig).strip().splitlines()[0] if exc.orig else exc)
        detail = "the database is not answering; nothing was stored. Retry in a few seconds (with the same key)."
        return problem(503, "Database unavailable", detail, {"Retry-After": "2"})

    for error_type, (status, title) in STATUS_OF.items():

        async def _mapped(_: Request, exc: Exception, status: int = status, title: str = title) -> JSONResponse:
            return problem(status, title, str(exc))

        app.add_exception_handler(error_type, _mapped)
