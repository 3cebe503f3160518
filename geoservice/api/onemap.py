"""``/map``: the risk one-map page, and the few figures it needs that no other API answers.

The page is open to anyone: it holds no data, only the map and a sign-in form; everything drawn
on it is read afterwards with the user's token and so stays inside their scope. The figures here
(open and overdue events per grid, heat-map cells, region labels) are staff-only and scoped like
the event lists: they use ``geoservice.events.queries``'s scope, so a dispatcher's map never
counts an event they could not list.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import text

from geoservice.api.deps import SessionDep
from geoservice.api.problems import ProblemError
from geoservice.api.tiles import event_settings, metric_epsg, tile_filters
from geoservice.auth.policy import EVERYONE, STAFF, allow, policy
from geoservice.auth.scope import code_scope_sql, scope_of, scope_sql
from geoservice.auth.users import Principal
from geoservice.boundaries.versions import current_version_id
from geoservice.events.deadlines import ACCEPT_CLOCK_STATES, COLOURS, HANDLE_CLOCK_STATES, warning_sql
from geoservice.events.queries import EventFilters, filter_clauses
from geoservice.events.workflow import OPEN_STATES, STATUSES
from geoservice.field.duty_status import duty_counts
from geoservice.inputs import Name, ZonedTime
from tiles.catalog import LAYERS

OPEN = allow(EVERYONE)
VIEWERS = allow(STAFF)
Viewer = Annotated[Principal, Depends(VIEWERS)]
HEAT_CELL_M = 200.0
router = APIRouter(tags=["one-map"])

# Past the due time of the clock running now: the accept clock while reported, the handling clock
# while dispatched, in hand or reopened (``geoservice.events.deadlines.running_clock``).
ACCEPTING = ", ".join(f"'{s}'" for s in sorted(ACCEPT_CLOCK_STATES))
HANDLING = ", ".join(f"'{s}'" for s in sorted(HANDLE_CLOCK_STATES))
OVERDUE_SQL = (
    f"((e.status IN ({ACCEPTING}) AND e.accept_due_at <= :now) OR "
    f"(e.status IN ({HANDLING}) AND e.dispatched_at IS NOT NULL AND e.handle_due_at <= :now))"
)


@router.get("/map", response_class=HTMLResponse, **policy(OPEN))
def get_map(
    request: Request,
    draft: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="a draft boundary version to show over the one in force "
                          "(read by the page's script)")
    ] = None,
    mode: Annotated[
        Literal["wall"] | None, Query(description="wall: the command centre's big screen (read by the page's script)")
    ] = None,
) -> HTMLResponse:
    """The one-map page (sign in on the page; no data is in the HTML itself)."""
    tiles = {name: {"minzoom": layer.minzoom, "maxzoom": layer.maxzoom} for name, layer in LAYERS.items()}
    service = getattr(request.app.state, "tile_service", None)  # tests may run one with their own settings
    tile_settings = service.settings if service else request.app.state.tile_settings
    tiles["events"]["clusterUntil"] = tile_settings.events_cluster_until
    from webmap.page import onemap_page  # deferred, with folium (~15 MB): a worker serves pages only if asked

    return HTMLResponse(onemap_page(request.app.state.map_settings, tiles), headers={"Cache-Control": "no-cache"})


@router.get("/report", response_class=HTMLResponse, **policy(OPEN))
def get_report_page() -> HTMLResponse:
    """The citizens' page (随手拍): report a problem, follow one's reports; where a citizen lands, not on the map."""
    from webmap.page import report_page  # deferred, as above

    return HTMLResponse(report_page(), headers={"Cache-Control": "no-cache"})


@router.get("/map/grid-measures", **policy(VIEWERS))
def get_grid_measures(session: SessionDep, principal: Viewer) -> JSONResponse:
    """Open and overdue events per grid code (``{"grids": {code: [open, overdue]}}``), in the caller's scope."""
    where, params = scope_sql(scope_of(principal), "e")
    rows = session.execute(
        text(
            f"SELECT e.grid_code, count(*) AS open, count(*) FILTER (WHERE {OVERDUE_SQL}) AS overdue "
            f"FROM events e WHERE e.grid_code IS NOT NULL AND e.status = ANY(:open_states) AND {where} "
            "GROUP BY e.grid_code"
        ),
        {**params, "open_states": sorted(OPEN_STATES), "now": datetime.now(UTC)},
    ).all()
    grids = {r.grid_code: [r.open, r.overdue] for r in rows}
    return JSONResponse({
        "grids": grids,
        "max_open": max((v[0] for v in grids.values()), default=0),
        "max_overdue": max((v[1] for v in grids.values()), default=0),
        "open_states": sorted(OPEN_STATES),
    })  # fmt: skip


@router.get("/map/heat", **policy(VIEWERS))
def get_heat(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    status: Annotated[Name | None, Query(max_length=300, description="comma-separated states")] = None,
    reported_from: Annotated[ZonedTime | None, Query(alias="from", description="reported at or after")] = None,
    reported_to: Annotated[ZonedTime | None, Query(alias="to", description="reported before")] = None,
) -> JSONResponse:
    """Events counted on cells of 200 m in the city's metric CRS: ``[[lat, lon, weight 0..1], …]`` for the heat map."""
    given = {"status": status, "warning": None, "category": None, "from": reported_from, "to": reported_to,
             "level": None}  # fmt: skip
    filters = tile_filters(LAYERS["events"], given, event_settings(request.app))
    where, params = scope_sql(scope_of(principal), "e")
    clauses = [where, filters.event_where]
    params.update(filters.event_params)
    rows = session.execute(
        text(
            "SELECT ST_Y(c) AS lat, ST_X(c) AS lon, n FROM ("
            "  SELECT ST_Transform(ST_SetSRID(ST_MakePoint(avg(ST_X(m)), avg(ST_Y(m))), :epsg), 4326) AS c, "
            "         count(*) AS n "
            "    FROM (SELECT ST_Transform(e.geom, :epsg) AS m FROM events e "
            f"         WHERE {' AND '.join(clauses)}) p "
            "   GROUP BY floor(ST_X(m) / :cell), floor(ST_Y(m) / :cell)) cells"
        ),
        {**params, "epsg": metric_epsg(request.app, session), "cell": HEAT_CELL_M},
    ).all()
    top = max((r.n for r in rows), default=1)
    points = [[round(r.lat, 6), round(r.lon, 6), round(r.n / top, 4)] for r in rows]
    return JSONResponse({"cell_m": HEAT_CELL_M, "events": sum(r.n for r in rows), "points": points})


@router.get("/map/labels", **policy(VIEWERS))
def get_labels(session: SessionDep, principal: Viewer) -> JSONResponse:
    """A label point (inside the polygon) for every town and community the caller may see."""
    prefix, params = code_scope_sql(principal, "r.code")
    params["version"] = current_version_id(session)
    rows = session.execute(
        text(
            "SELECT r.code, r.name, r.level::text AS level, ST_X(p) AS lon, ST_Y(p) AS lat "
            "FROM regions r, LATERAL ST_PointOnSurface(r.geom) p "
            f"WHERE r.version_id = :version AND r.level IN ('town', 'community') AND {prefix} ORDER BY r.code"
        ),
        params,
    ).all()
    labels = [{"code": r.code, "name": r.name, "level": r.level, "lon": round(r.lon, 6), "lat": round(r.lat, 6)}
              for r in rows]  # fmt: skip
    return JSONResponse({"labels": labels})


@router.get("/map/warning-counts", **policy(VIEWERS))
def get_warning_counts(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    status: Annotated[Name | None, Query(max_length=300, description="comma-separated states")] = None,
    category: Annotated[Name | None, Query(max_length=80, description="a class includes its subcategories")] = None,
    region: Annotated[str | None, Query(pattern=r"^[0-9]{12}([0-9]{3})?$", description="region or grid code")] = None,
    reported_from: Annotated[ZonedTime | None, Query(alias="from", description="reported at or after")] = None,
    owner: Annotated[Literal["mine"] | None, Query(description="mine: the events you act for now")] = None,
) -> JSONResponse:
    """Events per warning colour (and ``total``) under the queue panel's filters, in the caller's scope.

    ``duties`` counts the duty lists' units overdue (red) and due soon (yellow) in the caller's
    region, whatever the filters (null for callers who see no region: departments).

    ``/v1/queue`` counts only the caller's own open events; the map's panel follows the map's filters
    (state, time, category, region, optionally "mine"), so it needs the same counts for those.
    """
    settings = request.app.state.event_settings
    statuses = tuple(v for v in (status or "").split(",") if v)
    unknown = [v for v in statuses if v not in STATUSES]
    if unknown:
        raise ProblemError(422, "Invalid request", f"unknown status {', '.join(unknown)}; known: {', '.join(STATUSES)}")
    if reported_from is not None and reported_from.tzinfo is None:
        raise ProblemError(422, "Invalid request", "from needs a time zone, e.g. 2026-11-01T00:00:00+08:00")
    filters = EventFilters(status=statuses, category=category, region=region, reported_from=reported_from,
                           owner_of=principal if owner == "mine" else None)  # fmt: skip
    where, params = scope_sql(scope_of(principal), "e")
    clauses, filter_params = filter_clauses(filters, settings)
    rows = session.execute(
        text(
            f"SELECT {warning_sql(settings)} AS colour, count(*) AS n FROM events e "
            f"WHERE {' AND '.join([where, *clauses])} GROUP BY 1"
        ),
        {**params, **filter_params, "now": datetime.now(UTC)},
    ).all()
    counts = dict.fromkeys(COLOURS, 0) | {r.colour: r.n for r in rows}
    counts["total"] = sum(r.n for r in rows)
    # The grids' duty lists warn beside the events: overdue visits (red) and those due soon (yellow).
    version = current_version_id(session)
    duties = duty_counts(session, version, scope_of(principal), datetime.now(UTC)) if version else {}
    return JSONResponse({"counts": counts, "duties": duties[""].as_dict() if "" in duties else None})
