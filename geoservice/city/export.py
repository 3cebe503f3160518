"""``city export``: the city as a pack again, which ``city load`` reads back to equal data.

Geo layers are written as GeoJSON in WGS84 through ``etl.writers`` (the import contract's columns,
extra properties spread out), population as CSV with lon/lat, the tables as CSV with every column
``city load`` reads. Accounts keep their argon2 hashes, never a password. Events are history,
not part of the city's set-up, and are not exported (``geoservice export events`` writes them).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from etl.writers import read_layer, write_layer
from geoservice.boundaries.versions import resolve_version
from geoservice.city.load import CITY_KEYS
from geoservice.city.pack import CITY_FILE, CityInfo, write_city
from geoservice.field.key_people import log_export
from layers.dataset import dataset_settings

TABLE_QUERIES = {
    "departments": "SELECT code, name, kind, coalesce(parent_code, '') AS parent_code, duty_phone "
    "FROM departments ORDER BY code",
    "categories": "SELECT c.code, c.name, coalesce(c.parent_code, '') AS parent_code, c.accept_hours, "
    "c.handle_hours, CASE WHEN c.small_matter THEN 'true' ELSE 'false' END AS small_matter, "
    "CASE WHEN c.sensitive THEN 'true' ELSE 'false' END AS sensitive, "
    "c.duplicate_radius_m, c.duplicate_window_hours, "
    "CASE WHEN c.attributes = '[]'::jsonb THEN '' ELSE c.attributes::text END AS attributes, "
    "coalesce(d.accept_hours::text, '') AS urgent_accept_hours, coalesce(d.handle_hours::text, '') "
    "AS urgent_handle_hours FROM categories c LEFT JOIN deadlines d ON d.category_code = c.code "
    "AND d.priority = 'urgent' ORDER BY c.parent_code NULLS FIRST, c.code",
    "routing_rules": "SELECT id, category_code, coalesce(region_code, '') AS region_code, "
    "coalesce(place_type, '') AS place_type, coalesce(place_distance_m::text, '') AS place_distance_m, "
    "coalesce(zone_layer, '') AS zone_layer, department_code, priority, description FROM routing_rules "
    "WHERE enabled ORDER BY id",
    "users": "SELECT u.username, u.display_name AS name, u.phone, u.role::text AS role, "
    "coalesce(u.region_code, '') AS region_code, coalesce(u.department_code, '') AS department_code, "
    "coalesce((SELECT string_agg(grid_code, ';' ORDER BY grid_code) FROM user_grids WHERE user_id = u.id), '') "
    "AS grids, u.password_hash, CASE WHEN u.must_change_password THEN 'true' ELSE 'false' END "
    "AS must_change_password FROM users u WHERE NOT u.disabled ORDER BY u.username",
    "duties": "SELECT code, name, level, every_days, coalesce(region_code, '') AS region_code, description "
    "FROM duties ORDER BY code",
    "key_people": "SELECT name, kind, grid_code, visit_cycle_days, id_number, phone, address, "
    "coalesce(responsible_username, '') AS responsible_username, notes FROM key_people ORDER BY grid_code, name, id",
}


def export_pack(
    session: Session, directory: Path, version: str | None = None, reader: str = "cli"
) -> dict[str, int]:
    """Write the pack of ``version`` (default: the one in force) into ``directory``; return counts.

    The key people register goes out in full, so the export is logged as a read of each person by
    ``reader`` (in the caller's transaction: no file without its log rows).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    version_id = resolve_version(session, version)
    version_name = session.execute(
        text("SELECT name FROM boundary_versions WHERE id = :v"), {"v": version_id}
    ).scalar_one()
    counts: dict[str, int] = {}
    for layer in ("regions", "grids", "posts", "station_areas", "places"):
        frame = read_layer(session, layer, version_id if layer in ("regions", "grids") else None)
        if len(frame):
            counts[layer] = write_layer(frame, directory / f"{layer}.geojson")
    population = session.execute(text("SELECT ST_X(geom), ST_Y(geom), count FROM population ORDER BY id")).all()
    if population:
        pd.DataFrame(population, columns=["lon", "lat", "count"]).to_csv(directory / "population.csv", index=False)
        counts["population"] = len(population)
    for table, query in TABLE_QUERIES.items():
        rows = pd.read_sql_query(text(query), session.connection())
        if len(rows) or table in ("departments", "categories"):
            rows.to_csv(directory / f"{table}.csv", index=False)
            counts[table] = len(rows)
    if counts.get("key_people"):
        log_export(session, reader, "geoservice city export")
    _write_city(session, directory / CITY_FILE, version_name)
    return counts


def _write_city(session: Session, path: Path, version: str) -> None:
    """city.toml from the facts ``city load`` kept."""
    stored = dataset_settings(session)
    values = {attr: stored.get(key, "") for key, attr in CITY_KEYS.items()}
    levels = session.execute(text("SELECT level, accept_hours, handle_hours FROM escalation_levels")).all()
    escalation = {r.level: (float(r.accept_hours), float(r.handle_hours)) for r in levels}
    timezone = values["timezone"] or "Asia/Shanghai"
    write_city(path, CityInfo(values["name"], values["adcode"], "wgs84", timezone, version, escalation))
