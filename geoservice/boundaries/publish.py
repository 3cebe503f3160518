"""Publishing a boundary version: validate, retire the one in force, put the draft in force, re-route.

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
from geoservice.boundaries.versions import (
    NOTIFY_CHANNEL,
    VersionError,
    VersionInfo,
    VersionNotFound,
    get_version,
    hold_routing,
    resolve_version,
)
from geoservice.routing.loader import load_router
from geoservice.settings import RoutingSettings


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


@dataclass
class Published:
    """A publish's outcome: the version, and the open events it re-routed or left with their team."""

    version: VersionInfo
    rerouted: list[EventMove] = field(default_factory=list)
    kept: list[EventMove] = field(default_factory=list)


def publish(
    session: Session,
    name: str,
    effective_from: datetime | None = None,
    *,
    routing: RoutingSettings,
    boundaries: BoundarySettings,
) -> VersionInfo:
    """Make draft ``name`` the version in force from ``effective_from`` (default now)."""
    version_id = resolve_version(session, name)
    return publish_version(session, version_id, effective_from, routing=routing, boundaries=boundaries).version


def publish_version(
    session: Session,
    version_id: int,
    effective_from: datetime | None = None,
    *,
    routing: RoutingSettings,
    boundaries: BoundarySettings,
    publisher: Publisher = Publisher(),
) -> Published:
    """Validate draft ``version_id``, put it in force, and re-route open events (if in force now).

    Validation measures in the configured metric CRS (``routing.metric_crs``) with the configured
    tolerances (``boundaries``); open events are re-routed by a router built with ``routing``, as the
    API workers will build theirs.
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
    report = validate_version(session, draft.id, boundaries, metric_crs=routing.metric_crs)
    if not report.ok:
        raise DraftInvalid(name, report.findings)
    # Serialise publishers: the one in force is read and retired under the same lock.
    session.execute(text("LOCK TABLE boundary_versions IN SHARE ROW EXCLUSIVE MODE"))
    hold_routing(session, exclusive=True)  # reports being routed now commit first, and are re-routed below
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
            session, load_router(session, draft.id, routing), actor=publisher.actor, role=publisher.role
        )
    session.execute(text("SELECT pg_notify(:channel, :id)"), {"channel": NOTIFY_CHANNEL, "id": str(draft.id)})
    return Published(get_version(session, draft.id), rerouted, kept)


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
