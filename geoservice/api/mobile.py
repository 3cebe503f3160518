"""``/m``: the grid worker's phone app (issue 18), its service worker and manifest.

The page, script and styles live in ``webmap/static/m`` and are served locally (no CDN); the
service worker is served from ``/m/sw.js`` so that its scope is ``/m``. The app signs in itself
(``/v1/auth/token``), so these routes are open to anyone, like the sign-in page of any app.

``/v1/me/places/{code}`` is the one API route of its own: what a key place is to the signed-in grid
worker (responsible or not, its inspection duty and when it is due), asked by the place page (to
offer "record an inspection here") and by the app (to preselect the duty and unit).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, JSONResponse

from geoservice.api.deps import SessionDep
from geoservice.auth.policy import EVERYONE, allow, policy
from geoservice.auth.users import Principal
from geoservice.boundaries.versions import NoVersionInForce, current_version_id
from geoservice.field.inspections import place_for_worker
from geoservice.field.place_codes import place_of
from layers.models import Role
from webmap.assets import STATIC

router = APIRouter(tags=["mobile"])
ANYONE = allow(EVERYONE)
WORKERS = allow(Role.grid_worker)
PLACE_CODE = Path(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_.\-]+$", description="key place code")
APP = STATIC / "m"


@router.get("/m", response_class=FileResponse, **policy(ANYONE))
def get_mobile_app(
    place: Annotated[
        str | None, Query(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_.\-]+$",
                          description="a key place to inspect, preselected (read by the page's script)")
    ] = None,
) -> FileResponse:  # fmt: skip
    """The app's page (Chinese first, an English toggle)."""
    headers = {"Cache-Control": "no-cache"}
    return FileResponse(APP / "index.html", media_type="text/html; charset=utf-8", headers=headers)


@router.get("/m/sw.js", response_class=FileResponse, **policy(ANYONE))
def get_service_worker() -> FileResponse:
    """The service worker that keeps the app's shell for offline starts.

    ``Service-Worker-Allowed``: the app is ``/m``, above the script's own folder ``/m/``, which is as
    high as a worker may reach without it (the browser refused to register it at all).
    """
    headers = {"Cache-Control": "no-cache", "Service-Worker-Allowed": "/m"}
    return FileResponse(APP / "sw.js", media_type="text/javascript", headers=headers)


@router.get("/m/manifest.webmanifest", response_class=FileResponse, **policy(ANYONE))
def get_manifest() -> FileResponse:
    """The web app manifest: installable on the phone's home screen."""
    return FileResponse(APP / "manifest.webmanifest", media_type="application/manifest+json")


@router.get("/v1/me/places/{code}", tags=["field"], **policy(WORKERS))
def get_my_place(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(WORKERS)],
    code: Annotated[str, PLACE_CODE],
) -> JSONResponse:
    """A key place to you: its grid and community, whether you serve it (``responsible``), its ``inspection``.

    ``inspection`` (only when responsible, and the pack has the inspection duty): the duty and unit a
    visit is recorded against, the last inspection of this place, ``due_at``, ``overdue``.
    """
    place_of(session, code)  # an unknown place is a 404 before anything else
    version = current_version_id(session)
    if version is None:
        raise NoVersionInForce("no boundary version is in force yet: publish one first")
    duty = request.app.state.place_code_settings.inspection_duty
    answer = place_for_worker(session, principal, code, version, duty, datetime.now(UTC))
    return JSONResponse(jsonable_encoder(answer))
