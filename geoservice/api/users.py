"""``/v1/users``: what an admin does to accounts over HTTP (today: lift a sign-in lock)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel

from geoservice.api.deps import SessionDep
from geoservice.auth.policy import allow, policy
from geoservice.auth.throttle import unlock
from layers.models import Role

router = APIRouter(prefix="/v1/users", tags=["users"])


class Unlocked(BaseModel):
    """Whose sign-in lock was lifted, and whether there was one."""

    username: str
    was_throttled: bool


@router.post("/{username}/unlock", response_model=Unlocked, **policy(allow(Role.admin)))
def post_unlock(username: Annotated[str, Path(min_length=1, max_length=100)], session: SessionDep) -> Unlocked:
    """Lift an account's sign-in delay or lock at once (``geoservice users unlock`` does the same)."""
    return Unlocked(username=username, was_throttled=unlock(session, username))
