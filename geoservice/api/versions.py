"""Boundary versions, read-only for now (drafts and edits come with the planners' API)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from geoservice.api.deps import SessionDep
from geoservice.auth.policy import STAFF, policy
from geoservice.versions import list_versions

router = APIRouter(prefix="/v1/boundary-versions", tags=["boundary versions"])


class VersionPublic(BaseModel):
    """A boundary version with its counts."""

    id: int
    name: str
    status: str
    effective_from: datetime | None
    effective_to: datetime | None
    grids: int
    regions: int


@router.get("", response_model=list[VersionPublic], **policy(STAFF))
def get_versions(session: SessionDep) -> list[VersionPublic]:
    """Every boundary version, newest first."""
    return [VersionPublic(**vars(v)) for v in list_versions(session)]
