"""Reference data edited after the load: departments, categories (with deadlines), routing rules.

A city's set-up changes (a new department, a category's deadline, a rule that sends noise near
schools elsewhere); admins change it through the API instead of reloading a pack. Every change is
checked as ``city check`` checks a pack's tables, written with an audit row (who, when, before,
after) in the same transaction, and announced with ``notify_layers_changed``: each running worker
rebuilds its router and decides with the new rules from the next report on.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field, PositiveFloat, model_validator
from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.boundaries.versions import notify_layers_changed
from geoservice.errors import InvalidInput, NotFound

KEYS = {"departments": "code", "categories": "code", "routing_rules": "id"}
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL: a 422, never a 500


class DepartmentIn(BaseModel):
    """A department as an admin sets it."""

    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    kind: str = Field("bureau", min_length=1, max_length=50, pattern=NO_NUL)
    parent_code: str | None = Field(None, max_length=50, description="the department above, if any", pattern=NO_NUL)
    duty_phone: str = Field("", max_length=50, pattern=NO_NUL)


class CategoryIn(BaseModel):
    """A category (class or subcategory) with its deadlines per priority."""

    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    parent_code: str | None = Field(None, max_length=80, description="its class; none for a class", pattern=NO_NUL)
    accept_hours: PositiveFloat
    handle_hours: PositiveFloat
    small_matter: bool = False
    sensitive: bool = Field(False, description="public Open311 records carry no description and a coarse place")
    urgent_accept_hours: PositiveFloat | None = None
    urgent_handle_hours: PositiveFloat | None = None
    duplicate_radius_m: PositiveFloat = Field(50, description="open reports this near are offered as duplicates")
    duplicate_window_hours: PositiveFloat = Field(72, description="… if reported within this many hours")

    @model_validator(mode="after")
    def _both_urgent(self) -> CategoryIn:
        if (self.urgent_accept_hours is None) != (self.urgent_handle_hours is None):
            raise ValueError("give both urgent deadlines or neither")
        return self


class RuleIn(BaseModel):
    """A routing rule: (category, region, key place within a distance, zone) → department."""

    category_code: str = Field(min_length=1, max_length=80, pattern=NO_NUL)
    department_code: str = Field(min_length=1, max_length=50, pattern=NO_NUL)
    region_code: str | None = Field(None, max_length=12, pattern=NO_NUL)
    place_type: str | None = Field(None, max_length=50, pattern=NO_NUL)
    place_distance_m: PositiveFloat | None = None
    zone_layer: str | None = Field(None, max_length=50, pattern=NO_NUL)
    priority: int = 0
    description: str = Field("", pattern=NO_NUL)
    enabled: bool = True

    @model_validator(mode="after")
    def _place_with_distance(self) -> RuleIn:
        if (self.place_type is None) != (self.place_distance_m is None):
            raise ValueError("a place condition needs both place_type and place_distance_m")
        return self


def list_table(session: Session, table: str) -> list[dict[str, Any]]:
    """Every row of a reference table (categories with their urgent deadlines)."""
    if table == "categories":
        query = (
            "SELECT c.*, d.accept_hours AS urgent_accept_hours, d.handle_hours AS urgent_handle_hours "
            "FROM categories c LEFT JOIN deadlines d ON d.category_code = c.code AND d.priority = 'urgent' "
            "ORDER BY c.code"
        )
    else:
        query = f"SELECT * FROM {table} ORDER BY {KEYS[table]}"  # table is one of KEYS, never user text
    return [dict(r._mapping) for r in session.execute(text(query))]


def put_department(session: Session, code: str, body: DepartmentIn, actor: str) -> dict[str, Any]:
    """Create or change department ``code``."""
    if body.parent_code is not None:
        _exists(session, "departments", body.parent_code, "parent department")
        if _ancestry_reaches(session, body.parent_code, code):
            raise InvalidInput(f"department {body.parent_code!r} is below {code!r}: parents may not form a cycle")
    before = _row(session, "departments", code)
    session.execute(
        text(
            "INSERT INTO departments (code, name, kind, parent_code, duty_phone) VALUES (:code, :name, :kind, "
            ":parent_code, :duty_phone) ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind, "
            "parent_code = EXCLUDED.parent_code, duty_phone = EXCLUDED.duty_phone"
        ),
        {"code": code, **body.model_dump()},
    )
    return _audited(session, "departments", code, before, actor)


def put_category(session: Session, code: str, body: CategoryIn, actor: str) -> dict[str, Any]:
    """Create or change category ``code`` and its urgent deadlines."""
    if body.parent_code is not None:
        parent = _exists(session, "categories", body.parent_code, "parent category")
        if parent["parent_code"] is not None:
            raise InvalidInput(f"{body.parent_code!r} is itself a subcategory; categories have two levels")
    before = _row(session, "categories", code)
    fields = body.model_dump()
    session.execute(
        text(
            "INSERT INTO categories (code, name, parent_code, accept_hours, handle_hours, small_matter, "
            "sensitive, duplicate_radius_m, duplicate_window_hours) VALUES (:code, :name, :parent_code, "
            ":accept_hours, :handle_hours, :small_matter, :sensitive, :duplicate_radius_m, "
            ":duplicate_window_hours) ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, "
            "parent_code = EXCLUDED.parent_code, accept_hours = EXCLUDED.accept_hours, "
            "handle_hours = EXCLUDED.handle_hours, small_matter = EXCLUDED.small_matter, "
            "sensitive = EXCLUDED.sensitive, duplicate_radius_m = EXCLUDED.duplicate_radius_m, "
            "duplicate_window_hours = EXCLUDED.duplicate_window_hours"
        ),
        {"code": code, **fields},
    )
    session.execute(text("DELETE FROM deadlines WHERE category_code = :c AND priority = 'urgent'"), {"c": code})
    if body.urgent_accept_hours is not None:
        session.execute(
            text(
                "INSERT INTO deadlines (category_code, priority, accept_hours, handle_hours) "
                "VALUES (:c, 'urgent', :a, :h)"
            ),
            {"c": code, "a": body.urgent_accept_hours, "h": body.urgent_handle_hours},
        )
    return _audited(session, "categories", code, before, actor)


def save_rule(session: Session, rule_id: int | None, body: RuleIn, actor: str) -> dict[str, Any]:
    """Create a routing rule (``rule_id`` None) or change one; ``enabled: false`` retires it."""
    _exists(session, "categories", body.category_code, "category")
    _exists(session, "departments", body.department_code, "department")
    if (
        body.region_code
        and not session.execute(text("SELECT 1 FROM regions WHERE code = :c LIMIT 1"), {"c": body.region_code}).first()
    ):
        raise InvalidInput(f"no region with code {body.region_code!r}")
    if (
        body.zone_layer
        and not session.execute(
            text("SELECT 1 FROM police_posts WHERE level = 'station' AND 'station_area:' || code = :z"),
            {"z": body.zone_layer},
        ).first()
    ):
        raise InvalidInput(f"zone {body.zone_layer!r} is not station_area:<a police station's code>")
    fields = body.model_dump()
    if rule_id is None:
        before = None
        rule_id = session.execute(
            text(
                "INSERT INTO routing_rules (category_code, region_code, place_type, place_distance_m, zone_layer, "
                "department_code, priority, description, enabled) VALUES (:category_code, :region_code, "
                ":place_type, :place_distance_m, :zone_layer, :department_code, :priority, :description, :enabled) "
                "RETURNING id"
            ),
            fields,
        ).scalar_one()
    else:
        before = _row(session, "routing_rules", str(rule_id))
        if before is None:
            raise NotFound(f"no routing rule {rule_id}")
        session.execute(
            text(
                "UPDATE routing_rules SET category_code = :category_code, region_code = :region_code, "
                "place_type = :place_type, place_distance_m = :place_distance_m, zone_layer = :zone_layer, "
                "department_code = :department_code, priority = :priority, description = :description, "
                "enabled = :enabled WHERE id = :id"
            ),
            {"id": rule_id, **fields},
        )
    return _audited(session, "routing_rules", str(rule_id), before, actor)


def reference_changes(session: Session, limit: int = 100) -> list[dict[str, Any]]:
    """The audit trail, newest first."""
    rows = session.execute(
        text(
            "SELECT id, at, actor, table_name, key, action, before, after FROM reference_changes "
            "ORDER BY id DESC LIMIT :n"
        ),
        {"n": limit},
    )
    return [dict(r._mapping) for r in rows]


def _row(session: Session, table: str, key: str) -> dict[str, Any] | None:
    column = KEYS[table]
    found = session.execute(text(f"SELECT to_jsonb(t) FROM {table} t WHERE {column}::text = :k"), {"k": key}).scalar()
    if found is not None and table == "categories":
        urgent = session.execute(
            text("SELECT accept_hours, handle_hours FROM deadlines WHERE category_code = :c AND priority = 'urgent'"),
            {"c": key},
        ).first()
        found["urgent_accept_hours"], found["urgent_handle_hours"] = urgent if urgent else (None, None)
    return found


def _exists(session: Session, table: str, key: str, what: str) -> dict[str, Any]:
    row = _row(session, table, key)
    if row is None:
        raise InvalidInput(f"no {what} with code {key!r}")
    return row


def _ancestry_reaches(session: Session, start: str, target: str) -> bool:
    """Whether ``target`` is ``start`` or above it (walking parent_code)."""
    return bool(
        session.execute(
            text(
                "WITH RECURSIVE up AS (SELECT code, parent_code FROM departments WHERE code = :s UNION "
                "SELECT d.code, d.parent_code FROM departments d JOIN up ON d.code = up.parent_code) "
                "SELECT 1 FROM up WHERE code = :t"
            ),
            {"s": start, "t": target},
        ).first()
    )


def _audited(session: Session, table: str, key: str, before: dict[str, Any] | None, actor: str) -> dict[str, Any]:
    """Write the audit row, tell the workers, and return the row as it now is."""
    after = _row(session, table, key)
    action = "create" if before is None else "update"
    session.execute(
        text(
            "INSERT INTO reference_changes (actor, table_name, key, action, before, after) "
            "VALUES (:actor, :table, :key, :action, CAST(:before AS jsonb), CAST(:after AS jsonb))"
        ),
        {"actor": actor, "table": table, "key": key, "action": action,
         "before": json.dumps(before, ensure_ascii=False) if before is not None else None,
         "after": json.dumps(after, ensure_ascii=False)},
    )  # fmt: skip
    notify_layers_changed(session)
    return after or {}
