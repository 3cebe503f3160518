"""``/v1/reference/…``: departments, categories (with deadlines) and routing rules, edited by admins.

Reading is for staff who need to know where events go; changing is for admins only, each change
audited (``GET /v1/reference/changes``) and picked up by every running router at once.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query

from geoservice.api.deps import SessionDep
from geoservice.auth.policy import STAFF, allow, policy
from geoservice.auth.users import Principal
from geoservice.city.reference import (
    CategoryIn,
    DepartmentIn,
    RuleIn,
    list_table,
    put_category,
    put_department,
    reference_changes,
    save_rule,
)
from layers.models import Role

router = APIRouter(prefix="/v1/reference", tags=["reference data"])
ADMINS = allow(Role.admin)
AUDITORS = allow(Role.admin, Role.supervisor)
Admin = Annotated[Principal, Depends(ADMINS)]
Code = Annotated[str, Path(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.\-]+$")]
TABLES = {"departments": "departments", "categories": "categories", "routing-rules": "routing_rules"}


@router.get("/changes", **policy(AUDITORS))
def get_changes(session: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    """The audit trail of reference data: who changed what, when, before and after; newest first."""
    return reference_changes(session, limit)


@router.get("/{table}", **policy(STAFF))
def get_table(
    table: Literal["departments", "categories", "routing-rules"], session: SessionDep
) -> list[dict[str, Any]]:
    """Every row of a reference table."""
    return list_table(session, TABLES[table])


@router.put("/departments/{code}", **policy(ADMINS))
def put_department_route(code: Code, body: DepartmentIn, session: SessionDep, admin: Admin) -> dict[str, Any]:
    """Create or change a department."""
    return put_department(session, code, body, admin.username)


@router.put("/categories/{code}", **policy(ADMINS))
def put_category_route(code: Code, body: CategoryIn, session: SessionDep, admin: Admin) -> dict[str, Any]:
    """Create or change a category and its deadlines (normal, and urgent when given)."""
    return put_category(session, code, body, admin.username)


@router.post("/routing-rules", status_code=201, **policy(ADMINS))
def post_rule(body: RuleIn, session: SessionDep, admin: Admin) -> dict[str, Any]:
    """Add a routing rule; running routers decide with it from the next event on."""
    return save_rule(session, None, body, admin.username)


@router.put("/routing-rules/{rule_id}", **policy(ADMINS))
def put_rule(rule_id: Annotated[int, Path(ge=1)], body: RuleIn, session: SessionDep, admin: Admin) -> dict[str, Any]:
    """Change a routing rule (``enabled: false`` retires it)."""
    return save_rule(session, rule_id, body, admin.username)
