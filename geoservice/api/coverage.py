"""``/v1/coverage``: coverage-gap reports per region, and where k new posts would help most.

Reports are computed on demand from the version in force (about a second for the whole demo city)
and answered as JSON, GeoJSON (the gap polygons), CSV (the figures) or a printable HTML page.
Nothing is written. Unknown regions are 404 problems; a bad level, format or k is a 422 problem.

Who: admins, planners, supervisors and dispatchers. A dispatcher is scoped to a region subtree: the
default region is theirs, and a region outside it is a 403 problem.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.api.deps import SessionDep
from geoservice.api.problems import ProblemError
from geoservice.auth.policy import allow, policy
from geoservice.auth.users import SCOPED_BY_REGION, Principal
from geoservice.boundaries.units import HINT, UnknownRegion
from geoservice.boundaries.versions import current_version_id
from geoservice.coverage.siting import TIME_LIMIT_S
from geoservice.inputs import ZonedTime
from layers.models import PostLevel, Role

router = APIRouter(prefix="/v1/coverage", tags=["coverage"])
READERS = allow(Role.admin, Role.planner, Role.supervisor, Role.dispatcher)
Caller = Annotated[Principal, Depends(READERS)]

RegionCode = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=15,
        description="region (12 digits) or grid (15 digits) code; default: the city",
    ),
]


@router.get(
    "",
    responses={
        200: {
            "content": {
                "application/json": {},
                "application/geo+json": {},
                "text/csv": {},
                "text/html": {},
            },
            "description": "the report in the format asked for",
        }
    },
    **policy(READERS),
)
def get_coverage(
    request: Request,
    session: SessionDep,
    principal: Caller,
    region: RegionCode = None,
    level: Annotated[PostLevel | None, Query(description="one post level; default: all three")] = None,
    format: Annotated[Literal["json", "geojson", "csv", "html"], Query(description="answer format")] = "json",
    as_of: Annotated[
        ZonedTime | None, Query(description="end of the 12 months of events counted (with a zone); default now")
    ] = None,
) -> Response:
    """Share of area and people within each level's ring rule, key places and events outside it, and the gaps.

    For the region and each child region one level down (city → towns → communities → grids).
    """
    # Deferred: the service and its outputs bring geopandas, scipy and folium (~90 MB, measured), which a
    # server worker should hold only once someone asks for coverage.
    from geoservice.coverage.html import render_html
    from geoservice.coverage.output import report_csv, report_geojson, report_json
    from geoservice.coverage.service import coverage_report

    _zoned(as_of)
    report = coverage_report(
        session,
        _scoped(session, principal, region),
        levels=[level] if level else None,
        as_of=as_of,
        radii_m=request.app.state.routing_settings.rings_m,
        metric_crs=request.app.state.routing_settings.metric_crs,
    )
    name = f"coverage-{report.region.code}"
    if format == "geojson":
        return _json(report_geojson(report), "application/geo+json")
    if format == "csv":
        return Response(
            report_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    if format == "html":
        return HTMLResponse(render_html(report))
    return _json(report_json(report), "application/json")


@router.get("/suggest", **policy(READERS))
def suggest(
    request: Request,
    session: SessionDep,
    principal: Caller,
    k: Annotated[int, Query(ge=1, le=50, description="how many new posts")],
    region: RegionCode = None,
    level: Annotated[PostLevel, Query(description="level of the new posts")] = PostLevel.central_room,
    demand: Annotated[
        Literal["population", "places", "events"], Query(description="what the new posts should reach")
    ] = "population",
    full: Annotated[bool, Query(description="also answer how many posts would cover all of it (LSCP)")] = False,
    time_limit_s: Annotated[float, Query(gt=0, le=120, description="CBC time limit per model")] = TIME_LIMIT_S,
    as_of: Annotated[ZonedTime | None, Query(description="end of the 12 months of events (demand=events)")] = None,
) -> Response:
    """Where k new posts of a level would reach the most uncovered demand (spopt MCLP, straight-line distance).

    Candidate sites: every community centre, grid centre and key place in the region. Each site comes
    with the demand it adds; the total is what the report shows more once the posts exist.
    """
    from geoservice.coverage.output import suggestion_json  # deferred, as in get_coverage
    from geoservice.coverage.service import suggest_sites

    _zoned(as_of)
    suggestion = suggest_sites(
        session,
        _scoped(session, principal, region),
        level,
        k,
        demand=demand,
        full=full,
        time_limit_s=time_limit_s,
        as_of=as_of,
        radii_m=request.app.state.routing_settings.rings_m,
        metric_crs=request.app.state.routing_settings.metric_crs,
    )
    return _json(suggestion_json(suggestion), "application/json")


def _scoped(session: Session, principal: Principal, region: str | None) -> str | None:
    """The region to report on: a scoped caller's own by default, and never one outside it."""
    if principal.role not in SCOPED_BY_REGION:
        return region
    if region is None or region == principal.region_code:
        return principal.region_code
    params = {"v": current_version_id(session), "c": region, "scope": principal.region_code}
    found = session.execute(text(_WITHIN), params).one()
    if not found.known:
        raise UnknownRegion(f"no region or grid has code {region!r} in the boundary version in force ({HINT})")
    if not found.inside:
        raise ProblemError(403, "Outside your region", f"{region} is not within your region {principal.region_code}")
    return region


# The codes from ``:c`` up to the city (a grid's parent is its community): is ``:scope`` among them?
_WITHIN = """
WITH RECURSIVE up(code, parent) AS (
  SELECT code::text, community_code::text FROM grids WHERE version_id = :v AND code = :c
  UNION ALL SELECT code::text, parent_code::text FROM regions WHERE version_id = :v AND code = :c
  UNION ALL SELECT r.code::text, r.parent_code::text FROM regions r JOIN up ON r.code = up.parent AND r.version_id = :v
)
SELECT count(*) > 0 AS known, bool_or(code = :scope) AS inside FROM up
"""


def _zoned(moment: datetime | None) -> None:
    if moment is not None and moment.tzinfo is None:
        raise ProblemError(422, "Invalid request", "as_of needs a time zone, e.g. 2026-11-01T00:00:00+08:00")


def _json(body: dict[str, Any], media_type: str) -> JSONResponse:
    return JSONResponse(body, media_type=media_type)
