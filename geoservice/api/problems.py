"""RFC 7807 problem responses, from one place: the table that maps each domain error to a problem.

Domain code raises the exceptions of ``geoservice.errors`` (or its own, listed here); routes let
them through, and the handlers installed by ``register_error_handlers`` render them as
``application/problem+json`` with a ``detail`` a person can act on. The most specific entry of
``PROBLEMS`` wins (the exception's class hierarchy is walked), so ``VersionNotFound`` is a 404 while
any other ``VersionError`` is a 409. Only ``geoservice.api`` builds HTTP problems: ``ProblemError``
is for checks that are about HTTP itself (parameters, limits, tiles' addresses).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from etl.load import ImportRejected
from etl.readers import ReadError
from geoservice.boundaries.drafts import EditRejected
from geoservice.boundaries.publish import DraftInvalid
from geoservice.boundaries.versions import VersionError, VersionNotFound
from geoservice.city.load import PackRejected
from geoservice.coverage.service import NoDemandLayer
from geoservice.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    SignInRequired,
    TooManyAttempts,
    Unavailable,
)
from geoservice.media.images import NotAPhoto, PhotoTooLarge
from layers.crs import InvalidCoordinates, UnknownCRSError

PROBLEM = "application/problem+json"
CHALLENGE = {"WWW-Authenticate": "Bearer"}
log = logging.getLogger(__name__)


class ProblemError(Exception):
    """An HTTP problem raised by the API layer itself; it already knows its status and extra members."""

    def __init__(
        self, status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: object
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra
        self.headers = headers or {}


@dataclass(frozen=True)
class ProblemKind:
    """How one kind of domain error is answered; ``title`` None: the exception's own title."""

    status: int
    title: str | None = None
    members: Callable[[Exception], dict[str, object]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    headers_of: Callable[[Exception], dict[str, str]] | None = None


def _retry_after(exc: Exception) -> dict[str, str]:
    assert isinstance(exc, TooManyAttempts)
    return {"Retry-After": str(exc.retry_after_s)}


def _findings(exc: Exception) -> dict[str, object]:
    assert isinstance(exc, DraftInvalid)
    return {"errors": [f.as_json() for f in exc.findings[:100]]}


def _rejected_features(exc: Exception) -> dict[str, object]:
    assert isinstance(exc, ImportRejected)
    return {"errors": [{"feature": e.index, "code": e.code, "message": e.message} for e in exc.errors[:200]]}


PROBLEMS: dict[type[Exception], ProblemKind] = {
    InvalidInput: ProblemKind(422),
    NotFound: ProblemKind(404),
    Conflict: ProblemKind(409),
    SignInRequired: ProblemKind(401, headers=CHALLENGE),
    Forbidden: ProblemKind(403),
    Unavailable: ProblemKind(503),
    TooManyAttempts: ProblemKind(429, headers_of=_retry_after),
    UnknownCRSError: ProblemKind(422, "Unknown coordinate reference system"),
    InvalidCoordinates: ProblemKind(422, "Invalid coordinates"),
    VersionError: ProblemKind(409, "Boundary version conflict"),
    VersionNotFound: ProblemKind(404, "No such boundary version"),
    DraftInvalid: ProblemKind(409, "Draft has validation errors", _findings),
    EditRejected: ProblemKind(422, "Edit refused"),
    ImportRejected: ProblemKind(422, "File rejected", _rejected_features),
    ReadError: ProblemKind(422, "File cannot be read"),
    PackRejected: ProblemKind(422, "City pack rejected"),
    NoDemandLayer: ProblemKind(409, "No demand layer"),
    PhotoTooLarge: ProblemKind(413),
    NotAPhoto: ProblemKind(415),
}


ANSWERED = (ProblemError, *PROBLEMS)  # what a route that answers in its own format (Open311) catches


def problem_error(exc: Exception) -> ProblemError:
    """The problem a domain error is answered with; only the table's kinds (``ANSWERED``) may be given."""
    if isinstance(exc, ProblemError):
        return exc
    for kind in type(exc).__mro__:
        found = PROBLEMS.get(kind)
        if found is not None:
            title = found.title or getattr(exc, "title", None) or "Invalid request"
            members = dict(getattr(exc, "members", {}) or {})
            if found.members is not None:
                members.update(found.members(exc))
            headers = {**found.headers, **(found.headers_of(exc) if found.headers_of else {})}
            return ProblemError(found.status, title, str(exc), headers, **members)
    raise TypeError(f"{type(exc).__name__} is not in api.problems.PROBLEMS") from exc


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

    @app.exception_handler(DataError)
    async def _value_refused(request: Request, exc: DataError) -> JSONResponse:
        # The last line of defence: PostgreSQL's "data exception" class (a value out of range for its
        # column, a malformed time) is about a value the request carried, and the transaction died
        # with it, so nothing was written. Input checks name the field first; reaching this is a
        # check missing, logged as such. The SQL is not shown, only PostgreSQL's one-line reason.
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "value not accepted"
        log.warning("a value reached the database unchecked (%s %s): %s", request.method, request.url.path, reason)
        return problem(422, "Value not accepted", f"a value in the request cannot be used: {reason}")

    async def _domain(_: Request, exc: Exception) -> JSONResponse:
        mapped = problem_error(exc)
        return problem(mapped.status, mapped.title, mapped.detail, mapped.headers, **mapped.extra)

    for kind in PROBLEMS:
        app.add_exception_handler(kind, _domain)
