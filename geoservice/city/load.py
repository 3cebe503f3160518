"""``city load``: a whole pack in one transaction, or nothing.

The pack is checked first (``city check``); with any fault nothing is written. Then, in one
transaction: the city's facts, reference data (``etl.reference``), every geo layer through the same
``import_frame`` as ``geoservice import``, population, accounts and the grids they serve, and the
publication of the boundaries (unless a draft is asked for). One-time passwords are written to a
file of mode 0600 before the commit and removed again when the transaction fails.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from etl.load import copy_rows, import_frame
from etl.reference import TRUE, load_reference_data
from geoservice.auth.passwords import hash_password
from geoservice.boundaries.publish import publish
from geoservice.boundaries.settings import BoundarySettings
from geoservice.boundaries.versions import notify_layers_changed
from geoservice.city.check import PackCheck, check_pack
from geoservice.city.pack import CityInfo, Pack, PackFault, read_pack
from geoservice.errors import InvalidInput
from geoservice.events.deadlines import DeadlineHours
from geoservice.events.levels import save_level_hours
from geoservice.field.duties import load_duties
from geoservice.field.key_people import load_key_people
from geoservice.infra.database import transaction
from geoservice.routing.bulk_events import route_imported_events
from geoservice.settings import RoutingSettings
from layers.dataset import remember_dataset_settings

CITY_KEYS = {"city_name": "name", "city_adcode": "adcode", "city_timezone": "timezone"}


class PackRejected(InvalidInput):
    """The pack has faults; nothing was loaded. ``faults`` lists every one of them."""

    title = "City pack rejected"

    def __init__(self, faults: list[PackFault]) -> None:
        super().__init__(f"{len(faults)} fault(s) in the pack; nothing was loaded", faults=[str(f) for f in faults])
        self.faults = faults


@dataclass
class PackLoad:
    """What ``city load`` did: rows per layer or table, the version, one-time passwords written."""

    city: CityInfo
    version: str
    published: bool
    counts: dict[str, int] = field(default_factory=dict)
    repairs: list[PackFault] = field(default_factory=list)
    one_time_passwords: int = 0
    passwords_file: Path | None = None


def check_directory(directory: Path, boundaries: BoundarySettings, *, fix: bool = False) -> tuple[Pack, PackCheck]:
    """Read and check a pack; nothing is written. ``fix`` repairs geometries and slivers (listed)."""
    pack = read_pack(directory)
    checked = check_pack(
        pack, fix=fix, sliver_max_m2=boundaries.sliver_fix_max_m2, sliver_tolerance_m2=boundaries.sliver_tolerance_m2
    )
    return pack, checked


def load_pack(
    engine: Engine,
    directory: Path,
    *,
    routing: RoutingSettings,
    boundaries: BoundarySettings,
    passwords_file: Path,
    draft: bool = False,
    fix: bool = False,
    effective_from: datetime | None = None,
    step: Callable[[str], None] = lambda _: None,
) -> PackLoad:
    """Check the pack in ``directory`` and load all of it in one transaction; PackRejected if faulty."""
    step("checking the pack")
    pack, checked = check_directory(directory, boundaries, fix=fix)
    if not checked.ok or pack.city is None:
        raise PackRejected(checked.faults)
    city = pack.city
    report = PackLoad(city, city.version_name, published=not draft, repairs=checked.repairs)
    try:
        with transaction(engine) as session:
            _remember_city(session, city)
            save_level_hours(session, {level: DeadlineHours(*h) for level, h in city.escalation.items()})
            step("loading reference data")
            report.counts.update(load_reference_data(session, pack.directory))
            for layer in ("regions", "grids", "posts", "station_areas", "places"):
                if layer in checked.validated:
                    step(f"loading {layer}")
                    loaded = import_frame(session, layer, checked.validated[layer].frame, version=report.version,
                                          source=pack.file_name(layer))  # fmt: skip
                    report.counts[layer] = loaded.count
            if "population" in pack.layers:
                step("loading population")
                report.counts["population"] = load_population(session, pack.layers["population"].frame)
            if "users" in pack.tables:
                step("loading users")
                report.counts["users"], report.one_time_passwords = _load_users(
                    session, pack.tables["users"], passwords_file
                )
                if report.one_time_passwords:
                    report.passwords_file = passwords_file
            if "duties" in pack.tables:
                step("loading the duty list")
                report.counts["duties"] = load_duties(session, pack.tables["duties"].to_dict("records"))
            if "key_people" in pack.tables:
                step("loading the key people register")
                report.counts["key_people"] = load_key_people(session, pack.tables["key_people"].to_dict("records"))
            _fill_grid_workers(session, report.version)
            if not draft:
                step("publishing the boundaries")
                publish(session, report.version, effective_from, routing=routing, boundaries=boundaries)
            if "events" in checked.validated:
                step("loading events")
                loaded = import_frame(session, "events", checked.validated["events"].frame,
                                      source=pack.file_name("events"))  # fmt: skip
                report.counts["events"] = loaded.count
                route_imported_events(session, routing)
            notify_layers_changed(session)
    except BaseException:
        if report.passwords_file is not None:
            report.passwords_file.unlink(missing_ok=True)  # the accounts were not created after all
        raise
    return report


def _remember_city(session: Session, city: CityInfo) -> None:
    """The city's name, adcode and time zone, so ``city export`` can write city.toml again."""
    remember_dataset_settings(session, {key: getattr(city, attr) for key, attr in CITY_KEYS.items()})


def load_population(session: Session, frame: gpd.GeoDataFrame) -> int:
    """Population points as they are: no import contract covers them (a census grid has no codes)."""
    session.execute(text("DELETE FROM population"))
    geoms = shapely.to_wkb(shapely.set_srid(frame.geometry.values, 4326), hex=True, include_srid=True)
    counts = pd.to_numeric(frame["count"]).tolist()
    copy_rows(session, "population", ["count", "geom"], zip(counts, geoms, strict=True))
    return len(frame)


def _load_users(session: Session, users: pd.DataFrame, passwords_file: Path) -> tuple[int, int]:
    """Upsert accounts by username and the grids each grid worker serves; return (users, one-time passwords).

    A row without ``password_hash`` gets a one-time password only when the account is new (an
    existing account keeps its password); it must be changed at the first sign-in.
    """
    existing = set(session.execute(text("SELECT username FROM users")).scalars())
    issued: list[tuple[str, str]] = []
    rows = []
    for row in users.itertuples(index=False):
        given = bool(row.password_hash)
        password_hash, must_change = row.password_hash, row.must_change_password.lower() in TRUE
        if not given and row.username not in existing:
            password = secrets.token_urlsafe(12)
            issued.append((row.username, password))
            password_hash, must_change = hash_password(password), True
        rows.append(
            {"u": row.username, "h": password_hash or None, "keep": not password_hash, "r": row.role,
             "region": row.region_code or None, "dept": row.department_code or None, "name": row.name,
             "phone": row.phone, "must": must_change}
        )  # fmt: skip
    session.execute(
        text(
            "INSERT INTO users (username, password_hash, role, region_code, department_code, display_name, phone, "
            "must_change_password) VALUES (:u, coalesce(:h, ''), :r, :region, :dept, :name, :phone, :must) "
            "ON CONFLICT (username) DO UPDATE SET role = EXCLUDED.role, region_code = EXCLUDED.region_code, "
            "department_code = EXCLUDED.department_code, display_name = EXCLUDED.display_name, "
            "phone = EXCLUDED.phone, password_hash = CASE WHEN :keep THEN users.password_hash "
            "ELSE EXCLUDED.password_hash END, must_change_password = CASE WHEN :keep "
            "THEN users.must_change_password ELSE EXCLUDED.must_change_password END"
        ),
        rows,
    )
    ids = dict(session.execute(text("SELECT username, id FROM users")).all())
    named = [ids[u] for u in users["username"]]
    session.execute(text("DELETE FROM user_grids WHERE user_id = ANY(:ids)"), {"ids": named})
    served = [
        {"user": ids[username], "grid": grid.strip()}
        for username, grids in zip(users["username"], users["grids"], strict=True)
        for grid in dict.fromkeys(grids.split(";"))
        if grid.strip()
    ]
    if served:
        session.execute(text("INSERT INTO user_grids (user_id, grid_code) VALUES (:user, :grid)"), served)
    if issued:
        _write_passwords(passwords_file, issued)
    return len(rows), len(issued)


def _write_passwords(path: Path, issued: list[tuple[str, str]]) -> None:
    """One-time passwords, once, readable by the owner only; an existing file is never overwritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidInput(f"{path} exists already; one-time passwords are never written over") from None
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write("# one-time passwords: each must be changed at the first sign-in; delete this file after\n")
        out.write("username\tpassword\n")
        out.writelines(f"{user}\t{password}\n" for user, password in issued)


def _fill_grid_workers(session: Session, version: str) -> None:
    """Keep ``grids.workers`` (the names today's answers show) in step with the accounts that serve each grid.

    Only where some account serves a grid of this version: a pack without grid-worker accounts keeps
    the names its grids file gave.
    """
    session.execute(
        text(
            "UPDATE grids g SET workers = coalesce((SELECT array_agg(coalesce(nullif(u.display_name, ''), "
            "u.username) ORDER BY u.username) FROM user_grids ug JOIN users u ON u.id = ug.user_id "
            "WHERE ug.grid_code = g.code AND NOT u.disabled), '{}') "
            "FROM boundary_versions v WHERE v.id = g.version_id AND v.name = :v "
            "AND EXISTS (SELECT 1 FROM user_grids ug JOIN grids g2 ON g2.code = ug.grid_code "
            "WHERE g2.version_id = v.id)"
        ),
        {"v": version},
    )
