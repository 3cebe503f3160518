"""The collections served as OGC API - Features: where each one's rows come from, and who sees which.

A collection is data, not code: its table, the SQL of its id, geometry and properties, the
properties a client may filter on by equality (with their JSON Schema type when not a string, for
``/queryables``), its geometry type, its time property (if any), its order (stable, so
that offset paging never skips or repeats a feature) and the caller's scope as a SQL condition,
built from the same rules as the rest of the service (``geoservice.events.queries``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from geoservice.auth.scope import code_scope_sql, region_scope, scope_of, scope_sql
from geoservice.auth.users import SCOPED_BY_REGION, Principal
from layers.models import Role

Condition = tuple[str, dict[str, Any]]
FORCE_VIEWERS = frozenset({Role.admin, Role.supervisor, Role.dispatcher})


@dataclass(frozen=True)
class Collection:
    """One collection; ``source`` is a FROM clause whose alias is ``t``."""

    id: str
    title: str
    description: str
    source: str
    id_sql: str
    id_type: type
    properties: dict[str, str]  # name → SQL over t
    queryables: dict[str, str]  # name → SQL over t, compared as text
    order: str
    scope: Callable[[Principal], Condition]
    time_sql: str | None = None
    versioned: bool = False  # rows of the boundary version in force only
    geometry: str = "MultiPolygon"  # the GeoJSON type of its features, or "Geometry" when they mix
    types: dict[str, str] = field(default_factory=dict)  # queryable → JSON Schema type, when not "string"
    extra: dict[str, Any] = field(default_factory=dict)


def _by_code_prefix(principal: Principal) -> Condition:
    return code_scope_sql(principal, "t.code")


def _inside_region(principal: Principal) -> Condition:
    if principal.role in SCOPED_BY_REGION and principal.region_code:
        inside = (
            "EXISTS (SELECT 1 FROM regions sr WHERE sr.version_id = :version AND sr.code = :scope_region "
            "AND ST_Intersects(sr.geom, t.geom))"
        )
        return inside, {"scope_region": principal.region_code}
    return "TRUE", {}


def _events(principal: Principal) -> Condition:
    return scope_sql(scope_of(principal), "t")


def _forces(principal: Principal) -> Condition:
    """Dispatchers see the grid workers of their subtree and every patrol (police act city-wide)."""
    if principal.role not in FORCE_VIEWERS:
        return "FALSE", {}
    prefix = region_scope(principal)
    if principal.role == Role.dispatcher and prefix is not None:
        prefix += "%"
        return "(t.kind = 'patrol' OR coalesce(t.region_code, '') LIKE :scope_prefix)", {"scope_prefix": prefix}
    return "TRUE", {}


FORCES_SOURCE = """(
    SELECT DISTINCT ON (p.username) p.id, p.username, p.kind, p.geom, p.at, p.available, p.accuracy_m,
           u.display_name, u.region_code
      FROM force_positions p JOIN users u ON u.username = p.username AND NOT u.disabled
     ORDER BY p.username, p.at DESC, p.id DESC) t"""

COLLECTIONS: dict[str, Collection] = {
    c.id: c
    for c in (
        Collection(
            "regions", "Regions", "City, towns/streets and communities/villages of the boundary version in force",
            "regions t", "t.code", str,
            {"code": "t.code", "name": "t.name", "level": "t.level::text", "parent_code": "t.parent_code"},
            {"code": "t.code", "level": "t.level::text", "parent_code": "t.parent_code", "name": "t.name"},
            "t.code", _by_code_prefix, versioned=True,
        ),
        Collection(
            "grids", "Grids", "Basic grids (网格) of the boundary version in force, with workers and officer",
            "grids t", "t.code", str,
            {"code": "t.code", "name": "t.name", "community_code": "t.community_code",
             "workers": "to_jsonb(t.workers)", "officer": "t.officer"},
            {"code": "t.code", "community_code": "t.community_code", "name": "t.name", "officer": "t.officer"},
            "t.code", _by_code_prefix, versioned=True,
        ),
        Collection(
            "posts", "Police posts", "Village police rooms, central police rooms and police stations",
            "police_posts t", "t.code", str,
            {"code": "t.code", "name": "t.name", "level": "t.level::text"},
            {"code": "t.code", "level": "t.level::text", "name": "t.name"},
            "t.code", _inside_region, geometry="Point",
        ),
        Collection(
            "places", "Key places", "Schools, hospitals, malls, markets, rental housing, risk sources…",
            "key_places t", "t.code", str,
            {"code": "t.code", "name": "t.name", "type": "t.type"},
            {"code": "t.code", "type": "t.type", "name": "t.name"},
            "t.code", _inside_region, geometry="Geometry",
        ),
        Collection(
            "events", "Events", "Reported events with their routing and state (reporter details are not served)",
            "events t", "t.id", int,
            {"status": "t.status", "category": "t.category_code", "priority": "t.priority",
             "source": "t.source", "grid_code": "t.grid_code", "community_code": "t.community_code",
             "town_code": "t.town_code", "station_code": "t.station_code", "department": "t.department_code",
             "escalation_level": "t.escalation_level", "occurred_at": "t.occurred_at",
             "reported_at": "t.reported_at", "updated_at": "t.updated_at"},
            {"status": "t.status", "category": "t.category_code", "priority": "t.priority",
             "grid_code": "t.grid_code", "community_code": "t.community_code", "town_code": "t.town_code",
             "department": "t.department_code", "source": "t.source"},
            "t.id", _events, time_sql="t.reported_at", geometry="Point",
        ),
        Collection(
            "forces", "Forces", "Last reported position of each grid worker and patrol (治理力量)",
            FORCES_SOURCE, "t.username", str,
            {"username": "t.username", "display_name": "t.display_name", "kind": "t.kind", "at": "t.at",
             "available": "t.available", "accuracy_m": "t.accuracy_m"},
            {"kind": "t.kind", "username": "t.username", "available": "t.available::text"},
            "t.username", _forces, time_sql="t.at", geometry="Point", types={"available": "boolean"},
        ),
    )
}  # fmt: skip
