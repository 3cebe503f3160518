"""Reference tables loaded as data, not code: event categories, departments and routing rules.

The defaults ship in ``etl/data/*.csv`` (five classes from practice — 社会治安, 公共安全, 城市管理,
环境保护, 民生服务 — with subcategories and deadlines; the city's departments; default routing rules).
A city replaces them by loading its own CSVs with the same columns; rows are upserted by key.
Columns added later are optional (``OPTIONAL``), so the CSVs of earlier releases still load:
departments' ``parent_code`` and ``duty_phone``; categories' ``small_matter`` (true/false)
and ``urgent_accept_hours``/``urgent_handle_hours`` (the urgent priority's own deadlines, stored in
``deadlines``; without them urgent events get the priority factor); ``duplicate_radius_m`` and
``duplicate_window_hours`` (how near and how recent an open report is offered as a duplicate; 50 m
and 72 h when empty); ``attributes`` (a JSON list of GeoReport v2 attribute definitions: what an
Open311 client asks the reporter; empty: none — checked in ``geoservice.city.check``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

DATA = Path(__file__).parent / "data"
# Duplicate search per category (issue 17): radius in metres and window in hours; empty: the defaults.
DUPLICATE_COLUMNS = ("duplicate_radius_m", "duplicate_window_hours")
DUPLICATE_DEFAULTS = {"duplicate_radius_m": 50.0, "duplicate_window_hours": 72.0}
REQUIRED = {
    "departments": ("code", "name", "kind"),
    "categories": ("code", "name", "parent_code", "accept_hours", "handle_hours"),
    "routing_rules": ("id", "category_code", "region_code", "place_type", "place_distance_m", "zone_layer",
                      "department_code", "priority", "description"),
}  # fmt: skip
OPTIONAL = {
    "departments": ("parent_code", "duty_phone"),
    "categories": ("small_matter", "urgent_accept_hours", "urgent_handle_hours", "sensitive",
                   *DUPLICATE_COLUMNS, "attributes"),
    "routing_rules": (),
}
TRUE = ("true", "yes", "1", "是")


def load_reference_data(session: Session, directory: Path = DATA) -> dict[str, int]:
    """Upsert categories, departments and routing rules from ``directory``; return row counts."""
    categories = read_table(directory / "categories.csv", "categories")
    departments = read_table(directory / "departments.csv", "departments")
    rules_file = directory / "routing_rules.csv"  # optional in a city pack: rules may be added later
    rules = read_table(rules_file, "routing_rules") if rules_file.exists() else pd.DataFrame()
    # Flags: true/yes/1/是. ``sensitive`` marks disputes, petitions and the like, whose public Open311
    # records carry no description and a coarse place; grid workers close ``small_matter`` alone.
    for flag in ("small_matter", "sensitive"):
        categories[flag] = categories[flag].str.strip().str.lower().isin(TRUE)
    # Classes before subcategories, so each parent exists when its children arrive.
    categories = categories.sort_values("parent_code", key=lambda s: s.ne(""), kind="stable")
    for column, default in DUPLICATE_DEFAULTS.items():
        categories[column] = categories[column].str.strip().replace("", str(default))
    categories["attributes"] = categories["attributes"].str.strip().replace("", "[]")
    session.execute(
        text(
            "INSERT INTO categories (code, name, parent_code, accept_hours, handle_hours, small_matter, "
            "sensitive, duplicate_radius_m, duplicate_window_hours, attributes) VALUES (:code, :name, "
            "NULLIF(:parent_code, ''), CAST(:accept_hours AS float8), CAST(:handle_hours AS float8), :small_matter, "
            ":sensitive, CAST(:duplicate_radius_m AS float8), CAST(:duplicate_window_hours AS float8), "
            "CAST(:attributes AS jsonb)) "
            "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, parent_code = EXCLUDED.parent_code, "
            "accept_hours = EXCLUDED.accept_hours, handle_hours = EXCLUDED.handle_hours, "
            "small_matter = EXCLUDED.small_matter, sensitive = EXCLUDED.sensitive, "
            "duplicate_radius_m = EXCLUDED.duplicate_radius_m, "
            "duplicate_window_hours = EXCLUDED.duplicate_window_hours, attributes = EXCLUDED.attributes"
        ),
        categories.to_dict("records"),
    )
    urgent = categories[categories["urgent_accept_hours"].str.strip().ne("")]
    if len(urgent):
        session.execute(
            text(
                "INSERT INTO deadlines (category_code, priority, accept_hours, handle_hours) VALUES (:code, "
                "'urgent', CAST(:urgent_accept_hours AS float8), CAST(:urgent_handle_hours AS float8)) "
                "ON CONFLICT (coalesce(category_code, ''), priority) DO UPDATE SET "
                "accept_hours = EXCLUDED.accept_hours, handle_hours = EXCLUDED.handle_hours"
            ),
            urgent[["code", "urgent_accept_hours", "urgent_handle_hours"]].to_dict("records"),
        )
    session.execute(
        text(
            "INSERT INTO departments (code, name, kind, parent_code, duty_phone) "
            "VALUES (:code, :name, :kind, NULLIF(:parent_code, ''), :duty_phone) "
            "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind, "
            "parent_code = EXCLUDED.parent_code, duty_phone = EXCLUDED.duty_phone"
        ),
        departments.to_dict("records"),
    )
    if len(rules):
        _upsert_rules(session, rules)
    return {"categories": len(categories), "departments": len(departments), "routing_rules": len(rules)}


def _upsert_rules(session: Session, rules: pd.DataFrame) -> None:
    session.execute(
        text(
            "INSERT INTO routing_rules (id, category_code, region_code, place_type, place_distance_m, "
            "zone_layer, department_code, priority, description) VALUES (CAST(:id AS integer), "
            ":category_code, NULLIF(:region_code, ''), NULLIF(:place_type, ''), "
            "CAST(NULLIF(:place_distance_m, '') AS float8), NULLIF(:zone_layer, ''), :department_code, "
            "coalesce(CAST(NULLIF(:priority, '') AS integer), 0), :description) ON CONFLICT (id) DO UPDATE SET "
            "category_code = EXCLUDED.category_code, region_code = EXCLUDED.region_code, "
            "place_type = EXCLUDED.place_type, place_distance_m = EXCLUDED.place_distance_m, "
            "zone_layer = EXCLUDED.zone_layer, department_code = EXCLUDED.department_code, "
            "priority = EXCLUDED.priority, description = EXCLUDED.description"
        ),
        rules.to_dict("records"),
    )
    # Rules inserted with explicit ids: move the sequence past them for rules added later.
    session.execute(text("SELECT setval(pg_get_serial_sequence('routing_rules', 'id'), max(id)) FROM routing_rules"))


def read_table(path: Path, table: str) -> pd.DataFrame:
    """A reference CSV as text, with every optional column present (empty where the file has none)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    if table == "categories" and "grid_worker_closes" in frame.columns and "small_matter" not in frame.columns:
        frame = frame.rename(columns={"grid_worker_closes": "small_matter"})  # its name before release 0008
    for column in OPTIONAL[table]:
        if column not in frame.columns:
            frame[column] = ""
    return frame
