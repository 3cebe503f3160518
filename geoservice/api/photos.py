"""Photos over HTTP: of events and visits (multipart uploads, lists), the file and its thumbnail.

Uploading is for whoever may see the event and take part in it (staff but supervisors and
planners, and a signed-in citizen on their own report); reading for whoever may see the event.
A visit's photos are uploaded by its worker. A photo whose event or visit the caller may not see
does not exist for them (404), as events do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Path, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from geoservice.api.deps import SessionDep
from geoservice.api.events import EVENT_ID
from geoservice.auth.policy import EVERYONE, allow, policy
from geoservice.auth.users import Principal
from geoservice.errors import NotFound
from geoservice.field.visit_photos import visible_photo, visit_owner
from geoservice.media.images import prepare_photo
from geoservice.media.photos import attach_photo, event_owner, photos_of
from geoservice.media.settings import MediaSettings
from layers.models import Role

router = APIRouter(tags=["photos"])

UPLOADERS = allow(Role.admin, Role.dispatcher, Role.handler, Role.grid_worker, Role.public, signed_in=True)
READERS = allow(EVERYONE - {Role.planner}, signed_in=True)
VISITORS = allow(Role.grid_worker)
VISIT_READERS = allow(Role.admin, Role.supervisor, Role.dispatcher, Role.grid_worker)
VISIT_ID = Path(ge=1, le=2**63 - 1, description="visit id", examples=[1])
PHOTO_ID = Path(ge=1, le=2**63 - 1, description="photo id", examples=[1])
IMAGE = {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}}


@router.post("/v1/events/{event_id}/photos", status_code=201,
             responses={200: {"description": "these bytes were already a photo of this event"}},
             **policy(UPLOADERS))  # fmt: skip
def post_photo(
    request: Request,
    principal: Annotated[Principal, Depends(UPLOADERS)],
    event_id: Annotated[int, EVENT_ID],
    file: Annotated[UploadFile, File(description="a JPEG, PNG or WebP photo")],
    caption: Annotated[str, Form(max_length=500)] = "",
) -> JSONResponse:
    """Store a photo of the event: checked from its bytes, turned upright, thumbnailed, its GPS compared.

    The same bytes again for the same event answer the stored photo (200), so a phone may retry.
    """
    settings: MediaSettings = request.app.state.media_settings
    data = file.file.read(settings.photo_max_bytes + 1)  # one byte over is enough to refuse it
    photo = prepare_photo(data, settings)
    view, created = attach_photo(
        request.app.state.sessions, request.app.state.media_store, settings, event_owner(event_id, principal),
        principal, photo, caption=" ".join(caption.split()),
    )  # fmt: skip
    return JSONResponse(jsonable_encoder(view), status_code=201 if created else 200,
                        headers={"Location": view["url"]})  # fmt: skip


@router.get("/v1/events/{event_id}/photos", **policy(READERS))
def get_event_photos(
    session: SessionDep,
    principal: Annotated[Principal, Depends(READERS)],
    event_id: Annotated[int, EVENT_ID],
) -> JSONResponse:
    """The event's stored photos, oldest first, with links to each file and thumbnail."""
    photos = photos_of(session, event_owner(event_id, principal))
    return JSONResponse(jsonable_encoder({"event_id": event_id, "photos": photos}))


@router.post("/v1/visits/{visit_id}/photos", status_code=201,
             responses={200: {"description": "these bytes were already a photo of this visit"}},
             **policy(VISITORS))  # fmt: skip
def post_visit_photo(
    request: Request,
    principal: Annotated[Principal, Depends(VISITORS)],
    visit_id: Annotated[int, VISIT_ID],
    file: Annotated[UploadFile, File(description="a JPEG, PNG or WebP photo")],
    caption: Annotated[str, Form(max_length=500)] = "",
) -> JSONResponse:
    """Store a photo of your visit, as for events; compared with the visit's point when it has one."""
    settings: MediaSettings = request.app.state.media_settings
    photo = prepare_photo(file.file.read(settings.photo_max_bytes + 1), settings)
    view, created = attach_photo(
        request.app.state.sessions, request.app.state.media_store, settings,
        visit_owner(visit_id, principal, _police(request), writing=True), principal, photo,
        caption=" ".join(caption.split()),
    )  # fmt: skip
    return JSONResponse(jsonable_encoder(view), status_code=201 if created else 200,
                        headers={"Location": view["url"]})  # fmt: skip


@router.get("/v1/visits/{visit_id}/photos", **policy(VISIT_READERS))
def get_visit_photos(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(VISIT_READERS)],
    visit_id: Annotated[int, VISIT_ID],
) -> JSONResponse:
    """The visit's photos, oldest first."""
    photos = photos_of(session, visit_owner(visit_id, principal, _police(request)))
    return JSONResponse(jsonable_encoder({"visit_id": visit_id, "photos": photos}))


@router.get("/v1/photos/{photo_id}", response_class=Response, responses={200: IMAGE}, **policy(READERS))
def get_photo(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(READERS)],
    photo_id: Annotated[int, PHOTO_ID],
) -> Response:
    """The photo, upright and without its metadata, if you may see its event."""
    row = visible_photo(session, photo_id, principal, _police(request))
    content_type = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}[row["format"]]
    return _file(request, row["display_key"], content_type, row["sha256"])


@router.get("/v1/photos/{photo_id}/thumb", response_class=Response, responses={200: IMAGE}, **policy(READERS))
def get_thumb(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(READERS)],
    photo_id: Annotated[int, PHOTO_ID],
) -> Response:
    """The photo's thumbnail (JPEG), if you may see its event."""
    row = visible_photo(session, photo_id, principal, _police(request))
    return _file(request, row["thumb_key"], "image/jpeg", row["sha256"] + "-thumb")


def _file(request: Request, key: str, content_type: str, etag: str) -> Response:
    """The file, or a 304 when the caller's copy is current: only after the caller was allowed to see it.

    ``no-cache`` with ``Vary: Authorization``: a browser keeps its copy but asks every time, so a
    shared phone never shows one user's photo to the next from its cache, and a copy still allowed
    costs a 304 (the photo's hash is its ETag: its bytes never change).
    """
    headers = {"ETag": f'"{etag}"', "Cache-Control": "private, no-cache", "Vary": "Authorization",
               "X-Content-Type-Options": "nosniff"}  # fmt: skip
    if headers["ETag"] in (t.strip() for t in request.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers=headers)
    data = request.app.state.media_store.read(key)
    if data is None:
        raise NotFound("the photo's file is not in the store; uploading the same photo again restores it",
                       title="Photo file missing")  # fmt: skip
    return Response(data, media_type=content_type, headers=headers)


def _police(request: Request) -> str:
    """The police department, who read key people (and so photos of visits to them) in full."""
    return request.app.state.force_settings.patrol_department
