"""Transactional loading of validated layers into PostGIS.

``import_layer`` reads, validates against what the database holds, and writes inside the caller's
transaction: a file with any error raises ``ImportRejected`` before the first row is written, and a
failure while writing rolls the whole file back. Re-running an import is safe: versioned layers are
replaced within their draft version, posts and places are upserted by code, events with an ``id``
are keyed ``import:<id>`` and stored once however often the file is loaded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from etl.contracts import LayerContract, contract
from layers.crs import dataset_metric_epsg

if TYPE_CHECKING:
    import geopandas as gpd

    from etl.validate import FeatureError, References, Validation

# The readers and the checks (geopandas, pandas, pyogrio: ~70 MB and ~0.5 s, measured) are imported by the
# functions that read and check a file. ``ImportRejected`` and ``copy_rows`` are what most importers of
# this module want, among them every server worker (the API's error table, re-routing): not those.


class ImportRejected(Exception):
    """The file has errors; nothing was written. ``errors`` lists every one of them."""

    def __init__(self, layer: str, source: str, errors: Sequence[FeatureError]) -> None:
        self.layer, self.source, self.errors = layer, source, list(errors)
        super().__init__(f"{source}: {len(self.errors)} error(s); nothing was loaded into {layer}")


@dataclass
class ImportReport:
    """What was loaded; ``repairs`` lists what ``--fix`` changed."""

    layer: str
    count: int
    version: str | None = None
    repairs: list[FeatureError] = field(default_factory=list)


def import_layer(
    session: Session,
    layer: str,
    path: Path,
    *,
    crs: str | None = None,
    fix: bool = False,
    version: str | None = None,
) -> ImportReport:
    """Read ``path`` as ``layer``, validate it, and load it in the session's transaction.

    A rejection names the file by its own name (as ``ReadError`` does): an upload sits in a
    temporary folder of the server, which is no business of the client's.
    """
    from etl.readers import read_features

    read = read_features(path, crs)
    return import_frame(session, layer, read.frame, fix=fix, version=version, source=Path(path).name,
                        read_problems=read.problems)  # fmt: skip


def import_frame(
    session: Session,
    layer: str,
    frame: gpd.GeoDataFrame,
    *,
    fix: bool = False,
    version: str | None = None,
    source: str = "<frame>",
    read_problems: dict[int, str] | None = None,
) -> ImportReport:
    """Validate and load features already in WGS84 (the demo builder loads through here too)."""
    from etl.validate import validate

    rules = contract(layer)
    version_id = _draft_version(session, version) if rules.versioned else None
    refs = references(session, rules, frame, version_id)
    checked = validate(rules, frame, refs, fix=fix, read_problems=read_problems)
    if not checked.ok:
        raise ImportRejected(layer, source, checked.errors)
    count = WRITERS[layer](session, checked, version_id)
    version_name = version if version_id is None else _version_name(session, version_id)
    return ImportReport(layer, count, version_name, checked.repairs)


# --- references: what the file may point at ------------------------------------------------------
def references(
    session: Session, rules: LayerContract, frame: gpd.GeoDataFrame, version_id: int | None
) -> References:
    """Collect from the database only what this layer's checks need."""
    from etl.validate import References

    refs = References(metric_epsg=dataset_metric_epsg(session, frame.geometry.values))
    if version_id is not None:
        rows = session.execute(
            text("SELECT code, level::text FROM regions WHERE version_id = :v"), {"v": version_id}
        ).all()
        refs.regions = dict(rows)
    if rules.name == "grids" and version_id is not None:
        rows = session.execute(
            text("SELECT code, ST_AsBinary(geom) FROM regions WHERE version_id = :v AND level = 'community'"),
            {"v": version_id},
        ).all()
        refs.community_geoms = {code: shapely.from_wkb(bytes(wkb)) for code, wkb in rows}
    if rules.name == "station_areas":
        refs.station_codes = set(
            session.execute(text("SELECT code FROM police_posts WHERE level = 'station'")).scalars()
        )
    if rules.name == "events":
        refs.category_codes = set(session.execute(text("SELECT code FROM categories")).scalars())
    return refs


# --- boundary versions -----------------------------------------------------------------------------
def _draft_version(session: Session, name: str | None) -> int:
    """The draft called ``name`` (created if new); published versions are never rewritten."""
    if name is None:
        name = datetime.now(UTC).astimezone().strftime("%Y-%m-%d")
    row = session.execute(
        text("SELECT id, status::text FROM boundary_versions WHERE name = :n"), {"n": name}
    ).first()
    if row is None:
        return session.execute(
            text("INSERT INTO boundary_versions (name, status, note) VALUES (:n, 'draft', '') RETURNING id"),
            {"n": name},
        ).scalar_one()
    if row.status != "draft":
        from etl.validate import FeatureError

        raise ImportRejected(
            "boundary version",
            name,
            [
                FeatureError(
                    None,
                    None,
                    f"version {name!r} is {row.status}; imports go into a draft (choose a new --version)",
                )
            ],
        )
    return row.id


def _version_name(session: Session, version_id: int) -> str:
    return session.execute(
        text("SELECT name FROM boundary_versions WHERE id = :v"), {"v": version_id}
    ).scalar_one()


# --- writers ---------------------------------------------------------------------------------------
def _ewkb(frame: gpd.GeoDataFrame) -> list[str]:
    return list(shapely.to_wkb(shapely.set_srid(frame.geometry.values, 4326), hex=True, include_srid=True))


def _extra(frame: gpd.GeoDataFrame, rules: LayerContract) -> list[str]:
    """Properties beyond the contract's, kept as JSON (empty values dropped)."""
    known = set(rules.columns) | {frame.geometry.name, "lon", "lat"}
    extra = [c for c in frame.columns if c not in known]
    return [json.dumps({c: v for c in extra if (v := row[c]) not in ("", None)}, ensure_ascii=False)
            for _, row in frame[extra].iterrows()] if extra else ["{}"] * len(frame)  # fmt: skip


def copy_rows(session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """COPY rows into ``table`` on the session's connection, inside its transaction."""
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _write_regions(session: Session, checked: Validation, version_id: int | None) -> int:
    frame = checked.frame
    session.execute(text("DELETE FROM regions WHERE version_id = :v"), {"v": version_id})
    rows = zip(
        [version_id] * len(frame), frame["code"], frame["name"], frame["level"],
        [p.strip() or None for p in frame["parent_code"]], _ewkb(frame), _extra(frame, contract("regions")),
        strict=True,
    )  # fmt: skip
    copy_rows(
        session, "regions", ["version_id", "code", "name", "level", "parent_code", "geom", "properties"], rows
    )
    return len(frame)


def _write_grids(session: Session, checked: Validation, version_id: int | None) -> int:
    frame = checked.frame
    session.execute(text("DELETE FROM grids WHERE version_id = :v"), {"v": version_id})
    workers = [[w.strip() for w in str(v).split(";") if w.strip()] for v in frame["workers"]]
    rows = zip(
        [version_id] * len(frame), frame["code"], frame["name"], frame["community_code"], workers,
        [o.strip() or None for o in frame["officer"]], _ewkb(frame), _extra(frame, contract("grids")),
        strict=True,
    )  # fmt: skip
    columns = ["version_id", "code", "name", "community_code", "workers", "officer", "geom", "properties"]
    copy_rows(session, "grids", columns, rows)
    return len(frame)


def _upsert(session: Session, table: str, columns: Sequence[str], rows: list[tuple]) -> None:
    session.execute(text(f"CREATE TEMP TABLE staging (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP"))
    copy_rows(session, "staging", columns, rows)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != "code")
    session.execute(
        text(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM staging "
            f"ON CONFLICT (code) DO UPDATE SET {updates}"
        )
    )
    session.execute(text("DROP TABLE staging"))


def _write_posts(session: Session, checked: Validation, version_id: int | None) -> int:
    frame = checked.frame
    rows = list(
        zip(
            frame["code"],
            frame["name"],
            frame["level"],
            _ewkb(frame),
            _extra(frame, contract("posts")),
            strict=True,
        )
    )
    _upsert(session, "police_posts", ["code", "name", "level", "geom", "properties"], rows)
    return len(rows)


def _write_places(session: Session, checked: Validation, version_id: int | None) -> int:
    frame = checked.frame
    rows = list(
        zip(
            frame["code"], frame["name"], frame["type"], _ewkb(frame), _extra(frame, contract("places")),
            [str(v).strip() for v in frame["owner"]], [str(v).strip() for v in frame["phone"]],
            [r.strip() or None for r in frame["risk_level"]],
            [int(c) if str(c).strip() else None for c in frame["inspection_cycle_days"]],
            strict=True,
        )
    )  # fmt: skip
    columns = ["code", "name", "type", "geom", "properties", "owner", "phone", "risk_level", "inspection_cycle_days"]
    _upsert(session, "key_places", columns, rows)
    return len(rows)


def _write_station_areas(session: Session, checked: Validation, version_id: int | None) -> int:
    frame = checked.frame
    session.execute(
        text("UPDATE police_posts SET jurisdiction = ST_GeomFromEWKB(decode(:g, 'hex')) WHERE code = :c"),
        [{"c": c, "g": g} for c, g in zip(frame["code"], _ewkb(frame), strict=True)],
    )
    return len(frame)


def _write_events(session: Session, checked: Validation, version_id: int | None) -> int:
    """Events, with their closed-loop history where the file carries it (historic imports, the demo).

    Step times, deadlines, reopenings and satisfaction go into their own columns rather than the
    properties, so statistics count them at once; ``updated_at`` is the latest step.
    """
    import pandas as pd

    from etl.validate import parse_times

    history_columns = ("accepted_at", "dispatched_at", "handling_at", "handled_at", "verified_at", "archived_at",
                       "evaluated_at", "accept_due_at", "handle_due_at", "reopen_count", "satisfaction")  # fmt: skip
    frame = checked.frame
    occurred = parse_times(frame["occurred_at"])
    keys = [f"import:{i.strip()}" if str(i).strip() else None for i in frame["id"]]
    history = [c for c in history_columns if c in frame.columns]
    parsed: dict[str, list[Any]] = {}
    for column in history:
        if column.endswith("_at"):  # times without a zone are China Standard Time, as everywhere in imports
            parsed[column] = [None if pd.isna(t) else t.floor("us").to_pydatetime() for t in parse_times(frame[column])]
        else:
            parsed[column] = [None if pd.isna(v) or v == "" else int(v) for v in frame[column]]
    steps = [parsed[c] for c in history if c.endswith("_at") and "due" not in c]
    updated = [max((t for t in ts if t is not None), default=o) for o, *ts in zip(occurred, *steps, strict=True)]
    columns = ["idempotency_key", "geom", "category_code", "description", "status", "priority", "source",
               "occurred_at", "reported_at", "updated_at", "properties", *history]  # fmt: skip
    times = [t.isoformat() for t in occurred]
    rows = zip(
        keys, _ewkb(frame), frame["category"], frame["description"],
        [s or "reported" for s in frame["status"]], [p or "normal" for p in frame["priority"]],
        [s or "import" for s in frame["source"]], times, times, [t.isoformat() for t in updated],
        _extra(frame.drop(columns=history), contract("events")), *(parsed[c] for c in history),
        strict=True,
    )  # fmt: skip
    session.execute(text("CREATE TEMP TABLE staging_events (LIKE events INCLUDING DEFAULTS) ON COMMIT DROP"))
    copy_rows(session, "staging_events", columns, rows)
    inserted = (
        session.execute(
            text(
                f"INSERT INTO events ({', '.join(columns)}) SELECT {', '.join(columns)} FROM staging_events "
                "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
            )
        )
        .scalars()
        .all()
    )
    session.execute(text("DROP TABLE staging_events"))
    session.execute(HISTORY_LOG, {"ids": inserted})
    return len(inserted)


# An imported event's log: its report, then one row per step its history columns record, each at
# its own time and from the status before it (the event log is what 全程可追踪 shows). A rejected
# event records no time of its rejection: its last known time stands in. An event whose recorded
# steps do not reach its status (a file with a status but no step times) gets one ``import`` row
# to it, at its last known time.
HISTORY_LOG = text(
    """
    WITH steps AS (
        SELECT e.id, step.ord, step.at, step.action, step.to_status, e.status::text AS final, e.updated_at
          FROM events e
         CROSS JOIN LATERAL (VALUES
               (0, e.reported_at, 'report', 'reported'), (1, e.accepted_at, 'accept', 'accepted'),
               (2, e.dispatched_at, 'dispatch', 'dispatched'), (3, e.handling_at, 'start', 'handling'),
               (4, e.handled_at, 'feedback', 'handled'), (5, e.verified_at, 'verify', 'verified'),
               (6, e.archived_at, 'archive', 'archived'), (7, e.evaluated_at, 'evaluate', 'evaluated'),
               (8, CASE WHEN e.status = 'rejected' THEN e.updated_at END, 'reject', 'rejected')
         ) AS step (ord, at, action, to_status)
         WHERE e.id = ANY(CAST(:ids AS bigint[])) AND step.at IS NOT NULL
    ), last AS (
        SELECT DISTINCT ON (id) id, at, to_status, final, updated_at FROM steps ORDER BY id, ord DESC
    ), logged AS (
        SELECT id, ord, at, action, to_status FROM steps
        UNION ALL
        SELECT id, 9, greatest(at, updated_at), 'import', final FROM last WHERE to_status <> final
    )
    INSERT INTO event_log (event_id, at, actor, role, action, from_status, to_status, note)
    SELECT id, at, 'import', 'system', action, lag(to_status) OVER (PARTITION BY id ORDER BY ord), to_status,
           'imported history'
      FROM logged
     ORDER BY id, ord
    """
)


WRITERS = {
    "regions": _write_regions,
    "grids": _write_grids,
    "posts": _write_posts,
    "places": _write_places,
    "station_areas": _write_station_areas,
    "events": _write_events,
}
