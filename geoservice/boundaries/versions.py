"""Boundary versions: list, publish, roll back.

Publishing is one transaction: the draft is validated (a draft with errors is refused), the
version in force is retired at the instant the new one takes effect, the new one becomes
published, open events not yet dispatched are re-routed (``geoservice.boundaries.reroute``, each
change logged), and a ``NOTIFY boundary_version`` tells every API worker to swap its router. The
exclusion constraint on ``boundary_versions`` guarantees that no two published periods overlap,
whatever races happen around it. A rollback (``geoservice.boundaries.drafts.rollback``) publishes a copy
of an old version as a new version: history is never rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.boundaries.reroute import KEPT, REROUTED, EventMove, reroute_events
from geoservice.boundaries.settings import BoundarySettings
from geoservice.boundaries.validation import Finding, validate_version
from geoservice.routing.loader import load_router

NOTIFY_CHANNEL = "boundary_version"
LAYERS_CHANGED = "layers"  # payload when posts, places, station areas or routing rules change


class VersionError(ValueError):
    """A version operation that cannot be done as asked; the message says why."""


class VersionNotFound(VersionError):
    """No boundary version has that id or name."""


class DraftInvalid(VersionError):
    """The draft fails validation; ``findings`` says where."""

    def __init__(self, name: str, findings: list[Finding]) -> None:
        self.findings = findings
        kinds = ", ".join(sorted({f.kind for f in findings}))
        super().__init__(
            f"version {name!r} has {len(findings)} validation error(s) ({kinds}); fix them before publishing"
        )


@dataclass(frozen=True)
class Publisher:
    """Who publishes, as the event log records it."""

    actor: str = "system"
    role: str = "admin"


@dataclass(frozen=True)
class VersionInfo:
    """A boundary version as listed to people."""

    id: int
    name: str
    status: str
    effective_from: datetime | None
    effective_to: datetime | None
    grids: int
    regions: int
    based_on_id: int | None = None
    note: str = ""


@dataclass
class Published:
    """A publish's outcome: the version, and the open events it re-routed or left with their team."""

    version: VersionInfo
    rerouted: list[EventMove] = field(default_factory=list)
    kept: list[EventMove] = field(default_factory=list)


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


def publish(
    session: Session, name: str, effective_from: datetime | None = None, *, metric_crs: str | None = None
) -> VersionInfo:
    """Make draft ``name`` the version in force from ``effective_from`` (default now).

    For the demo, tests and benches, which measure in the dataset's metric CRS unless given ``metric_crs``.
    """
    return publish_version(session, resolve_version(session, name), effective_from, metric_crs=metric_crs).version


def publish_version(
    session: Session,
    version_id: int,
    effective_from: datetime | None = None,
    *,
    publisher: Publisher = Publisher(),
    settings: BoundarySettings | None = None,
    metric_crs: str | None,
) -> Published:
    """Validate draft ``version_id``, put it in force, and re-route open events (if in force now).

    ``metric_crs`` is the configured ``GEOSERVICE_METRIC_CRS`` the validation measures areas in (None: the dataset's).
    """
    now = datetime.now(UTC)
    at = effective_from or now
    if at.tzinfo is None:
        raise VersionError("effective_from needs a time zone (e.g. 2026-12-01T00:00:00+08:00)")
    draft = session.execute(
        text("SELECT id, name, status::text AS status FROM boundary_versions WHERE id = :v FOR UPDATE"),
        {"v": version_id},
    ).first()
    if draft is None:
        raise VersionNotFound(f"no boundary version with id {version_id}")
    name = draft.name
    if draft.status != "draft":
        raise VersionError(f"version {name!r} is {draft.status}; only a draft can be published")
    _check_publishable(session, draft.id, name)
    report = validate_version(session, draft.id, settings, metric_crs=metric_crs)
    if not report.ok:
        raise DraftInvalid(name, report.findings)
    # Serialise publishers: the one in force is read and retired under the same lock.
    session.execute(text("LOCK TABLE boundary_versions IN SHARE ROW EXCLUSIVE MODE"))
    later = session.execute(
        text("SELECT name FROM boundary_versions WHERE status <> 'draft' AND effective_from >= :at"),
        {"at": at},
    ).scalar()
    if later:
        raise VersionError(f"version {later!r} takes effect at or after {at.isoformat()}; publish later than it")
    session.execute(
        text(
            "UPDATE boundary_versions SET status = 'retired', effective_to = :at "
            "WHERE status = 'published' AND effective_to IS NULL"
        ),
        {"at": at},
    )
    session.execute(
        text(
            "UPDATE boundary_versions SET status = 'published', effective_from = :at, published_at = now() "
            "WHERE id = :id"
        ),
        {"at": at, "id": draft.id},
    )
    rerouted: list[EventMove] = []
    kept: list[EventMove] = []
    if at <= now and _has_open_events(session):
        # Events are re-routed only by a version in force now; a later one leaves them for now.
        rerouted, kept = reroute_events(
            session, load_router(session, draft.id), actor=publisher.actor, role=publisher.role
        )
    session.execute(text("SELECT pg_notify(:channel, :id)"), {"channel": NOTIFY_CHANNEL, "id": str(draft.id)})
    return Published(get_version(session, draft.id), rerouted, kept)


def notify_layers_changed(session: Session) -> None:
    """Tell every worker to rebuild its router (sent at commit, so only for committed changes)."""
    session.execute(
        text("SELECT pg_notify(:channel, :payload)"), {"channel": NOTIFY_CHANNEL, "payload": LAYERS_CHANGED}
    )


def _has_open_events(session: Session) -> bool:
    found = session.execute(text("SELECT 1 FROM events WHERE status = ANY(:s) LIMIT 1"), {"s": list(REROUTED + KEPT)})
    return found.first() is not None


def _check_publishable(session: Session, version_id: int, name: str) -> None:
    counts = session.execute(
        text(
            "SELECT (SELECT count(*) FROM grids WHERE version_id = :v) AS grids, "
            "(SELECT count(*) FROM grids g WHERE g.version_id = :v AND NOT EXISTS ("
            "  SELECT 1 FROM regions r WHERE r.version_id = :v AND r.code = g.community_code "
            "  AND r.level = 'community')) AS orphans"
        ),
        {"v": version_id},
    ).one()
    if counts.grids == 0:
        raise VersionError(f"version {name!r} has no grids; import grids into it first")
    if counts.orphans:
        raise VersionError(f"version {name!r} has {counts.orphans} grid(s) whose community is not in it")
