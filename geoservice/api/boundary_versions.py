"""``/v1/boundary-versions``: drafts, edits, validation, impact, publish, diff and rollback.

Planners and admins create, edit, publish and roll back; dispatchers and supervisors may read
drafts (their grids, validation, impact, diffs) too, the teams, moves and events of their own
jurisdiction only (``geoservice.auth.scope.boundary_view``); validation is codes and outlines.
Edits go through one route, ``POST /{id}/edits``, whose body is one typed operation (``op``:
replace_geometry, split, merge, move_boundary, update, add, remove), so the API and
``geoservice versions edit`` share one vocabulary. Every call is one transaction: a refused edit
or publish leaves nothing behind.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from geoservice.api.deps import SessionDep
from geoservice.api.problems import ProblemError
from geoservice.auth.policy import STAFF, allow, policy
from geoservice.auth.scope import boundary_view
from geoservice.auth.users import Principal
from geoservice.boundaries.diff import diff_versions
from geoservice.boundaries.drafts import (
    create_draft,
    create_draft_from_files,
    discard_draft,
    rollback,
)
from geoservice.boundaries.edits import Edit, apply_edit
from geoservice.boundaries.impact import impact_report
from geoservice.boundaries.publish import Published, Publisher, publish_version
from geoservice.boundaries.validation import validate_version
from geoservice.boundaries.versions import (
    VersionInfo,
    VersionNotFound,
    current_version_id,
    get_version,
    grid_features,
    list_versions,
)
from geoservice.inputs import FreeText, Name, RequestBody, ZonedTime
from layers.models import Role

router = APIRouter(prefix="/v1/boundary-versions", tags=["boundary versions"])
WRITERS = allow(Role.admin, Role.planner)
READERS = allow(Role.admin, Role.planner, Role.dispatcher, Role.supervisor)
Writer = Annotated[Principal, Depends(WRITERS)]
Reader = Annotated[Principal, Depends(READERS)]
VersionId = Annotated[int, Field(ge=1)]
GEOJSON = "application/geo+json"


class DraftCreate(RequestBody):
    """A new draft: a copy of ``based_on`` (a version id; default the version in force)."""

    name: Name = Field(min_length=1, max_length=100, examples=["2026-12 新城社区调整"])
    based_on: int | None = Field(None, ge=1, le=2**31 - 1)
    note: FreeText = Field("", max_length=2000)


class PublishRequest(RequestBody):
    """When the version takes effect (default now); a time needs its zone."""

    effective_from: ZonedTime | None = None


class RollbackRequest(PublishRequest):
    """Publish a copy of an old version; ``name`` defaults to "<old name> (rollback n)"."""

    name: Name | None = Field(None, min_length=1, max_length=100)


class EditOutcome(BaseModel):
    """Grid codes the edit added, changed, removed, or conformed (vertices inserted only)."""

    added: list[str]
    changed: list[str]
    removed: list[str]
    conformed: list[str]
    repairs: list[str] = Field(default_factory=list, description="what a repair edit moved, one sentence each")


class PublishOutcome(BaseModel):
    """The version now published, and the open events the publish re-routed or left with their team."""

    version: VersionInfo
    rerouted: list[int]
    kept: list[int]


@router.get("", response_model=list[VersionInfo], **policy(STAFF))
def get_versions(session: SessionDep) -> list[VersionInfo]:
    """Every boundary version, newest first."""
    return list_versions(session)


@router.post("", status_code=201, response_model=VersionInfo, **policy(WRITERS))
def post_draft(body: DraftCreate, session: SessionDep) -> VersionInfo:
    """Create a draft as a copy of the version in force (or of ``based_on``)."""
    draft_id = create_draft(session, body.name, based_on=body.based_on, note=body.note)
    return get_version(session, draft_id)


@router.post("/imports", status_code=201, response_model=VersionInfo, **policy(WRITERS))
def post_draft_from_files(
    session: SessionDep,
    name: Annotated[Name, Form(min_length=1, max_length=100)],
    grids: Annotated[UploadFile, File(description="grids: GeoJSON, GeoPackage or a zipped Shapefile")],
    regions: Annotated[UploadFile | None, File(description="regions (optional; default: those in force)")] = None,
    crs: Annotated[Name | None, Form(max_length=30, description="CRS of files that declare none")] = None,
    note: Annotated[FreeText, Form(max_length=2000)] = "",
) -> VersionInfo:
    """Create a draft from uploaded files, validated as ``geoservice import`` validates them."""
    with tempfile.TemporaryDirectory() as tmp:
        grids_path = _save(grids, Path(tmp), "grids")
        regions_path = _save(regions, Path(tmp), "regions") if regions is not None else None
        draft_id = create_draft_from_files(session, name, grids_path, regions=regions_path, crs=crs, note=note)
        return get_version(session, draft_id)


@router.get("/in-force", response_model=VersionInfo, **policy(STAFF))
def get_in_force(
    session: SessionDep,
    at: Annotated[ZonedTime | None, Query(description="the instant (with a zone); default now")] = None,
) -> VersionInfo:
    """The version in force at an instant: its grids (``/{id}/grids``) are the layer as it was then."""
    version_id = current_version_id(session, _aware(at))
    if version_id is None:
        raise VersionNotFound(f"no boundary version was in force at {(at or datetime.now(UTC)).isoformat()}")
    return get_version(session, version_id)


@router.get("/{version_id}", response_model=VersionInfo, **policy(READERS))
def get_one(version_id: VersionId, session: SessionDep) -> VersionInfo:
    """One version with its counts."""
    return get_version(session, version_id)


@router.delete("/{version_id}", status_code=204, **policy(WRITERS))
def delete_draft(version_id: VersionId, session: SessionDep) -> Response:
    """Discard a draft (published and retired versions are history and stay)."""
    discard_draft(session, version_id)
    return Response(status_code=204)


@router.get(
    "/{version_id}/grids", responses={200: {"content": {GEOJSON: {}}}}, response_class=JSONResponse, **policy(READERS)
)
def get_grids(version_id: VersionId, session: SessionDep, who: Reader) -> JSONResponse:
    """The version's grids as GeoJSON (a draft's too), for the map; teams only inside the caller's jurisdiction."""
    return JSONResponse(grid_features(session, version_id, boundary_view(who)), media_type=GEOJSON)


@router.post("/{version_id}/edits", response_model=EditOutcome, **policy(WRITERS))
def post_edit(request: Request, version_id: VersionId, edit: Edit, session: SessionDep) -> EditOutcome:
    """Apply one edit to a draft (409 when the version is not a draft; 422 for an outline a grid cannot have)."""
    state = request.app.state
    result = apply_edit(session, version_id, edit, boundaries=state.boundary_settings,
                        metric_crs=state.routing_settings.metric_crs)  # fmt: skip
    return EditOutcome(**vars(result))


@router.get(
    "/{version_id}/validation",
    responses={200: {"content": {"application/json": {}, GEOJSON: {}}}},
    response_class=JSONResponse,
    **policy(READERS),
)
def get_validation(
    request: Request, version_id: VersionId, session: SessionDep, format: Literal["json", "geojson"] = "json"
) -> JSONResponse:
    """Every validation error, each located and explained; ``valid`` tells whether it can be published."""
    get_version(session, version_id)
    state = request.app.state
    metric_crs = state.routing_settings.metric_crs
    report = validate_version(session, version_id, state.boundary_settings, metric_crs=metric_crs)
    if format == "geojson":
        return JSONResponse(report.as_geojson(), media_type=GEOJSON)
    return JSONResponse(report.as_json())


@router.get(
    "/{version_id}/impact",
    responses={200: {"content": {"application/json": {}, GEOJSON: {}, "text/csv": {}}}},
    response_class=JSONResponse,
    **policy(READERS),
)
def get_impact(
    request: Request,
    version_id: VersionId,
    session: SessionDep,
    who: Reader,
    format: Literal["json", "geojson", "csv"] = "json",
    base: Annotated[int | None, Query(description="compare with this version; default the one in force")] = None,
) -> Response:
    """Grids, places, posts, open events and people that publishing this version would move.

    Outside the caller's jurisdiction only codes and outlines: no teams, moves or events (docs/security.md).
    """
    get_version(session, version_id)
    if base is not None:
        get_version(session, base)
    report = impact_report(
        session, version_id, base_id=base, settings=request.app.state.routing_settings,
        base_router=request.app.state.routers.loaded(),
    ).seen_by(session, boundary_view(who))  # fmt: skip
    if format == "csv":
        headers = {"Content-Disposition": f'attachment; filename="impact-{version_id}.csv"'}
        return Response(report.as_csv(), media_type="text/csv; charset=utf-8", headers=headers)
    if format == "geojson":
        return JSONResponse(report.as_geojson(), media_type=GEOJSON)
    return JSONResponse(report.as_json())


@router.post("/{version_id}/publish", response_model=PublishOutcome, **policy(WRITERS))
def post_publish(
    request: Request, version_id: VersionId, body: PublishRequest, session: SessionDep, who: Writer
) -> PublishOutcome:
    """Validate and put a draft in force; open events not yet dispatched are re-routed and logged."""
    return _outcome(publish_version(
        session, version_id, _aware(body.effective_from), publisher=_publisher(who),
        routing=request.app.state.routing_settings, boundaries=request.app.state.boundary_settings,
    ))  # fmt: skip


@router.post("/{version_id}/rollback", response_model=PublishOutcome, **policy(WRITERS))
def post_rollback(
    request: Request, version_id: VersionId, body: RollbackRequest, session: SessionDep, who: Writer
) -> PublishOutcome:
    """Publish a copy of an old version as a new version (history is never rewritten)."""
    published = rollback(
        session, version_id, body.name, _aware(body.effective_from), publisher=_publisher(who),
        routing=request.app.state.routing_settings, boundaries=request.app.state.boundary_settings,
    )  # fmt: skip
    return _outcome(published)


@router.get(
    "/{version_id}/diff/{other_id}",
    responses={200: {"content": {"application/json": {}, GEOJSON: {}}}},
    response_class=JSONResponse,
    **policy(READERS),
)
def get_diff(
    request: Request,
    version_id: VersionId,
    other_id: VersionId,
    session: SessionDep,
    who: Reader,
    format: Literal["json", "geojson"] = "json",
) -> JSONResponse:
    """What changed from version ``version_id`` to version ``other_id``; teams only inside the caller's jurisdiction."""
    metric_crs = request.app.state.routing_settings.metric_crs
    diff = diff_versions(session, version_id, other_id, metric_crs=metric_crs).seen_by(boundary_view(who))
    if format == "geojson":
        return JSONResponse(diff.as_geojson(), media_type=GEOJSON)
    return JSONResponse(diff.as_json())


def _outcome(published: Published) -> PublishOutcome:
    return PublishOutcome(
        version=published.version,
        rerouted=[m.id for m in published.rerouted],
        kept=[m.id for m in published.kept],
    )


def _publisher(who: Principal) -> Publisher:
    return Publisher(actor=who.username, role=str(who.role))


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        raise ProblemError(422, "Invalid request", "the time needs a time zone, e.g. 2026-12-01T00:00:00+08:00")
    return moment


def _save(upload: UploadFile, folder: Path, stem: str) -> Path:
    """The upload on disk under its own suffix (pyogrio picks the driver by it)."""
    suffix = Path(upload.filename or "").suffix.lower() or ".geojson"
    path = folder / f"{stem}{suffix}"
    path.write_bytes(upload.file.read())
    return path
