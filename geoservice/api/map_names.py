"""``/map/names`` and ``/map/area``: what the pages need to speak Chinese and to land on a user's work.

``/map/names`` is every code a page shows with its name: the city's own categories and departments
(from its pack, so a real city's names come with its data, never from a table in the script), and
the names of the schema's codes (``layers.names``: states, actions, warnings, levels, roles, place
types), with the city's name and time zone for times a person reads. It holds reference data only,
no event, person, position or boundary, so anyone may read it (the citizens' page names the
categories it offers). ``/map/area`` is the caller's own area: the outline's bounds a scoped user
lands on, the whole city for the others.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import text

from geoservice.api.deps import SessionDep
from geoservice.api.feature_time import city_zone
from geoservice.auth.policy import EVERYONE, STAFF, allow, policy
from geoservice.auth.scope import region_scope
from geoservice.auth.users import Principal
from geoservice.boundaries.versions import current_version_id
from layers import names

router = APIRouter(tags=["one-map"])
ANYONE = allow(EVERYONE)
VIEWERS = allow(STAFF)


@router.get("/map/names", **policy(ANYONE))
def get_names(session: SessionDep) -> JSONResponse:
    """Codes → Chinese names for every code a page shows, and the city's time zone."""
    categories = {
        r.code: {"name": r.name, "parent": r.parent_code}
        for r in session.execute(text("SELECT code, name, parent_code FROM categories ORDER BY code"))
    }
    departments = {
        r.code: {"name": r.name, "kind": r.kind}
        for r in session.execute(text("SELECT code, name, kind FROM departments ORDER BY code"))
    }
    city = session.execute(
        text("SELECT value FROM dataset_settings WHERE key = 'city_name'")
    ).scalar_one_or_none()  # fmt: skip
    body: dict[str, Any] = {
        "city": city,
        "time_zone": city_zone(session).key,
        "categories": categories,
        "departments": departments,
        "statuses": names.STATUS_NAMES,
        "actions": names.ACTION_NAMES,
        "warnings": names.WARNING_NAMES,
        "levels": names.LEVEL_NAMES,
        "roles": names.ROLE_NAMES,
        "post_levels": names.POST_LEVEL_NAMES,
        "place_types": names.PLACE_TYPE_NAMES,
        "sources": names.SOURCE_NAMES,
    }
    return JSONResponse(body, headers={"Cache-Control": "private, no-cache"})


@router.get("/map/area", **policy(VIEWERS))
def get_area(session: SessionDep, principal: Annotated[Principal, Depends(VIEWERS)]) -> JSONResponse:
    """The caller's area: ``bounds`` [west, south, east, north] of their region subtree (or the city), its name.

    Dispatchers and grid workers land on their own region or grid; everyone else on the city.
    """
    prefix = region_scope(principal)
    version = current_version_id(session)
    params: dict[str, Any] = {"version": version, "prefix": (prefix or "") + "%"}
    row = session.execute(
        text(
            "SELECT ST_XMin(b) AS w, ST_YMin(b) AS s, ST_XMax(b) AS e, ST_YMax(b) AS n FROM ("
            "  SELECT ST_Extent(g.geom)::geometry AS b FROM grids g"
            "   WHERE g.version_id = :version AND g.code LIKE :prefix) x"
        ),
        params,
    ).one()
    code = principal.region_code if prefix is not None else None
    name = None
    if code is not None:
        name = session.execute(
            text("SELECT name FROM regions WHERE version_id = :version AND code = :code "
                 "UNION ALL SELECT name FROM grids WHERE version_id = :version AND code = :code LIMIT 1"),
            {"version": version, "code": code},
        ).scalar_one_or_none()  # fmt: skip
    bounds = None if row.w is None else [round(v, 6) for v in (row.w, row.s, row.e, row.n)]
    return JSONResponse({"code": code, "name": name, "scoped": prefix is not None, "bounds": bounds})
