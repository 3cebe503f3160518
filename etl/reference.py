"""Reference tables loaded as data, not code: event categories, departments and routing rules.

The defaults ship in ``etl/data/*.csv`` (five classes from practice — 社会治安, 公共安全, 城市管理,
环境保护, 民生服务 — with subcategories and deadlines; the city's departments; default routing rules).
A city replaces them by loading its own CSVs with the same columns; rows are upserted by key.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

DATA = Path(__file__).parent / "data"


def load_reference_data(session: Session, directory: Path = DATA) -> dict[str, int]:
    """Upsert categories, departments and routing rules from ``directory``; return row counts."""
    categories = _read(directory / "categories.csv")
    departments = _read(directory / "departments.csv")
    rules = _read(directory / "routing_rules.csv")
    # Classes before subcategories, so each parent exists when its children arrive.
    categories = categories.sort_values("parent_code", key=lambda s: s.ne(""), kind="stable")
    # ``sensitive`` is optional (a city's older CSV has none): true/yes/1 marks disputes, petitions
    # and the like, whose public Open311 records carry no description and a coarse place.
    sensitive = categories["sensitive"] if "sensitive" in categories else pd.Series("", index=categories.index)
    categories = categories.assign(sensitive=sensitive.str.strip().str.lower().isin(("true", "yes", "1")))
    session.execute(
        text(
            "INSERT INTO categories (code, name, parent_code, accept_hours, handle_hours, sensitive) "
            "VALUES (:code, :name, NULLIF(:parent_code, ''), :accept_hours, :handle_hours, :sensitive) "
            "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, parent_code = EXCLUDED.parent_code, "
            "accept_hours = EXCLUDED.accept_hours, handle_hours = EXCLUDED.handle_hours, "
            "sensitive = EXCLUDED.sensitive"
        ),
        categories.to_dict("records"),
    )
    session.execute(
        text(
            "INSERT INTO departments (code, name, kind) VALUES (:code, :name, :kind) "
            "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind"
        ),
        departments.to_dict("records"),
    )
    session.execute(
        text(
            "INSERT INTO routing_rules (id, category_code, region_code, place_type, place_distance_m, "
            "zone_layer, department_code, priority, description) VALUES (CAST(:id AS integer), "
            ":category_code, NULLIF(:region_code, ''), NULLIF(:place_type, ''), "
            "CAST(NULLIF(:place_distance_m, '') AS float8), NULLIF(:zone_layer, ''), :department_code, "
            "CAST(:priority AS integer), :description) ON CONFLICT (id) DO UPDATE SET "
            "category_code = EXCLUDED.category_code, region_code = EXCLUDED.region_code, "
            "place_type = EXCLUDED.place_type, place_distance_m = EXCLUDED.place_distance_m, "
            "zone_layer = EXCLUDED.zone_layer, department_code = EXCLUDED.department_code, "
            "priority = EXCLUDED.priority, description = EXCLUDED.description"
        ),
        rules.to_dict("records"),
    )
    # Rules inserted with explicit ids: move the sequence past them for rules added later.
    session.execute(
        text("SELECT setval(pg_get_serial_sequence('routing_rules', 'id'), max(id)) FROM routing_rules")
    )
    return {"categories": len(categories), "departments": len(departments), "routing_rules": len(rules)}


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)
