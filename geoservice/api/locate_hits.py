"""``GET /v1/locate`` answered before FastAPI's routing, when nothing about it needs the framework.

The answer itself takes ~10 µs (``Router.locate``) and ~15 µs of JSON; FastAPI's route matching,
dependency solving and parameter validation took ~250 µs more per request (bench/RESULTS.md,
"Locate answer"), so under load the service answered 1.6–1.9× the PostGIS peer against the issue's
3×. This middleware answers the common request itself — ``lon``, ``lat`` and optionally ``crs``,
each once, as plain decimal numbers in range; no ``at``; the current router ready; the anonymous
public (held to the in-process rate limit) or a caller this process already knows — and hands
everything else to the route: a past instant, an odd number, an unknown parameter, a token not yet
known, a point outside every grid, a 429. Those get the route's answer and its reasons, so a
refusal is worded in one place. Both paths build the answer with the same function
(``geoservice.api.locate.answer_of``) for the same audience, so they answer the same bytes.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from geoservice.api import locate as locate_api
from geoservice.api.problems import ProblemError
from geoservice.auth.policy import charge_public, known_caller
from geoservice.auth.users import ANONYMOUS, Principal
from geoservice.boundaries.versions import NoVersionInForce
from geoservice.inputs import text_problem
from layers.crs import point_to_wgs84
from layers.models import Role

PATH = "/v1/locate"
# What pydantic would read as the same float; anything fancier ("1e2", " 5", "nan") goes to the route.
DECIMAL = re.compile(r"-?[0-9]{1,3}(\.[0-9]{1,20})?")
ROUTE = next(r for r in locate_api.router.routes if getattr(r, "endpoint", None) is locate_api.locate_one)


class LocateHits:
    """ASGI middleware: the plain ``GET /v1/locate`` without the framework."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == PATH:
            response = _answer(scope)
            if response is not None:
                scope["route"] = ROUTE  # the access log and metrics name the route, as for any request
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _answer(scope: Scope) -> Response | None:
    state = scope["app"].state
    point = _point(scope["query_string"])
    if point is None or state.routers.behind():
        return None
    principal = known_or_anonymous(scope)
    limiter = getattr(state, "public_rate", None)
    public = principal is not None and principal.role == Role.public
    if principal is None or (public and limiter is not None and limiter.blocking):
        return None  # a token to look up, or a rate limit kept in the database: the route's work
    try:
        router_ = state.routers.at(None)
        location = router_.locate(*point_to_wgs84(point["lon"], point["lat"], point["crs"]))
    except (NoVersionInForce, ValueError):  # no version yet, an unknown CRS, a point off the Earth
        return None
    answer = locate_api.answer_of(location, router_, point, locate_api.audience_of(state, principal))
    if "error" in answer:
        return None
    try:
        charge_public(Request(scope), principal)  # the route's own charge: staff are never limited
    except ProblemError:
        return None  # a refused check takes nothing: the route refuses again and says why
    return JSONResponse(answer)


def known_or_anonymous(scope: Scope) -> Principal | None:
    """The anonymous public (no Authorization header), a caller already known, else None."""
    authorization = next((v for k, v in scope["headers"] if k == b"authorization"), None)
    if authorization is None:
        return ANONYMOUS
    return known_caller(scope["app"].state, authorization.decode("latin-1"))


def _point(raw: bytes) -> dict[str, float | str] | None:
    """``{"lon", "lat", "crs"}`` as the route would take them; None when the route might see it otherwise."""
    given: dict[str, str] = {}
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if name not in ("lon", "lat", "crs") or name in given:
            return None  # unknown, ``at``, or repeated: the route decides
        given[name] = value
    lon, lat, crs = given.get("lon"), given.get("lat"), given.get("crs", "wgs84")
    if lon is None or lat is None or not DECIMAL.fullmatch(lon) or not DECIMAL.fullmatch(lat):
        return None
    x, y = float(lon), float(lat)
    if not (-180 <= x <= 180 and -90 <= y <= 90) or text_problem(crs) is not None:
        return None
    return {"lon": x, "lat": y, "crs": crs}
