"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from geoservice.api.deps import SessionDep
from geoservice.auth.policy import EVERYONE, policy
from geoservice.versions import current_version_id

router = APIRouter(tags=["operations"])


@router.get("/healthz", **policy(EVERYONE))
def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz", **policy(EVERYONE))
def readyz(session: SessionDep) -> dict[str, object]:
    """The database answers; says which boundary version is in force."""
    postgis = session.execute(text("SELECT postgis_lib_version()")).scalar()
    return {"status": "ok", "postgis": postgis, "boundary_version": current_version_id(session)}
