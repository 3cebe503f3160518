"""Liveness and readiness."""

from __future__ import annotations

import os

from fastapi import APIRouter, Request
from sqlalchemy import text

from geoservice.api.deps import SessionDep
from geoservice.auth.policy import EVERYONE, policy
from geoservice.boundaries.versions import current_version_id

router = APIRouter(tags=["operations"])


@router.get("/healthz", **policy(EVERYONE))
def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz", **policy(EVERYONE))
def readyz(request: Request, session: SessionDep) -> dict[str, object]:
    """The database answers; which boundary version is in force, and which one this worker's router answers from.

    The two differ until this worker has heard the publish (NOTIFY; at the latest after
    ``GEOSERVICE_VERSION_CHECK_S``) and built the new router. ``worker_pid`` tells the workers of
    ``geoservice serve --workers N`` apart.
    """
    postgis = session.execute(text("SELECT postgis_lib_version()")).scalar()
    router = request.app.state.routers.loaded()
    return {
        "status": "ok",
        "postgis": postgis,
        "boundary_version": current_version_id(session),
        "router_version": None if router is None else router.version_id,
        "worker_pid": os.getpid(),
    }
