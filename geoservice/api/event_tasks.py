"""Co-handling (联合处置) over HTTP: an event's co-department tasks, started and fed back by their departments.

Handlers of the task's department, dispatchers (in scope) and admins take the steps; the answer is
the task with its warning colour. Writes commit before the answer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import Field

from geoservice.api.deps import SessionDep
from geoservice.api.events import EVENT_ID
from geoservice.auth.policy import allow, policy
from geoservice.auth.users import Principal
from geoservice.events.cotasks import feed_back_task, list_tasks, start_task, task_view
from geoservice.inputs import FreeText, Name, RequestBody
from layers.models import Role

router = APIRouter(prefix="/v1/events", tags=["events"])

READERS = allow(Role.admin, Role.supervisor, Role.dispatcher, Role.grid_worker, Role.handler)
WORKERS = allow(Role.admin, Role.dispatcher, Role.handler)
DEPARTMENT = Path(max_length=50, description="the co-department's code", examples=["police"])


class FeedbackIn(RequestBody):
    """What the co-department did."""

    note: FreeText = Field(min_length=1, max_length=2000)


@router.get("/{event_id}/tasks", **policy(READERS))
def get_tasks(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(READERS)],
    event_id: Annotated[int, EVENT_ID],
) -> JSONResponse:
    """The event's co-tasks (replaced ones as history), each with its deadline, status and warning colour."""
    tasks = list_tasks(session, event_id, principal, datetime.now(UTC), request.app.state.event_settings)
    return JSONResponse(jsonable_encoder({"event_id": event_id, "items": tasks}))


@router.post("/{event_id}/tasks/{department}/start", **policy(WORKERS))
def post_task_start(
    request: Request,
    principal: Annotated[Principal, Depends(WORKERS)],
    event_id: Annotated[int, EVENT_ID],
    department: Annotated[Name, DEPARTMENT],
) -> JSONResponse:
    """Start the task: open → handling (a retry on a task in hand changes nothing)."""
    now = datetime.now(UTC)
    with request.app.state.sessions() as session, session.begin():
        task = start_task(session, event_id, department, principal, now)
    return JSONResponse(jsonable_encoder(task_view(task, now, request.app.state.event_settings)))


@router.post("/{event_id}/tasks/{department}/feedback", **policy(WORKERS))
def post_task_feedback(
    request: Request,
    principal: Annotated[Principal, Depends(WORKERS)],
    event_id: Annotated[int, EVENT_ID],
    department: Annotated[Name, DEPARTMENT],
    body: FeedbackIn,
) -> JSONResponse:
    """Feed the task back (handling → fed_back, a note); with every co-task fed back the lead may feed back."""
    now = datetime.now(UTC)
    with request.app.state.sessions() as session, session.begin():
        task = feed_back_task(session, event_id, department, principal, body.note, now)
    return JSONResponse(jsonable_encoder(task_view(task, now, request.app.state.event_settings)))
