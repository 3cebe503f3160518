"""``/m``: the grid worker's phone app (issue 18), its service worker and manifest.

The page, script and styles live in ``webmap/static/m`` and are served locally (no CDN); the
service worker is served from ``/m/sw.js`` so that its scope is ``/m``. The app signs in itself
(``/v1/auth/token``), so these routes are open to anyone, like the sign-in page of any app.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from geoservice.auth.policy import EVERYONE, allow, policy
from webmap.assets import STATIC

router = APIRouter(tags=["mobile"])
ANYONE = allow(EVERYONE)
APP = STATIC / "m"


@router.get("/m", response_class=FileResponse, **policy(ANYONE))
def get_mobile_app() -> FileResponse:
    """The app's page (Chinese first, an English toggle)."""
    headers = {"Cache-Control": "no-cache"}
    return FileResponse(APP / "index.html", media_type="text/html; charset=utf-8", headers=headers)


@router.get("/m/sw.js", response_class=FileResponse, **policy(ANYONE))
def get_service_worker() -> FileResponse:
    """The service worker that keeps the app's shell for offline starts."""
    return FileResponse(APP / "sw.js", media_type="text/javascript", headers={"Cache-Control": "no-cache"})


@router.get("/m/manifest.webmanifest", response_class=FileResponse, **policy(ANYONE))
def get_manifest() -> FileResponse:
    """The web app manifest: installable on the phone's home screen."""
    return FileResponse(APP / "manifest.webmanifest", media_type="application/manifest+json")
