"""Unknown query parameters are refused on every route, by one app-wide dependency.

A misspelt filter (``?stauts=open``) silently ignored answers everything, and the client believes
it filtered: the worst kind of wrong answer. So every route refuses a parameter it does not
declare, with a 422 problem naming it and listing the ones it takes (the tiles did so first for
filters of the wrong layer). The names are read from the route's own declaration (its FastAPI
dependant, sub-dependencies included), so the check and the OpenAPI document never disagree, and
a new route is covered without doing anything. A route that reads open-ended parameters itself
(OGC API – Features: one parameter per queryable property, refused there with OGC's 400) marks
its endpoint with ``@reads_own_query``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from geoservice.api.problems import ProblemError

F = TypeVar("F", bound=Callable[..., Any])
_OPEN: set[Callable[..., Any]] = set()
_ATTRIBUTE = "_geoservice_query_parameters"  # kept on the route: its parameters (None: the route reads its own)


def reads_own_query(endpoint: F) -> F:
    """Mark an endpoint that takes parameters it does not declare (and refuses unknown ones itself)."""
    _OPEN.add(endpoint)
    return endpoint


def _declared(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _declared(sub)
    return names


def known_parameters(route: APIRoute) -> frozenset[str] | None:
    """The query parameters ``route`` declares; None for a route marked ``reads_own_query``."""
    if not hasattr(route, _ATTRIBUTE):
        setattr(route, _ATTRIBUTE, None if route.endpoint in _OPEN else frozenset(_declared(route.dependant)))
    return getattr(route, _ATTRIBUTE)


async def refuse_unknown_query(request: Request) -> None:
    """The app-wide dependency: a 422 naming every query parameter the matched route does not take.

    Async although it awaits nothing: FastAPI runs a plain ``def`` dependency in its thread pool,
    and that hand-off to a thread and back cost every request of the app more than the locate
    answer itself (issue 22: about half of a ``GET /v1/locate``'s time in process, measured).
    """
    if not request.scope.get("query_string"):
        return
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = known_parameters(route)
    if known is None:
        return
    unknown = sorted({name for name in request.query_params if name not in known})
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise ProblemError(
            422, "Unknown parameter",
            f"{', '.join(unknown)} {'is not a parameter' if len(unknown) == 1 else 'are not parameters'} of "
            f"{request.method} {route.path}; it takes: {takes}",
            errors=[{"field": f"query.{name}", "message": "unknown parameter"} for name in unknown],
        )  # fmt: skip
