"""Who may see what: the one definition of a caller's jurisdiction, for every surface.

Events, statistics, tiles, OGC features, forces, the one-map and boundary reads all take the
caller's scope from here, so no surface can show what another hides. Dispatchers and grid workers
see their region subtree, handlers their department's events, the signed-in public their own
reports, supervisors and admins everything; planners and the anonymous public see no events. A
region subtree is a code prefix (统计用区划代码 nest by prefix), so a scope is one ``LIKE`` that
an index on the code can serve.

Boundary versions are read through a ``BoundaryView``: every reader sees every code and outline
(a planner's draft is the whole city), but the people of a grid (workers, officer), population
and events only inside their jurisdiction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from geoservice.auth.users import SCOPED_BY_REGION, Principal
from layers.enums import Role

REGION_SEGMENTS = (2, 4, 6, 9, 12)  # province, prefecture, county, town, village in 统计用区划代码


@dataclass(frozen=True)
class Scope:
    """Which events a caller may see: every one, a region subtree, a department, or their own reports."""

    everything: bool = False
    region_prefix: str | None = None
    department_code: str | None = None
    reporter_username: str | None = None


def scope_of(principal: Principal) -> Scope:
    """The caller's scope over events, from role and account (the anonymous public follows nothing)."""
    if principal.role in (Role.admin, Role.supervisor):
        return Scope(everything=True)
    if principal.role in SCOPED_BY_REGION and principal.region_code:
        return Scope(region_prefix=region_prefix(principal.region_code))
    if principal.role == Role.handler and principal.department_code:
        return Scope(department_code=principal.department_code)
    if principal.role == Role.public and not principal.anonymous:
        return Scope(reporter_username=principal.username)
    return Scope()  # planners and the anonymous public: no events


def scope_sql(scope: Scope, alias: str = "e") -> tuple[str, dict[str, Any]]:
    """A WHERE fragment over ``events {alias}`` (and its parameters) that keeps only what the scope may see."""
    if scope.everything:
        return "TRUE", {}
    if scope.region_prefix is not None:
        place = f"coalesce({alias}.grid_code, {alias}.community_code, {alias}.town_code, '')"
        return f"{place} LIKE :scope_prefix", {"scope_prefix": scope.region_prefix + "%"}
    if scope.department_code is not None:
        return department_scope_sql(alias), {"scope_department": scope.department_code}
    if scope.reporter_username is not None:
        return f"{alias}.reporter_username = :scope_reporter", {"scope_reporter": scope.reporter_username}
    return "FALSE", {}


def grouped_scope_sql(scope: Scope, length: int, alias: str = "e") -> tuple[str, str | None, dict[str, Any]] | None:
    """The scope over rows that count events by place prefix and leading department; None where they cannot.

    Returns a condition on the groups, a condition on ``events`` for what the scope holds beyond
    any group (None if nothing), and their parameters. A region subtree at least as wide as the
    ``length`` characters of the groups' place prefix selects there exactly what ``scope_sql``
    selects; a department's groups are the events it leads, and the events it only co-handles are
    read apart (``scope_parts``' second part). A narrower subtree or a reporter's own reports need
    the events.
    """
    if scope.everything:
        return "TRUE", None, {}
    if scope.region_prefix is not None and len(scope.region_prefix) <= length:
        return f"{alias}.place_prefix LIKE :scope_prefix", None, {"scope_prefix": scope.region_prefix + "%"}
    if scope.department_code is not None:
        (leads, co_handles), params = scope_parts(scope, alias)
        return leads, co_handles, params
    return None


def scope_parts(scope: Scope, alias: str = "e") -> tuple[list[str], dict[str, Any]]:
    """``scope_sql`` as fragments that share no event and together keep the same events, each without ``OR``.

    For a query that reads each part apart and puts them together (a list page: ``UNION ALL`` of
    each part's first rows). A department's scope is two parts, the events it leads and those it only
    co-handles: the ``OR`` of the two hid from the planner what the department and the other filters
    have in common (``geoservice.events.queries.list_events``). Every other scope is one part.
    """
    if scope.department_code is None:
        where, params = scope_sql(scope, alias)
        return [where], params
    leads = f"{alias}.department_code = :scope_department"
    co_handles = f"{_co_handled(alias)} AND {alias}.department_code IS DISTINCT FROM :scope_department"
    return [leads, co_handles], {"scope_department": scope.department_code}


def department_scope_sql(alias: str = "e") -> str:
    """A department's events: those it leads, and those it co-handles while its task is live (联合处置).

    The co-handled ids are read once, as an array (few tasks are live at a time), not by a correlated
    ``EXISTS`` per event: ``id = ANY(array)`` is an index condition, so the OR of the two becomes a
    bitmap OR of two index scans, and the scope combines with the other filters' indexes. With the
    ``EXISTS`` no index could serve the scope and a handler's filter that matched nothing read all
    of a million events (3.4 s, ``bench.big_events``).
    """
    return f"({alias}.department_code = :scope_department OR {_co_handled(alias)})"


def _co_handled(alias: str) -> str:
    return (
        f"{alias}.id = ANY(ARRAY(SELECT co_task.event_id FROM event_tasks co_task "
        "WHERE co_task.department_code = :scope_department AND co_task.status IN ('open', 'handling')))"
    )


@dataclass(frozen=True)
class BoundaryView:
    """What a reader of boundary versions sees besides codes and outlines.

    ``people_prefix``: the subtree whose grids' people (workers, officer), places, posts and
    population moves are shown ("" every one, None none); ``events``: which events may be listed.
    """

    people_prefix: str | None = ""
    events: Scope = Scope(everything=True)

    def sees(self, code: str | None) -> bool:
        """Whether the people and moves of the grid or region ``code`` may be shown."""
        return self.people_prefix is not None and code is not None and code.startswith(self.people_prefix)


EVERYTHING = BoundaryView()  # the CLI, run by whoever holds the database


def boundary_view(principal: Principal) -> BoundaryView:
    """A boundary reader's view: the city for admins, supervisors and planners, else their own scope.

    Planners redraw any grid and publishing re-routes every open event it moves, so the events of
    their impact reports are the city's (they see no events elsewhere). Dispatchers and grid
    workers see people, moves and events of their subtree only; everyone else none.
    """
    if principal.role in (Role.admin, Role.supervisor, Role.planner):
        return EVERYTHING
    return BoundaryView(region_scope(principal), scope_of(principal))


def region_scope(principal: Principal) -> str | None:
    """The code prefix of a region-scoped caller's subtree (dispatchers, grid workers); None: not region-scoped."""
    if principal.role in SCOPED_BY_REGION and principal.region_code:
        return region_prefix(principal.region_code)
    return None


def code_scope_sql(principal: Principal, column: str, param: str = "scope_prefix") -> tuple[str, dict[str, Any]]:
    """A WHERE fragment keeping the rows whose region or grid code ``column`` lies in the caller's subtree."""
    prefix = region_scope(principal)
    if prefix is None:
        return "TRUE", {}
    return f"{column} LIKE :{param}", {param: prefix + "%"}


def region_prefix(code: str) -> str:
    """The prefix every code in the subtree of ``code`` starts with.

    A 12-digit code ends in zeros for the levels below it: 320682000000 (county) → '320682',
    320682001000 (town) → '320682001', 320682001002 (community) → all 12 digits. A 15-digit grid
    code is its own subtree.
    """
    if len(code) > 12:
        return code
    for length in REGION_SEGMENTS:
        if set(code[length:]) <= {"0"}:
            return code[:length]
    return code


# Owners (issue 17): reading follows the scope above; *acting* follows who holds the event now.
# An event is held by a unit of the region tree ('unit', a region or grid code) or a department
# ('department', its code). Escalation moves it up, dispatch to a department, return back down: the
# previous holder keeps its read-only view through the scope above but may no longer act.


def acts_for_owner(
    principal: Principal, owner_kind: str | None, owner_code: str | None, grids: frozenset[str] | None = None
) -> bool:
    """Whether ``principal`` may act for the holder (``owner_kind``, ``owner_code``) of an event.

    Admins always. A handler for their department. A dispatcher for the units of their subtree —
    their own level and below, never above: once an event goes up past them it is no longer theirs.
    A grid worker for grid units only (15-digit codes): the grids they serve (``grids``, from
    ``user_grids``) when they have any, else the grids of their region subtree (a region_code that
    is a grid is that one grid). Everyone else acts for no one.
    """
    if principal.role == Role.admin:
        return True
    if not owner_kind or not owner_code:
        return False
    if principal.role == Role.handler:
        return owner_kind == "department" and owner_code == principal.department_code
    if owner_kind != "unit" or not principal.region_code:
        return False
    if principal.role == Role.dispatcher:
        return owner_code.startswith(region_prefix(principal.region_code))
    if principal.role == Role.grid_worker:
        if len(owner_code) != 15:
            return False
        if grids:
            return owner_code in grids
        return owner_code.startswith(region_prefix(principal.region_code))
    return False


def owner_sql(principal: Principal, alias: str = "e") -> tuple[str, dict[str, Any]]:
    """``acts_for_owner`` as a WHERE fragment over ``events {alias}``, for queues (``owner=mine``).

    The grid worker's served grids are read from ``user_grids`` in the same statement.
    """
    kind, code = f"{alias}.owner_kind", f"{alias}.owner_code"
    if principal.role == Role.admin:
        return f"{code} IS NOT NULL", {}
    if principal.role == Role.handler and principal.department_code:
        return f"({kind} = 'department' AND {code} = :owner_department)", {
            "owner_department": principal.department_code
        }
    if principal.role not in SCOPED_BY_REGION or not principal.region_code:
        return "FALSE", {}
    subtree = f"{code} LIKE :owner_prefix"
    params: dict[str, Any] = {"owner_prefix": region_prefix(principal.region_code) + "%"}
    if principal.role == Role.dispatcher:
        return f"({kind} = 'unit' AND {subtree})", params
    served = "SELECT ug.grid_code FROM user_grids ug JOIN users u ON u.id = ug.user_id WHERE u.username = :owner_user"
    params["owner_user"] = principal.username
    return (
        f"({kind} = 'unit' AND length({code}) = 15 AND CASE WHEN EXISTS ({served}) "
        f"THEN {code} IN ({served}) ELSE {subtree} END)",
        params,
    )
