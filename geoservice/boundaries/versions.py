"""Boundary versions as the rest of the service reads them: which one is in force, and what each holds.

MapIt keeps generations beside areas; here a version (draft → published → retired) owns its regions
and grids. This module is what the router, coverage and statistics read (it imports nothing of the
router, so the router may import it); publishing, which builds a router, is ``boundaries.publish``.
Every worker follows the version in force through ``NOTIFY boundary_version`` (``NOTIFY_CHANNEL``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import shapely
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.auth.scope import EVERYTHING, BoundaryView
from geoservice.boundaries.geometry import geojson_of
from geoservice.errors import Conflict, Unavailable

NOTIFY_CHANNEL = "boundary_version"
LAYERS_CHANGED = "layers"  # payload when posts, places, station areas or routing rules change
# A report holds this transaction lock shared from before it picks a router until it commits; a
# publish and a worker's catch-up after it swaps routers (``boundaries.reroute.reroute_window``)
# hold it exclusively. So a report routed by a version just retired either commits before the
# publish re-routes the open events, or is seen by the catch-up of the worker that routed it.
ROUTING_LOCK = 0x67656F_726F757465  # "georoute"


def hold_routing(session: Session, *, exclusive: bool = False) -> None:
    """Take ``ROUTING_LOCK`` until the transaction ends: shared to route a report, exclusive to re-route."""
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    session.execute(text(f"SELECT {function}(:key)"), {"key": ROUTING_LOCK})


class VersionError(Conflict, ValueError):
    """A version operation that cannot be done as asked; the message says why."""


class NoVersionInForce(Unavailable, LookupError):
    """No boundary version is in force at the asked instant (nothing published yet, or not then)."""

    title = "No boundary version in force"


class VersionNotFound(VersionError):
    """No boundary version has that id or name."""


class VersionInfo(BaseModel):
    """A boundary version as people and clients see it: its period and its counts (the API answers this)."""

    id: int
    name: str
    status: str
    effective_from: datetime | None
    effective_to: datetime | None
    grids: int
    regions: int
    based_on_id: int | None = None
    note: str = ""


def list_versions(session: Session) -> list[VersionInfo]:
    """Every version, newest first, with its grid and region counts."""
    rows = session.execute(
        text(
            "SELECT v.id, v.name, v.status::text AS status, v.effective_from, v.effective_to, v.based_on_id, v.note, "
            "(SELECT count(*) FROM grids g WHERE g.version_id = v.id) AS grids, "
            "(SELECT count(*) FROM regions r WHERE r.version_id = v.id) AS regions "
            "FROM boundary_versions v ORDER BY v.id DESC"
        )
    ).all()
    return [VersionInfo(**row._mapping) for row in rows]


def current_version_id(session: Session, at: datetime | None = None) -> int | None:
    """The version in force at ``at`` (default now), or None before the first publish."""
    return session.execute(
        text(
            "SELECT id FROM boundary_versions WHERE status <> 'draft' "
            "AND tstzrange(effective_from, effective_to) @> CAST(:at AS timestamptz)"
        ),
        {"at": at or datetime.now(UTC)},
    ).scalar()


def resolve_version(session: Session, name: str | None, at: datetime | None = None) -> int:
    """The id of version ``name``, or of the one in force at ``at`` when no name is given."""
    if name is None:
        found = current_version_id(session, at)
        if found is None:
            raise VersionError("no boundary version is in force at that time; name one explicitly")
        return found
    found = session.execute(text("SELECT id FROM boundary_versions WHERE name = :n"), {"n": name}).scalar()
    if found is None:
        raise VersionNotFound(f"no boundary version called {name!r}")
    return found


def get_version(session: Session, version_id: int) -> VersionInfo:
    """One version by id (VersionNotFound otherwise)."""
    found = [v for v in list_versions(session) if v.id == version_id]
    if not found:
        raise VersionNotFound(f"no boundary version with id {version_id}")
    return found[0]


def grid_features(session: Session, version_id: int, view: BoundaryView = EVERYTHING) -> dict[str, Any]:
    """The version's grids (a draft's too) as a GeoJSON FeatureCollection, for the map.

    Outside the ``view``'s subtree a grid is its code, name and outline: workers and officer are null.
    """
    get_version(session, version_id)
    rows = session.execute(
        text(
            "SELECT code, name, community_code, workers, officer, ST_AsBinary(geom) AS wkb "
            "FROM grids WHERE version_id = :v ORDER BY code"
        ),
        {"v": version_id},
    ).all()
    features = [
        {"type": "Feature", "id": r.code, "geometry": geojson_of(shapely.from_wkb(bytes(r.wkb))),
         "properties": {"code": r.code, "name": r.name, "community_code": r.community_code,
                        **_team(r.workers, r.officer, view.sees(r.code))}}
        for r in rows
    ]  # fmt: skip
    return {"type": "FeatureCollection", "features": features}


def _team(workers: list[str] | None, officer: str | None, shown: bool) -> dict[str, Any]:
    return {"workers": list(workers or ()), "officer": officer} if shown else {"workers": None, "officer": None}


def notify_layers_changed(session: Session) -> None:
    """Tell every worker to rebuild its router (sent at commit, so only for committed changes)."""
    session.execute(
        text("SELECT pg_notify(:channel, :payload)"), {"channel": NOTIFY_CHANNEL, "payload": LAYERS_CHANGED}
    )
