"""GeoAlchemy2 models of every layer of the system of record.

Geometries are stored in SRID 4326 (lon/lat); metric work happens in the city's projected CRS, never
on these columns directly. Regions and grids belong to a boundary version; every other layer is
unversioned and refers to places by code (the unified code table, ``code_table`` view).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    literal_column,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# The enums live apart, free of SQLAlchemy and GeoAlchemy2, for code that needs only them (the router);
# they are re-exported here, where the models and the rest of the code have always found them.
from layers.enums import POST_LEVELS as POST_LEVELS
from layers.enums import PostLevel as PostLevel
from layers.enums import RegionLevel as RegionLevel
from layers.enums import Role as Role
from layers.enums import VersionStatus as VersionStatus

SRID = 4326
EVENT_STATUSES = (
    "reported",
    "accepted",
    "rejected",
    "dispatched",
    "returned",
    "handling",
    "handled",
    "verified",
    "reopened",
    "archived",
    "evaluated",
    "merged",  # a duplicate report, following its master (``merged_into``); terminal
)
ESCALATION_LEVELS = ("grid", "community", "town", "city")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints predictably."""

    metadata = MetaData(naming_convention=NAMING)


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, values_callable=lambda e: [m.value for m in e])


class BoundaryVersion(Base):
    """A complete set of regions and grids, effective over [effective_from, effective_to).

    The exclusion constraint in the migration keeps published periods from overlapping, so at most
    one version is current at any instant.
    """

    __tablename__ = "boundary_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    status: Mapped[VersionStatus] = mapped_column(_enum(VersionStatus, "version_status"), server_default="draft")
    effective_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    effective_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    based_on_id: Mapped[int | None] = mapped_column(ForeignKey("boundary_versions.id"))
    note: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Region(Base):
    """City, town/street or community/village, by its 12-digit statistical division code."""

    __tablename__ = "regions"
    __table_args__ = (
        UniqueConstraint("version_id", "code"),
        CheckConstraint("code ~ '^[0-9]{12}$'", name="code_format"),
        Index("ix_regions_geom", "geom", postgresql_using="gist"),
        Index("ix_regions_parent", "version_id", "parent_code"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("boundary_versions.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[RegionLevel] = mapped_column(_enum(RegionLevel, "region_level"))
    parent_code: Mapped[str | None] = mapped_column(String(12))
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False))
    properties: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class Grid(Base):
    """A basic grid (网格): its community's code + a 3-digit serial; one worker team, one officer."""

    __tablename__ = "grids"
    __table_args__ = (
        UniqueConstraint("version_id", "code"),
        CheckConstraint("code ~ '^[0-9]{15}$'", name="code_format"),
        CheckConstraint("left(code, 12) = community_code", name="code_in_community"),
        Index("ix_grids_geom", "geom", postgresql_using="gist"),
        Index("ix_grids_community", "version_id", "community_code"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("boundary_versions.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(15))
    name: Mapped[str] = mapped_column(String(200))
    community_code: Mapped[str] = mapped_column(String(12))
    workers: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'::text[]"))
    officer: Mapped[str | None] = mapped_column(String(100))
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False))
    properties: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class PolicePost(Base):
    """A police post; stations may carry their jurisdiction (辖区) polygon."""

    __tablename__ = "police_posts"
    __table_args__ = (
        Index("ix_police_posts_geom", "geom", postgresql_using="gist"),
        Index("ix_police_posts_jurisdiction", "jurisdiction", postgresql_using="gist"),
        CheckConstraint("jurisdiction IS NULL OR level = 'station'", name="jurisdiction_only_for_stations"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(50), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[PostLevel] = mapped_column(_enum(PostLevel, "post_level"))
    geom: Mapped[Any] = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False))
    jurisdiction: Mapped[Any | None] = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False))
    properties: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class KeyPlace(Base):
    """A key place (重点场所): school, hospital, market, risk source… as a point or a polygon."""

    __tablename__ = "key_places"
    __table_args__ = (
        Index("ix_key_places_geom", "geom", postgresql_using="gist"),
        Index("ix_key_places_type", "type"),
        CheckConstraint("GeometryType(geom) IN ('POINT', 'POLYGON', 'MULTIPOLYGON')", name="point_or_polygon"),
        CheckConstraint("risk_level IS NULL OR risk_level IN ('low', 'medium', 'high')", name="risk_level_known"),
        CheckConstraint("inspection_cycle_days IS NULL OR inspection_cycle_days > 0", name="inspection_cycle_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(50), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(50))
    geom: Mapped[Any] = mapped_column(Geometry("GEOMETRY", srid=SRID, spatial_index=False))
    properties: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    owner: Mapped[str] = mapped_column(String(200), server_default="")  # 责任人 / operator
    phone: Mapped[str] = mapped_column(String(50), server_default="")
    risk_level: Mapped[str | None] = mapped_column(String(20))  # low / medium / high
    inspection_cycle_days: Mapped[int | None] = mapped_column(Integer)  # 巡查周期


class Department(Base):
    """A responsible department that events are routed to."""

    __tablename__ = "departments"

    code: Mapped[str] = mapped_column(String(50), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(50), server_default="bureau")
    region_code: Mapped[str | None] = mapped_column(String(12))
    # The department above (a bureau's 派出所 under 公安局); checked by ``city check``, not a foreign
    # key, so a pack's departments load in any order.
    parent_code: Mapped[str | None] = mapped_column(String(50))
    duty_phone: Mapped[str] = mapped_column(String(50), server_default="")


class Category(Base):
    """Event classes (社会治安, 公共安全, 城市管理, 环境保护, 民生服务) and their subcategories."""

    __tablename__ = "categories"
    __table_args__ = (
        CheckConstraint("duplicate_radius_m > 0 AND duplicate_window_hours > 0", name="duplicate_search_positive"),
        CheckConstraint("jsonb_typeof(attributes) = 'array'", name="attributes_list"),
    )

    code: Mapped[str] = mapped_column(String(80), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("categories.code"))
    accept_hours: Mapped[float] = mapped_column(Float)
    handle_hours: Mapped[float] = mapped_column(Float)
    # Disputes, petitions and the like: public Open311 records show no description and a coarse place.
    sensitive: Mapped[bool] = mapped_column(server_default=text("false"))
    small_matter: Mapped[bool] = mapped_column(server_default=text("false"))  # 网格员可自行办结
    # Duplicates (issue 17): open reports of the family this near and this recent are offered as duplicates.
    duplicate_radius_m: Mapped[float] = mapped_column(Float, server_default=text("50"))
    duplicate_window_hours: Mapped[float] = mapped_column(Float, server_default=text("72"))
    # Open311 service definition (GeoReport v2 attributes) asked of reporters; [] for none.
    attributes: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))


class RoutingRule(Base):
    """(category, region scope, key-place type within a distance, zone) → department, as data."""

    __tablename__ = "routing_rules"
    __table_args__ = (
        CheckConstraint("(place_type IS NULL) = (place_distance_m IS NULL)", name="place_type_with_distance"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category_code: Mapped[str] = mapped_column(ForeignKey("categories.code"))
    region_code: Mapped[str | None] = mapped_column(String(12))
    place_type: Mapped[str | None] = mapped_column(String(50))
    place_distance_m: Mapped[float | None] = mapped_column(Float)
    zone_layer: Mapped[str | None] = mapped_column(String(50))
    department_code: Mapped[str] = mapped_column(ForeignKey("departments.code"))
    priority: Mapped[int] = mapped_column(Integer, server_default="0")
    description: Mapped[str] = mapped_column(Text, server_default="")
    enabled: Mapped[bool] = mapped_column(server_default=text("true"))


class Event(Base):
    """A reported event and where the router sent it; ``row_version`` is the optimistic lock."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_geom", "geom", postgresql_using="gist"),
        Index("ix_events_status_reported", "status", "reported_at"),  # a status newest first (migration 0020)
        Index("ix_events_grid", "grid_code"),
        Index("ix_events_occurred", "occurred_at"),
        Index("ix_events_community", "community_code"),
        Index("ix_events_town", "town_code"),
        Index("ix_events_reported", "reported_at"),
        Index("ix_events_reporter_username", "reporter_username"),
        CheckConstraint("satisfaction BETWEEN 1 AND 5", name="satisfaction_1_to_5"),
        CheckConstraint(f"status IN {EVENT_STATUSES!r}", name="status_known"),
        CheckConstraint(f"escalation_level IN {ESCALATION_LEVELS!r}", name="escalation_level_known"),
        # owners (migration 0008)
        CheckConstraint("owner_kind IS NULL OR owner_kind IN ('unit', 'department')", name="owner_kind_known"),
        Index("ix_events_owner", "owner_kind", "owner_code"),
        # Duplicates and following (issue 17): metric searches on geography, one-hop masters.
        Index("ix_events_geography", text("geography(geom)"), postgresql_using="gist"),
        Index("ix_events_merged_into", "merged_into"),
        # The million-event lists (migration 0016): scope/region prefixes, category families.
        Index("ix_events_place", literal_column("coalesce(grid_code, community_code, town_code, '')").label("place"),
              postgresql_ops={"place": "text_pattern_ops"},
              postgresql_include=["grid_code", "community_code", "town_code", "reported_at"]),
        Index("ix_events_category", "category_code", postgresql_ops={"category_code": "text_pattern_ops"}),
        # A department's events by category and by status (migration 0017): a handler's filters.
        Index("ix_events_department_category", "department_code", "category_code"),
        Index("ix_events_department_status", "department_code", "status"),
        # The running events newest first (migration 0020): a warning colour's first page. The
        # migration's ``status IN (…)`` as PostgreSQL prints it back, which is what Alembic compares.
        Index(
            "ix_events_running_reported",
            text("status = ANY (ARRAY['reported', 'dispatched', 'handling', 'reopened'])"),
            "reported_at",
        ),
        # q= (migration 0018): each description's character pairs, so two-character words find events.
        Index("ix_events_description_bigrams", text("event_text_bigrams(description)"), postgresql_using="gin"),
        CheckConstraint(
            "merged_into IS NULL OR (status = 'merged' AND merged_into <> id)",
            name="merged_with_master",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    geom: Mapped[Any] = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False))
    category_code: Mapped[str] = mapped_column(ForeignKey("categories.code"))
    description: Mapped[str] = mapped_column(Text, server_default="")
    source: Mapped[str] = mapped_column(String(30), server_default="public")
    priority: Mapped[str] = mapped_column(String(20), server_default="normal")
    status: Mapped[str] = mapped_column(String(20), server_default="reported")
    escalation_level: Mapped[str] = mapped_column(String(20), server_default="grid")
    reporter_name: Mapped[str | None] = mapped_column(String(100))
    reporter_phone: Mapped[str | None] = mapped_column(String(50))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    grid_code: Mapped[str | None] = mapped_column(String(15))
    community_code: Mapped[str | None] = mapped_column(String(12))
    town_code: Mapped[str | None] = mapped_column(String(12))
    station_code: Mapped[str | None] = mapped_column(String(50))
    department_code: Mapped[str | None] = mapped_column(ForeignKey("departments.code"))
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("routing_rules.id"))
    route_reason: Mapped[str | None] = mapped_column(Text)
    boundary_version_id: Mapped[int | None] = mapped_column(ForeignKey("boundary_versions.id"))
    row_version: Mapped[int] = mapped_column(Integer, server_default="1")
    properties: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    handler_username: Mapped[str | None] = mapped_column(String(100))
    reporter_username: Mapped[str | None] = mapped_column(String(100))
    client_id: Mapped[str | None] = mapped_column(String(100))
    photos: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    accept_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    handle_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    handling_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    handled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    evaluated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reopen_count: Mapped[int] = mapped_column(Integer, server_default="0")
    escalation_count: Mapped[int] = mapped_column(Integer, server_default="0")
    satisfaction: Mapped[int | None] = mapped_column(SmallInteger)
    evaluation_comment: Mapped[str | None] = mapped_column(Text)
    # owners (migration 0008): who holds the event now — a unit of the region tree or a department;
    # the first owner is set by a BEFORE INSERT trigger, the history is ``event_owners``.
    owner_kind: Mapped[str | None] = mapped_column(String(20))
    owner_code: Mapped[str | None] = mapped_column(String(50))
    # Duplicates and following (issue 17): the master of a merged report; the anonymous reporter's
    # follow token, stored only as its SHA-256.
    merged_into: Mapped[int | None] = mapped_column(ForeignKey("events.id"))
    merged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    follow_token_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)


# Events per local month and place, kept exact by statement triggers on ``events`` (migration 0019):
# what counts by town, community or month read instead of every event. No key: a group's codes may
# be null (events outside every grid), and the unique constraint treats nulls as equal.
event_month_counts = Table(
    "event_month_counts",
    Base.metadata,
    Column("month", Date, nullable=False),
    Column("town_code", String(12)),
    Column("community_code", String(12)),
    Column("place_prefix", String(12), nullable=False),
    Column("department_code", String(50)),
    Column("events", BigInteger, nullable=False),
    UniqueConstraint("month", "town_code", "community_code", "place_prefix", "department_code",
                     name="uq_event_month_counts_group", postgresql_nulls_not_distinct=True),
)  # fmt: skip


class EventOwner(Base):
    """One owner of an event over [since, until): the trail of who held the work (migration 0008)."""

    __tablename__ = "event_owners"
    __table_args__ = (
        CheckConstraint("owner_kind IN ('unit', 'department')", name="owner_kind_known"),
        Index("ix_event_owners_event", "event_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    owner_kind: Mapped[str] = mapped_column(String(20))
    owner_code: Mapped[str] = mapped_column(String(50))
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text, server_default="")


class EscalationLevel(Base):
    """A level's own deadlines once an event is escalated to it (city pack ``[escalation.<level>]``)."""

    __tablename__ = "escalation_levels"
    __table_args__ = (
        CheckConstraint("level IN ('community', 'town', 'city')", name="level_known"),
        CheckConstraint("accept_hours > 0 AND handle_hours > 0", name="positive"),
    )

    level: Mapped[str] = mapped_column(String(20), primary_key=True)
    accept_hours: Mapped[float] = mapped_column(Float)
    handle_hours: Mapped[float] = mapped_column(Float)


class Deadline(Base):
    """Accept and handling deadlines per category and priority.

    Lookup: the exact category, else its parent class, else the category's own hours times the
    factor row of its priority (the row with no category).
    """

    __tablename__ = "deadlines"
    __table_args__ = (
        CheckConstraint("accept_hours > 0 AND handle_hours > 0", name="positive"),
        Index("uq_deadlines_category_priority", func.coalesce(text("category_code"), ""), "priority", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category_code: Mapped[str | None] = mapped_column(ForeignKey("categories.code"))
    priority: Mapped[str] = mapped_column(String(20))
    accept_hours: Mapped[float] = mapped_column(Float)
    handle_hours: Mapped[float] = mapped_column(Float)


class DeadlineBreach(Base):
    """A deadline the sweep found broken, recorded once so a breach escalates an event only once."""

    __tablename__ = "deadline_breaches"
    __table_args__ = (CheckConstraint("kind IN ('accept', 'handle')", name="kind_known"),)

    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    detected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    escalated_to: Mapped[str | None] = mapped_column(String(20))


class EventLog(Base):
    """Append-only audit trail of an event; a trigger refuses UPDATE and DELETE for every role."""

    __tablename__ = "event_log"
    __table_args__ = (Index("ix_event_log_event", "event_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(30))
    action: Mapped[str] = mapped_column(String(30))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text, server_default="")
    details: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class Population(Base):
    """Population counts at points (or cell centroids), for coverage reports by people served."""

    __tablename__ = "population"
    __table_args__ = (Index("ix_population_geom", "geom", postgresql_using="gist"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[float] = mapped_column(Float)
    geom: Mapped[Any] = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False))


class User(Base):
    """A person who signs in; dispatchers and grid workers see a region subtree, handlers a department."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "role NOT IN ('dispatcher', 'grid_worker') OR region_code IS NOT NULL",
            name="scoped_roles_have_region",
        ),
        CheckConstraint("role <> 'handler' OR department_code IS NOT NULL", name="handlers_have_department"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[Role] = mapped_column(_enum(Role, "user_role"))
    region_code: Mapped[str | None] = mapped_column(String(15))  # a region (12 digits) or one grid (15)
    department_code: Mapped[str | None] = mapped_column(ForeignKey("departments.code"))
    display_name: Mapped[str] = mapped_column(String(100), server_default="")
    disabled: Mapped[bool] = mapped_column(server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    phone: Mapped[str] = mapped_column(String(50), server_default="")
    must_change_password: Mapped[bool] = mapped_column(server_default=text("false"))  # a one-time password


class UserGrid(Base):
    """The grids a grid worker serves (a grid's workers are accounts, not names).

    Keyed by grid code, not grid id, so an assignment outlives a boundary version that keeps the code.
    """

    __tablename__ = "user_grids"
    __table_args__ = (Index("ix_user_grids_grid", "grid_code"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    grid_code: Mapped[str] = mapped_column(String(15), primary_key=True)


class ReferenceChange(Base):
    """Audit trail of reference data (departments, categories, deadlines, routing rules) edited through the API."""

    __tablename__ = "reference_changes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(String(100))
    table_name: Mapped[str] = mapped_column(String(30))
    key: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(20))
    before: Mapped[dict | None] = mapped_column(JSONB)
    after: Mapped[dict | None] = mapped_column(JSONB)


class PackJob(Base):
    """A city pack uploaded over HTTP and being loaded: its progress, then what it loaded or why it failed."""

    __tablename__ = "pack_jobs"
    __table_args__ = (CheckConstraint("status IN ('running', 'done', 'failed')", name="status_known"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), server_default="running")
    step: Mapped[str] = mapped_column(Text, server_default="")
    steps_done: Mapped[int] = mapped_column(Integer, server_default="0")
    result: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    error: Mapped[str | None] = mapped_column(Text)


class Setting(Base):
    """Small persisted facts about the dataset (its metric CRS, the demo's seed)."""

    __tablename__ = "dataset_settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


# --- supervision (督办) and co-handling (联合处置): migration 0009 -------------------------------


class SupervisionOrder(Base):
    """A supervision order (督办) on one event: an instruction, a reply deadline, the reply, the escalation.

    ``escalated_at`` is set once, by the sweep that escalates the event when the reply is late
    (``UPDATE … WHERE escalated_at IS NULL``), so two sweeps at once escalate it once.
    """

    __tablename__ = "supervision_orders"
    __table_args__ = (
        Index("ix_supervision_orders_event", "event_id"),
        Index("ix_supervision_orders_waiting", "reply_due_at", postgresql_where=text("replied_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    issued_by: Mapped[str] = mapped_column(String(100))
    issuer_role: Mapped[str] = mapped_column(String(30))
    unit_code: Mapped[str | None] = mapped_column(String(15))  # set when issued on a unit's overdue work
    instruction: Mapped[str] = mapped_column(Text)
    reply_due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    replied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replied_by: Mapped[str | None] = mapped_column(String(100))
    reply: Mapped[str | None] = mapped_column(Text)
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalated_to: Mapped[str | None] = mapped_column(String(20))


class EventTask(Base):
    """A co-department's own task on a jointly handled event (联合处置): deadline, status, feedback.

    At most one live (open or handling) task per event and department; a re-dispatch marks the live
    ones ``replaced`` and opens new ones, fed-back tasks stay as history.
    """

    __tablename__ = "event_tasks"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'handling', 'fed_back', 'replaced')", name="status_known"),
        Index("ix_event_tasks_event", "event_id"),
        Index(
            "uq_event_tasks_live",
            "event_id",
            "department_code",
            unique=True,
            postgresql_where=text("status IN ('open', 'handling')"),
        ),
        Index(
            "ix_event_tasks_department_live", "department_code", postgresql_where=text("status IN ('open', 'handling')")
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    department_code: Mapped[str] = mapped_column(ForeignKey("departments.code"))
    status: Mapped[str] = mapped_column(String(20), server_default="open")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[str] = mapped_column(String(100))
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_by: Mapped[str | None] = mapped_column(String(100))
    fed_back_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    fed_back_by: Mapped[str | None] = mapped_column(String(100))
    feedback: Mapped[str | None] = mapped_column(Text)


__all__ = [
    "Base",
    "ESCALATION_LEVELS",
    "EVENT_STATUSES",
    "BoundaryVersion",
    "Category",
    "Deadline",
    "DeadlineBreach",
    "Department",
    "Event",
    "EventLog",
    "EventTask",
    "Grid",
    "KeyPlace",
    "PolicePost",
    "PackJob",
    "PostLevel",
    "Population",
    "ReferenceChange",
    "Region",
    "RegionLevel",
    "Role",
    "RoutingRule",
    "Setting",
    "SupervisionOrder",
    "RateBucket",
    "ReroutePartition",
    "RerouteRun",
    "Subscription",
    "User",
    "UserGrid",
    "VersionStatus",
]


class SigninThrottle(Base):
    """Failed sign-ins per account name (as typed) and per client address, shared by every API worker.

    Past a few failures each further one is answered only after a growing delay (``blocked_until``),
    past more the account or address is locked (``locked_until``) until the lock runs out or an
    admin lifts it (``geoservice users unlock``). A success clears the account's row.
    """

    __tablename__ = "signin_throttle"
    __table_args__ = (CheckConstraint("kind IN ('account', 'address')", name="kind"),)

    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    subject: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_failure_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# --- notifications (issue 17, migration 0010): queue of logged steps, inbox, outbox, warnings seen ---


class NotificationQueue(Base):
    """One row per logged step, written by a trigger on ``event_log`` in the step's transaction."""

    __tablename__ = "notification_queue"
    __table_args__ = (Index("ix_notification_queue_pending", "log_id", postgresql_where=text("done_at IS NULL")),)

    log_id: Mapped[int] = mapped_column(ForeignKey("event_log.id"), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger)
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Notification(Base):
    """A person's inbox entry for one step; (step, person) is unique so a fan-out repeated writes nothing."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("log_id", "user_id"),
        Index("ix_notifications_user", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    log_id: Mapped[int] = mapped_column(ForeignKey("event_log.id"))
    action: Mapped[str] = mapped_column(String(30))
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Delivery(Base):
    """An outbound message (SMS, webhook) in the transactional outbox: retried with backoff, then dead."""

    __tablename__ = "deliveries"
    __table_args__ = (
        CheckConstraint("channel IN ('sms', 'webhook')", name="channel_known"),
        Index(
            "ix_deliveries_due", "next_attempt_at", postgresql_where=text("delivered_at IS NULL AND dead_at IS NULL")
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    log_id: Mapped[int] = mapped_column(ForeignKey("event_log.id"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(20))
    target: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict] = mapped_column(JSONB)
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dead_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EventWarning(Base):
    """A warning colour the sweep saw on a running clock, recorded once so it is logged (and notified) once."""

    __tablename__ = "event_warnings"
    __table_args__ = (
        CheckConstraint("clock IN ('accept', 'handle')", name="clock_known"),
        CheckConstraint("colour IN ('blue', 'yellow', 'red')", name="colour_known"),
    )

    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), primary_key=True)
    clock: Mapped[str] = mapped_column(String(20), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    colour: Mapped[str] = mapped_column(String(10), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Subscription(Base):
    """An area (a polygon, or a circle stored as its polygon) and categories a signed-in citizen follows.

    Issue 17, "citizens follow": ``geoservice.events.followers`` finds who follows an event by
    ``ST_Intersects`` of this polygon with the event's point; a circle keeps its centre and radius
    to be shown back as it was asked for.
    """

    __tablename__ = "subscriptions"
    __table_args__ = (
        Index("ix_subscriptions_geom", "geom", postgresql_using="gist"),
        Index("ix_subscriptions_username", "username"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("users.username", ondelete="CASCADE"))
    geom: Mapped[Any] = mapped_column(Geometry("POLYGON", srid=SRID, spatial_index=False))
    center_lon: Mapped[float | None] = mapped_column(Float)
    center_lat: Mapped[float | None] = mapped_column(Float)
    radius_m: Mapped[float | None] = mapped_column(Float)
    categories: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'::text[]"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# --- past one machine (issue 21, migration 0012): resumable re-attribution runs, shared rate buckets ---


class RerouteRun(Base):
    """One ``geoservice events reroute``: closed events re-attributed to a boundary version, in partitions.

    At most one run is ``running`` at a time (two runs would fight over the same events); a rerun
    of the command resumes it, ``--restart`` marks it ``abandoned`` and starts a new one.
    """

    __tablename__ = "reroute_runs"
    __table_args__ = (
        CheckConstraint("status IN ('running', 'done', 'abandoned')", name="status_known"),
        CheckConstraint("partition_size > 0", name="partition_size_positive"),
        Index("ux_reroute_runs_one_running", "status", unique=True, postgresql_where=text("status = 'running'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("boundary_versions.id"))
    since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20), server_default="running")
    engine: Mapped[str] = mapped_column(String(20), server_default="local")
    partition_size: Mapped[int] = mapped_column(Integer)
    partitions: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    started_by: Mapped[str] = mapped_column(String(100), server_default="")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ReroutePartition(Base):
    """Events with ``first_id <= id < end_id`` (no end: to the last); ``done_at`` set by the partition's own write."""

    __tablename__ = "reroute_partitions"

    run_id: Mapped[int] = mapped_column(ForeignKey("reroute_runs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_id: Mapped[int] = mapped_column(BigInteger)
    end_id: Mapped[int | None] = mapped_column(BigInteger)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    events: Mapped[int | None] = mapped_column(Integer)
    moved: Mapped[int | None] = mapped_column(Integer)
    outside: Mapped[int | None] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(Text, server_default="")


class RateBucket(Base):
    """The public rate limit's bucket per client, shared by every API worker (UNLOGGED: a crash refills them)."""

    __tablename__ = "rate_buckets"
    __table_args__ = {"prefixes": ["UNLOGGED"]}

    subject: Mapped[str] = mapped_column(String(200), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    counted_at: Mapped[float] = mapped_column(Float)  # seconds since the epoch, the database's clock
    granted: Mapped[bool] = mapped_column(Boolean)


class RouterIndexEntry(Base):
    """A built router index, as its cache directory holds it (``geoservice.routing.index_store``; UNLOGGED: a cache)."""

    __tablename__ = "router_index_entries"
    __table_args__ = {"prefixes": ["UNLOGGED"]}

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    meta: Mapped[str] = mapped_column(Text)
    cells: Mapped[bytes] = mapped_column(LargeBinary)
    boundary_cells: Mapped[bytes] = mapped_column(LargeBinary)
    offsets: Mapped[bytes] = mapped_column(LargeBinary)
    candidates: Mapped[bytes] = mapped_column(LargeBinary)
    stored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Photo(Base):
    """A photo of an event or of a visit, its bytes in the media store (``geoservice.media``), its facts here.

    Issue 18, "photos, really stored": the key is the SHA-256 of the uploaded bytes, so the same
    bytes sent twice for one event are one photo (a retried upload), and the store's files are named
    by it. ``gps_*`` come from the photo's own EXIF; ``gps_distance_m`` is measured on the
    ellipsoid to the event's point and ``gps_flagged`` says it was beyond the allowed distance.
    """

    __tablename__ = "photos"
    __table_args__ = (
        UniqueConstraint("event_id", "sha256"),  # the same bytes twice for one event: one photo
        UniqueConstraint("visit_id", "sha256"),  # … and for one visit
        Index("ix_photos_event", "event_id"),
        Index("ix_photos_visit", "visit_id"),
        CheckConstraint("(event_id IS NULL) <> (visit_id IS NULL)", name="one_owner"),
        CheckConstraint("format IN ('JPEG', 'PNG', 'WEBP')", name="format_known"),
        CheckConstraint("(gps_lon IS NULL) = (gps_lat IS NULL)", name="gps_both_or_neither"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(10))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    exif_orientation: Mapped[int | None] = mapped_column(SmallInteger)
    original_key: Mapped[str] = mapped_column(String(200))
    display_key: Mapped[str] = mapped_column(String(200))
    thumb_key: Mapped[str] = mapped_column(String(200))
    gps_lon: Mapped[float | None] = mapped_column(Float)
    gps_lat: Mapped[float | None] = mapped_column(Float)
    gps_distance_m: Mapped[float | None] = mapped_column(Float)
    gps_flagged: Mapped[bool] = mapped_column(server_default=text("false"))
    taken_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    caption: Mapped[str] = mapped_column(String(500), server_default="")
    uploaded_by: Mapped[str] = mapped_column(String(100))
    uploaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Patrol(Base):
    """A patrol (巡查) of a grid worker or a police patrol: started, fed GPS fixes, stopped.

    ``track`` is the line through the accepted fixes in time order, rebuilt with each batch;
    ``region_code`` is the patroller's region when it started (who may read it: their region's
    dispatchers). Weekly coverage is computed from ``patrol_points``, not from ``track``, so a
    week boundary or a gap in the fixes does not draw a line nobody walked.
    """

    __tablename__ = "patrols"
    __table_args__ = (
        UniqueConstraint("username", "idempotency_key"),
        Index("ix_patrols_track", "track", postgresql_using="gist"),
        Index("ix_patrols_started", "started_at"),
        CheckConstraint("kind IN ('grid_worker', 'patrol')", name="kind_known"),
        CheckConstraint("stopped_at IS NULL OR stopped_at >= started_at", name="stops_after_start"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("users.username", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    region_code: Mapped[str | None] = mapped_column(String(15))
    idempotency_key: Mapped[str | None] = mapped_column(String(120))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    track: Mapped[Any] = mapped_column(Geometry("LINESTRING", srid=SRID, spatial_index=False), nullable=True)
    length_m: Mapped[float] = mapped_column(Float, server_default=text("0"))
    point_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class PatrolPoint(Base):
    """One GPS fix of a patrol; a fix is its time, so a batch sent twice stores each fix once."""

    __tablename__ = "patrol_points"
    __table_args__ = (
        Index("ix_patrol_points_geom", "geom", postgresql_using="gist"),
        Index("ix_patrol_points_at", "at"),
    )

    patrol_id: Mapped[int] = mapped_column(ForeignKey("patrols.id", ondelete="CASCADE"), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    geom: Mapped[Any] = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False))
    accuracy_m: Mapped[float | None] = mapped_column(Float)


class Duty(Base):
    """A duty of the duty list (职责清单) from the city pack: what, at which level, how often.

    ``level`` is the unit a visit counts for: each grid (``grid``) or each community
    (``community``); ``every_days`` the cycle; ``region_code`` limits the duty to a subtree.
    """

    __tablename__ = "duties"
    __table_args__ = (
        CheckConstraint("level IN ('grid', 'community')", name="level_known"),
        CheckConstraint("every_days >= 1", name="every_days_positive"),
    )

    code: Mapped[str] = mapped_column(String(50), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(20))
    every_days: Mapped[int] = mapped_column(Integer)
    region_code: Mapped[str | None] = mapped_column(String(15))
    description: Mapped[str] = mapped_column(Text, server_default="")


class Visit(Base):
    """A visit (走访) by its worker, idempotent by key: against a duty for one grid or community, or a key person.

    A key person's visits are due by the person's own cycle, so a visit names exactly one of the
    two (``one_duty``); its ``unit_code`` is then the person's grid.
    """

    __tablename__ = "visits"
    __table_args__ = (
        UniqueConstraint("username", "idempotency_key"),
        CheckConstraint("(duty_code IS NULL) <> (key_person_id IS NULL)", name="one_duty"),
        Index("ix_visits_duty_unit", "duty_code", "unit_code", "visited_at"),
        Index("ix_visits_key_person", "key_person_id", "visited_at"),
        Index("ix_visits_geom", "geom", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    duty_code: Mapped[str | None] = mapped_column(ForeignKey("duties.code", ondelete="CASCADE"))
    key_person_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("key_people.id", ondelete="CASCADE"))
    unit_code: Mapped[str] = mapped_column(String(15))
    username: Mapped[str] = mapped_column(ForeignKey("users.username", ondelete="CASCADE"))
    visited_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    notes: Mapped[str] = mapped_column(Text, server_default="")
    place_code: Mapped[str | None] = mapped_column(String(50))
    geom: Mapped[Any] = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(120))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


KEY_PERSON_KINDS = (
    "community_correction",  # 社区矫正对象
    "mental_disorder",  # 严重精神障碍患者
    "drug",  # 吸毒人员
    "released",  # 刑满释放人员
    "petition",  # 重点信访人员
    "youth",  # 重点青少年
    "elderly_alone",  # 独居老人
)


class KeyPerson(Base):
    """A key person (重点人员) of a grid: the most sensitive rows of the system.

    Read in full only by the responsible worker, the community's staff and the police; masked for
    everyone else who may list them (``geoservice.field.key_people``); every read is logged in
    ``key_person_reads``.
    """

    __tablename__ = "key_people"
    __table_args__ = (
        CheckConstraint(f"kind IN {KEY_PERSON_KINDS!r}", name="kind_known"),
        CheckConstraint("visit_cycle_days >= 1", name="visit_cycle_positive"),
        Index("ix_key_people_grid", "grid_code"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    id_number: Mapped[str] = mapped_column(String(18), server_default="")
    phone: Mapped[str] = mapped_column(String(50), server_default="")
    kind: Mapped[str] = mapped_column(String(30))
    address: Mapped[str] = mapped_column(String(300), server_default="")
    grid_code: Mapped[str] = mapped_column(String(15))
    responsible_username: Mapped[str | None] = mapped_column(ForeignKey("users.username", ondelete="SET NULL"))
    visit_cycle_days: Mapped[int] = mapped_column(Integer)
    notes: Mapped[str] = mapped_column(Text, server_default="")
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class KeyPersonRead(Base):
    """One read of one key person: who, when, through what, in full or masked. Append-only."""

    __tablename__ = "key_person_reads"
    __table_args__ = (Index("ix_key_person_reads_person", "person_id", "at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    reader: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    person_id: Mapped[int] = mapped_column(BigInteger)  # no foreign key: the log outlives the person
    what: Mapped[str] = mapped_column(String(100))
    in_full: Mapped[bool] = mapped_column()
