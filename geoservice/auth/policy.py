"""Per-route role policies: enforced by a dependency, and published in the OpenAPI document.

Every route is declared with ``**policy(...)``, which adds both the enforcing dependency and an
``x-roles`` member to the route's OpenAPI operation — from the same object, so they cannot drift,
and the role × route test reads the published document to know what to check. The dependency
resolves the caller (a bearer token, or the anonymous public), holds the public role (anonymous
or signed in) to the public rate limit (``geoservice.api.limits``), refuses a role the route does not admit (401 for the
anonymous, 403 for others), and hands routes that ask for it a ``Principal``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import State

from geoservice.auth.principals import NotCached
from geoservice.auth.tokens import TokenError, read_token
from geoservice.auth.users import ANONYMOUS, Principal
from geoservice.errors import Forbidden, SignInRequired
from layers.models import Role

STAFF = frozenset(Role) - {Role.public}
EVERYONE = frozenset(Role)
bearer = OAuth2PasswordBearer(tokenUrl="/v1/auth/token", auto_error=False)


class Allow:
    """A route's policy: the roles it admits. Instances are what the role × route test looks for."""

    def __init__(self, roles: Iterable[Role], *, limit_everyone: bool = False, signed_in: bool = False) -> None:
        self.roles = frozenset(roles)
        self.limit_everyone = limit_everyone
        self.signed_in = signed_in  # the public role admitted, but only with an account (my reports, subscriptions)

    async def __call__(self, request: Request, token: Annotated[str | None, Depends(bearer)]) -> Principal:
        # Async so that anonymous calls (locate from the public) and callers this process already
        # knows stay on the event loop; only a lookup in the users table goes to a thread.
        # Sign-in (``limit_everyone``) ignores any token that comes with it: counted per address.
        principal = ANONYMOUS if self.limit_everyone else await caller(request, token)
        limiter = getattr(request.app.state, "public_rate", None)
        if limiter is not None and limiter.blocking and principal.role == Role.public:
            await run_in_threadpool(charge_public, request, principal)  # a database round trip
        else:
            charge_public(request, principal)
        if principal.role not in self.roles or (self.signed_in and principal.anonymous):
            if principal.anonymous:
                detail = "this needs a signed-in user: get a token at /v1/auth/token"
                raise SignInRequired(detail, title="Sign in required")
            allowed = ", ".join(sorted(self.roles))
            raise Forbidden(f"a {principal.role} may not do this; it is for: {allowed}", title="Not allowed")
        return principal


def charge_public(request: Request, principal: Principal, cost: int = 1) -> None:
    """Count ``cost`` against the public rate limit: the anonymous per address, a signed-in citizen per account.

    Staff are never limited. Raises the limiter's 429 problem when the bucket is short.
    """
    limiter = getattr(request.app.state, "public_rate", None)
    if limiter is None or principal.role != Role.public:
        return
    address = request.client.host if request.client else "unknown"
    limiter.check(address if principal.anonymous else f"user:{principal.username}", cost)


def allow(*roles: Role | frozenset[Role], signed_in: bool = False) -> Allow:
    """The dependency admitting ``roles`` (use ``STAFF`` or ``EVERYONE`` for the common sets).

    ``signed_in``: the anonymous public is refused (401) even where the public role is admitted.
    """
    flat: set[Role] = set()
    for role in roles:
        flat |= set(role) if isinstance(role, frozenset) else {role}
    return Allow(flat, signed_in=signed_in)


def policy(*roles: Role | frozenset[Role] | Allow) -> dict[str, Any]:
    """Route-decorator arguments that enforce and publish the roles a route admits."""
    rule = roles[0] if len(roles) == 1 and isinstance(roles[0], Allow) else allow(*roles)  # type: ignore[arg-type]
    extra: dict[str, Any] = {"x-roles": sorted(rule.roles)}
    if rule.signed_in:
        extra["x-signed-in"] = True  # the role × route test expects a 401 for the anonymous here
    return {"dependencies": [Depends(rule)], "openapi_extra": extra}


async def caller(request: Request, token: str | None) -> Principal:
    """The principal behind a request; a bad or expired token is a 401, never silently anonymous."""
    if not token:
        return ANONYMOUS
    try:
        username = read_token(token, request.app.state.auth_settings)
    except TokenError as exc:
        raise SignInRequired(str(exc), title="Invalid token") from exc
    principals = request.app.state.principals
    principal = principals.cached(username)
    if isinstance(principal, NotCached):
        principal = await run_in_threadpool(principals.load, username)
    if principal is None:
        raise SignInRequired("the account is disabled or gone", title="Invalid token")
    return principal


def known_caller(state: State, authorization: str | None) -> Principal | None:
    """The enabled, signed-in caller this process already knows; None whenever ``caller`` has more to do.

    For answers given before routing (``geoservice.api.tile_hits``): no I/O, no errors raised. The
    anonymous, a bad token and an unknown or disabled account are all None, and go on to the
    route, whose policy says why.
    """
    scheme, token = get_authorization_scheme_param(authorization)  # as ``bearer`` reads it
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        username = read_token(token, state.auth_settings)
    except TokenError:
        return None
    principal = state.principals.cached(username)
    return principal if isinstance(principal, Principal) else None
