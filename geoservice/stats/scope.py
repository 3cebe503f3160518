"""The caller's scope as a condition on ``events e`` — the very fragment the event lists use.

Statistics must never count an event the caller could not list, so the scope comes from
``geoservice.auth.scope`` (``scope_of`` + ``scope_sql``), the one definition every surface uses.
"""

from __future__ import annotations

from geoservice.auth.scope import code_scope_sql, scope_of, scope_sql
from geoservice.auth.users import Principal
from geoservice.stats.filters import Condition


def scope_condition(principal: Principal) -> Condition:
    """Dispatchers and grid workers: their region subtree; handlers: their department; others: all or none."""
    sql, params = scope_sql(scope_of(principal), "e")
    return Condition(sql, params)


def grid_scope_condition(principal: Principal) -> Condition:
    """Grids (``grids g``) a region-scoped caller may analyse; everyone else: every grid."""
    sql, params = code_scope_sql(principal, "g.code", "scope_grid_prefix")
    return Condition(sql, params) if params else Condition()
