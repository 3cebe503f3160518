"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, committed when the handler returns, rolled back if it raises."""
    with request.app.state.sessions() as session, session.begin():
        yield session


# ``scope="function"``: the commit happens before the answer is sent, so a commit that fails is
# answered as a failure; FastAPI's default ends the dependency after the response (a 201 for
# nothing stored, and a read right after the 201 that may not see the write yet).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
