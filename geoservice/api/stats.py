"""``/v1/stats``: counts, performance, the monthly governance ranking and hotspots, as JSON or CSV.

Who: admins, supervisors (leadership, 纪委), dispatchers, handlers and grid workers — the roles that
see events; planners and the public see none, so they get no statistics of them either. A scoped
caller's figures count only the events they could list: dispatchers and grid workers their region
subtree, handlers their department. Nothing is written.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from geoservice.api.deps import SessionDep
from geoservice.api.problems import ProblemError
from geoservice.auth.policy import allow, policy
from geoservice.auth.scope import Scope, region_prefix, scope_of
from geoservice.auth.users import SCOPED_BY_REGION, Principal
from geoservice.boundaries.versions import NoVersionInForce, current_version_id
from geoservice.field.duty_status import duty_counts
from geoservice.inputs import ZonedTime
from geoservice.stats import counts as counts_module
from geoservice.stats import hotspots as hotspots_module
from geoservice.stats import performance as performance_module
from geoservice.stats import ranking as ranking_module
from geoservice.stats.filters import Condition, grid_subtree, region_subtree, time_window
from geoservice.stats.index import SUPERVISION_PENALTY, WEIGHTS
from geoservice.stats.scope import grid_scope_condition, scope_condition
from geoservice.stats.tables import rows_csv
from layers.models import Role

router = APIRouter(prefix="/v1/stats", tags=["stats"])
READERS = allow(Role.admin, Role.supervisor, Role.dispatcher, Role.handler, Role.grid_worker)
Caller = Annotated[Principal, Depends(READERS)]
Format = Annotated[Literal["json", "csv"], Query(description="json, or csv to export the table")]
Since = Annotated[ZonedTime | None, Query(alias="from", description="reported at or after (ISO 8601 with a zone)")]
Until = Annotated[ZonedTime | None, Query(alias="to", description="reported before (ISO 8601 with a zone)")]
Region = Annotated[
    str | None,
    Query(min_length=12, max_length=15, pattern=r"^[0-9]{12}([0-9]{3})?$",
          description="a region (12 digits) or grid (15 digits) code: count only its subtree"),
]  # fmt: skip
CSV_OR_JSON = {200: {"content": {"application/json": {}, "text/csv": {}}, "description": "the table"}}


@router.get("/counts", responses=CSV_OR_JSON, **policy(READERS))
def get_counts(
    session: SessionDep,
    principal: Caller,
    by: Annotated[counts_module.CountBy, Query(description="the dimension to count by (day/week/month: local)")],
    since: Since = None,
    until: Until = None,
    region: Region = None,
    format: Format = "json",
) -> Response:
    """Number of events per town, community, grid, category, status, owner, or local day / ISO week / month.

    ``owner`` keys are ``unit:<region or grid code>`` and ``department:<code>``: who holds the events now.
    """
    _check_window(since, until)
    rows = counts_module.counts_in_scope(
        session, by, principal, since, until, region_subtree(session, region), region
    )
    body = {"by": by, **_window(since, until, region), "total": sum(r["events"] for r in rows), "rows": rows}
    return _answer(body, rows, counts_module.COLUMNS, format, f"counts-by-{by}")


@router.get("/performance", responses=CSV_OR_JSON, **policy(READERS))
def get_performance(
    session: SessionDep,
    principal: Caller,
    by: Annotated[performance_module.GroupBy, Query(description="one row per group, or one row (none)")] = "none",
    since: Since = None,
    until: Until = None,
    region: Region = None,
    format: Format = "json",
) -> Response:
    """On-time rate, mean and p90 handling time (hours, dispatch → feedback), reopen rate, satisfaction."""
    where = _events_where(session, principal, since, until, region)
    rows = performance_module.performance(session, where, by)
    body = {"by": by, **_window(since, until, region), "rows": rows}
    return _answer(body, rows, performance_module.COLUMNS, format, f"performance-by-{by}")


@router.get("/ranking", responses=CSV_OR_JSON, **policy(READERS))
def get_ranking(
    session: SessionDep,
    principal: Caller,
    month: Annotated[
        str, Query(pattern=r"^(19|20|21)[0-9]{2}-(0[1-9]|1[0-2])$", description="YYYY-MM, local calendar month")
    ],
    level: Annotated[ranking_module.Level, Query(description="rank towns or communities")] = "town",
    region: Region = None,
    format: Format = "json",
) -> Response:
    """Towns or communities ranked by the governance index (docs/stats.md gives the formula)."""
    where = _events_where(session, principal, None, None, region)
    regions = [r for r in (principal.region_code if principal.role in SCOPED_BY_REGION else None, region) if r]
    ranked, units, per = ranking_module.monthly_ranking(
        session, _version(session), month, level, where, [r for r in regions if len(r) == 12]
    )
    scope = scope_of(principal)
    narrowest = max((region_prefix(r) for r in regions), key=len, default=None)
    if narrowest and (scope.everything or scope.region_prefix is not None):
        scope = Scope(region_prefix=narrowest)  # the asked region within the caller's
    duties = duty_counts(session, _version(session), scope, datetime.now(UTC), by=level)
    rows = ranking_module.ranking_rows(ranked, units, per, {k: (d.total, d.red) for k, d in duties.items()})
    body = {"month": month, "level": level, "region": region, "incidence_per": per, "weights": WEIGHTS,
            "supervision_penalty": SUPERVISION_PENALTY, "rows": rows}  # fmt: skip
    return _answer(body, rows, ranking_module.COLUMNS, format, f"ranking-{level}-{month}")


@router.get("/hotspots", responses=CSV_OR_JSON, **policy(READERS))
def get_hotspots(
    session: SessionDep,
    principal: Caller,
    since: Since = None,
    until: Until = None,
    region: Region = None,
    alpha: Annotated[float, Query(gt=0, le=0.2, description="significance level of the pseudo p-value")] = 0.05,
    permutations: Annotated[int, Query(ge=99, le=9999)] = hotspots_module.PERMUTATIONS,
    seed: Annotated[
        int, Query(ge=0, le=2**32 - 1, description="seed of the permutations: same data, same seed, same answer")
    ] = 0,
    every: Annotated[bool, Query(description="list every grid with its z-score, not only hotspots")] = False,
    format: Format = "json",
) -> Response:
    """Grids with significantly many events (Getis-Ord Gi*, queen contiguity, z > 0 and p < alpha)."""
    where = _events_where(session, principal, since, until, region)
    grid_filter = _grid_filter(session, principal, region)
    grids = hotspots_module.grid_counts(session, _version(session), where, grid_filter)
    gi = hotspots_module.gi_star(grids.polygons, grids.counts, permutations, seed)
    rows = hotspots_module.hotspot_rows(grids, gi, alpha, every)
    body = {**_window(since, until, region), "method": "Getis-Ord Gi*, queen contiguity, binary weights",
            "alpha": alpha, "permutations": permutations, "seed": seed, "grids_analysed": len(grids.codes),
            "hotspots": sum(r["hotspot"] for r in rows), "rows": rows}  # fmt: skip
    return _answer(body, rows, (*hotspots_module.COLUMNS, "hotspot"), format, "hotspots")


def _events_where(
    session: Session, principal: Principal, since: datetime | None, until: datetime | None, region: str | None
) -> Condition:
    _check_window(since, until)
    return scope_condition(principal) & time_window(since, until) & region_subtree(session, region)


def _check_window(since: datetime | None, until: datetime | None) -> None:
    for moment in (since, until):
        if moment is not None and moment.tzinfo is None:
            raise ProblemError(422, "Invalid request", "times need a zone, e.g. 2026-11-01T00:00:00+08:00")
    if since and until and since >= until:
        raise ProblemError(422, "Invalid request", "from must be before to")


def _grid_filter(session: Session, principal: Principal, region: str | None) -> Condition:
    return grid_scope_condition(principal) & grid_subtree(session, region)


def _version(session: Session) -> int:
    version = current_version_id(session)
    if version is None:
        raise NoVersionInForce("publish a boundary version first")
    return version


def _window(since: datetime | None, until: datetime | None, region: str | None) -> dict[str, Any]:
    return {"from": since.isoformat() if since else None, "to": until.isoformat() if until else None, "region": region}


def _answer(body: dict, rows: list[dict], columns: tuple[str, ...], format: str, name: str) -> Response:
    if format == "csv":
        filename = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        return Response(rows_csv(rows, columns), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'})  # fmt: skip
    return JSONResponse(body)
