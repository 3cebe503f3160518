"""The caller's scope as a condition on ``events e`` — the very fragment the event lists use.

Statistics must never count an event the caller could not list, so the scope comes from
``geoservice.events.queries`` (``scope_of`` + ``scope_sql``) rather than a second definition.
"""

from __future__ import annotations

from geoservice.auth.users import SCOPED_BY_REGION, Principal
from geoservice.events.queries import region_prefix, scope_of, scope_sql
from geoservice.stats.filters import Condition


def scope_condition(principal: Principal) -> Condition:
    """Dispatchers and grid workers: their region subtree; handlers: their department; others: all or none."""
    sql, params = scope_sql(scope_of(principal), "e")
    return Condition(sql, params)


def grid_scope_condition(principal: Principal) -> Condition:
    """Grids (``grids g``) a region-scoped caller may analyse; everyone else: every grid."""
    if principal.role in SCOPED_BY_REGION and principal.region_code:
        prefix = region_prefix(principal.region_code) + "%"
        return Condition("g.code LIKE :scope_grid_prefix", {"scope_grid_prefix": prefix})
    return Condition()
