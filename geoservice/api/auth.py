"""``POST /v1/auth/token``: exchange a username and password for a signed, expiring bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field

from geoservice.auth.policy import EVERYONE, STAFF, Allow, allow, policy
from geoservice.auth.throttle import change_own_password, sign_in
from geoservice.auth.tokens import issue_token
from geoservice.auth.users import Principal
from geoservice.errors import InvalidInput, SignInRequired

router = APIRouter(prefix="/v1/auth", tags=["auth"])


class Token(BaseModel):
    """An OAuth2 bearer token."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int


class Me(BaseModel):
    """Who the token belongs to and what they may see."""

    username: str
    role: str
    region_code: str | None
    department_code: str | None


SIGN_IN = Allow(EVERYONE, limit_everyone=True)  # any token sent along is ignored: limited per address


@router.post("/token", response_model=Token, responses={429: {"description": "too many failures"}}, **policy(SIGN_IN))
def token(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
    """Sign in (form fields ``username`` and ``password``); repeated failures are delayed, then locked.

    Its own transaction, so that a failure is counted even though the answer is an error.
    """
    address = request.client.host if request.client else "unknown"
    with request.app.state.sessions() as session, session.begin():
        principal = sign_in(session, form.username, form.password, address, request.app.state.auth_settings)
    if principal is None:
        raise SignInRequired("wrong username or password, or the account is disabled", title="Sign-in failed")
    access, seconds = issue_token(principal.username, request.app.state.auth_settings)
    return Token(access_token=access, expires_in=seconds)


NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL: refuse it as a 422, not a 500


class PasswordChange(BaseModel):
    """A new password for an account, proven by its current (or one-time) password."""

    username: str = Field(min_length=1, max_length=100, pattern=NO_NUL)
    current_password: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    new_password: str = Field(min_length=8, max_length=200, pattern=NO_NUL)


@router.post("/password", status_code=204, responses={429: {"description": "too many failures"}}, **policy(SIGN_IN))
def password(request: Request, body: PasswordChange) -> Response:
    """Set your own password; an account loaded with a one-time password must do this before signing in.

    Throttled as signing in is (the current password is checked), in a transaction of its own so that
    a failure is counted even though the answer is an error.
    """
    address = request.client.host if request.client else "unknown"
    with request.app.state.sessions() as session, session.begin():
        changed = change_own_password(
            session, body.username, body.current_password, body.new_password, address, request.app.state.auth_settings
        )
    if not changed:
        raise InvalidInput("wrong username or password, or the account is disabled", title="Sign-in failed")
    return Response(status_code=204)


SIGNED_IN = allow(STAFF)


@router.get("/me", response_model=Me, **policy(SIGNED_IN))
async def me(principal: Annotated[Principal, Depends(SIGNED_IN)]) -> Me:
    """The signed-in user's role and scope (no I/O: answered on the event loop)."""
    return Me(
        username=principal.username, role=principal.role, region_code=principal.region_code,
        department_code=principal.department_code,
    )  # fmt: skip
