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
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from etl.formats import ReadError  # etl.readers' own, without the readers (geopandas, pyogrio)
from etl.load import ImportRejected
from geoservice.boundaries.drafts import EditRejected
from geoservice.boundaries.publish import DraftInvalid
from geoservice.boundaries.versions import VersionError, VersionNotFound
from geoservice.coverage.inputs import NoDemandLayer
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
    # city.load's PackRejected is an InvalidInput (above): 422 and its own title, "City pack rejected".
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


Dialect = Callable[[Request, ProblemError], Response]  # how a standard's routes answer errors instead


def allowed_methods(request: Request) -> str:
    """Every method some route takes at this path, for a 405's ``Allow`` (Starlette names only the first route's)."""
    methods: set[str] = set()
    probe = {**request.scope, "method": "GET"}
    # FastAPI keeps included routers as lazily built branches; ``iter_route_contexts`` walks the
    # routes as they are served (prefix applied), top-level Starlette routes included.
    for context in iter_route_contexts(request.app.router.routes):
        match, _ = context.route.matches(probe)
        if match != Match.NONE:
            methods |= set(context.methods or ())
    return ", ".join(sorted(methods))


def register_error_handlers(app: FastAPI, dialects: dict[str, Dialect] | None = None) -> None:
    """Install the handlers once, on the app.

    ``dialects`` maps a path prefix to the error format of a standard served there (Open311's list of
    ``{code, description}``): every error under that prefix, a framework's 404 and 405 included,
    is answered in it; everywhere else an RFC 7807 problem.
    """
    prefixes = sorted((dialects or {}).items(), key=lambda item: -len(item[0]))

    def answer(request: Request, mapped: ProblemError) -> Response:
        for prefix, dialect in prefixes:
            if request.url.path.startswith(prefix):
                return dialect(request, mapped)
        return problem(mapped.status, mapped.title, mapped.detail, mapped.headers, **mapped.extra)

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> Response:
        return answer(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return answer(request, ProblemError(422, "Invalid request", detail, errors=errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # RFC 9110 §15.5.6: a 405 names what the resource does take
            headers["Allow"] = allowed_methods(request)
        return answer(request, ProblemError(exc.status_code, str(exc.detail), _sentence(exc, headers), headers))

    @app.exception_handler(OperationalError)
    async def _database_unavailable(request: Request, exc: OperationalError) -> Response:
        # The database restarting or unreachable: nothing was committed (the transaction died with
        # the connection), so the client may retry; the pool's pre-ping reconnects on the next call.
        log.warning("database unavailable: %s", str(exc.orig).strip().splitlines()[0] if exc.orig else exc)
        detail = "the database is not answering; nothing was stored. Retry in a few seconds (with the same key)."
        return answer(request, ProblemError(503, "Database unavailable", detail, {"Retry-After": "2"}))

    @app.exception_handler(DataError)
    async def _value_refused(request: Request, exc: DataError) -> Response:
        # The last line of defence: PostgreSQL's "data exception" class (a value out of range for its
        # column, a malformed time) is about a value the request carried, and the transaction died
        # with it, so nothing was written. Input checks name the field first; reaching this is a
        # check missing, logged as such. The SQL is not shown, only PostgreSQL's one-line reason.
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "value not accepted"
        log.warning("a value reached the database unchecked (%s %s): %s", request.method, request.url.path, reason)
        detail = f"a value in the request cannot be used: {reason}"
        return answer(request, ProblemError(422, "Value not accepted", detail))

    async def _domain(request: Request, exc: Exception) -> Response:
        return answer(request, problem_error(exc))

    for kind in PROBLEMS:
        app.add_exception_handler(kind, _domain)


def _sentence(exc: StarletteHTTPException, headers: dict[str, str]) -> str:
    if exc.status_code == 405:
        return f"this resource takes {headers['Allow']}"
    return str(exc.detail)
