"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 10:50:42.485774
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "boundary_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "status",
            sa.Enum("draft", "published", "retired", name="version_status"),
            server_default="draft",
            nullable=False,
        ),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("effective_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("based_on_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["based_on_id"], ["boundary_versions.id"], name=op.f("fk_boundary_versions_based_on_id")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_boundary_versions")),
        sa.UniqueConstraint("name", name=op.f("uq_boundary_versions_name")),
    )
    op.create_table(
        "categories",
        sa.Column("code", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("parent_code", sa.String(length=80), nullable=True),
        sa.Column("accept_hours", sa.Float(), nullable=False),
        sa.Column("handle_hours", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["parent_code"], ["categories.code"], name=op.f("fk_categories_parent_code")),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_categories")),
    )
    op.create_table(
        "dataset_settings",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_dataset_settings")),
    )
    op.create_table(
        "departments",
        sa.Column("code", sa.String(length=50), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=50), server_default="bureau", nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=True),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_departments")),
    )
    op.create_table(
        "key_places",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=50), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=50), nullable=False),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "properties",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "GeometryType(geom) IN ('POINT', 'POLYGON', 'MULTIPOLYGON')",
            name=op.f("ck_key_places_point_or_polygon"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_places")),
        sa.UniqueConstraint("code", name=op.f("uq_key_places_code")),
    )
    op.create_index("ix_key_places_geom", "key_places", ["geom"], unique=False, postgresql_using="gist")
    op.create_index("ix_key_places_type", "key_places", ["type"], unique=False)
    op.create_table(
        "police_posts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=50), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("level", sa.Enum("village_room", "central_room", "station", name="post_level"), nullable=False),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "jurisdiction",
            geoalchemy2.types.Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column(
            "properties",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "jurisdiction IS NULL OR level = 'station'",
            name=op.f("ck_police_posts_jurisdiction_only_for_stations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_police_posts")),
        sa.UniqueConstraint("code", name=op.f("uq_police_posts_code")),
    )
    op.create_index("ix_police_posts_geom", "police_posts", ["geom"], unique=False, postgresql_using="gist")
    op.create_index(
        "ix_police_posts_jurisdiction",
        "police_posts",
        ["jurisdiction"],
        unique=False,
        postgresql_using="gist",
    )
    op.create_table(
        "population",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("count", sa.Float(), nullable=False),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_population")),
    )
    op.create_index("ix_population_geom", "population", ["geom"], unique=False, postgresql_using="gist")
    op.create_table(
        "grids",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=15), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("community_code", sa.String(length=12), nullable=False),
        sa.Column("workers", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False),
        sa.Column("officer", sa.String(length=100), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "properties",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.CheckConstraint("code ~ '^[0-9]{15}$'", name=op.f("ck_grids_code_format")),
        sa.CheckConstraint("left(code, 12) = community_code", name=op.f("ck_grids_code_in_community")),
        sa.ForeignKeyConstraint(
            ["version_id"], ["boundary_versions.id"], name=op.f("fk_grids_version_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grids")),
        sa.UniqueConstraint("version_id", "code", name=op.f("uq_grids_version_id")),
    )
    op.create_index("ix_grids_community", "grids", ["version_id", "community_code"], unique=False)
    op.create_index("ix_grids_geom", "grids", ["geom"], unique=False, postgresql_using="gist")
    op.create_table(
        "regions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("level", sa.Enum("city", "town", "community", name="region_level"), nullable=False),
        sa.Column("parent_code", sa.String(length=12), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "properties",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.CheckConstraint("code ~ '^[0-9]{12}$'", name=op.f("ck_regions_code_format")),
        sa.ForeignKeyConstraint(
            ["version_id"], ["boundary_versions.id"], name=op.f("fk_regions_version_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_regions")),
        sa.UniqueConstraint("version_id", "code", name=op.f("uq_regions_version_id")),
    )
    op.create_index("ix_regions_geom", "regions", ["geom"], unique=False, postgresql_using="gist")
    op.create_index("ix_regions_parent", "regions", ["version_id", "parent_code"], unique=False)
    op.create_table(
        "routing_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("category_code", sa.String(length=80), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=True),
        sa.Column("place_type", sa.String(length=50), nullable=True),
        sa.Column("place_distance_m", sa.Float(), nullable=True),
        sa.Column("zone_layer", sa.String(length=50), nullable=True),
        sa.Column("department_code", sa.String(length=50), nullable=False),
        sa.Column("priority", sa.Integer(), server_default="0", nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.CheckConstraint(
            "(place_type IS NULL) = (place_distance_m IS NULL)",
            name=op.f("ck_routing_rules_place_type_with_distance"),
        ),
        sa.ForeignKeyConstraint(["category_code"], ["categories.code"], name=op.f("fk_routing_rules_category_code")),
        sa.ForeignKeyConstraint(
            ["department_code"], ["departments.code"], name=op.f("fk_routing_rules_department_code")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_rules")),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("category_code", sa.String(length=80), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("source", sa.String(length=30), server_default="public", nullable=False),
        sa.Column("priority", sa.String(length=20), server_default="normal", nullable=False),
        sa.Column("status", sa.String(length=20), server_default="reported", nullable=False),
        sa.Column("escalation_level", sa.String(length=20), server_default="grid", nullable=False),
        sa.Column("reporter_name", sa.String(length=100), nullable=True),
        sa.Column("reporter_phone", sa.String(length=50), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=True),
        sa.Column("community_code", sa.String(length=12), nullable=True),
        sa.Column("town_code", sa.String(length=12), nullable=True),
        sa.Column("station_code", sa.String(length=50), nullable=True),
        sa.Column("department_code", sa.String(length=50), nullable=True),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("route_reason", sa.Text(), nullable=True),
        sa.Column("boundary_version_id", sa.Integer(), nullable=True),
        sa.Column("row_version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "properties",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["boundary_version_id"], ["boundary_versions.id"], name=op.f("fk_events_boundary_version_id")
        ),
        sa.ForeignKeyConstraint(["category_code"], ["categories.code"], name=op.f("fk_events_category_code")),
        sa.ForeignKeyConstraint(["department_code"], ["departments.code"], name=op.f("fk_events_department_code")),
        sa.ForeignKeyConstraint(["rule_id"], ["routing_rules.id"], name=op.f("fk_events_rule_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_events_idempotency_key")),
    )
    op.create_index("ix_events_geom", "events", ["geom"], unique=False, postgresql_using="gist")
    op.create_index("ix_events_grid", "events", ["grid_code"], unique=False)
    op.create_index("ix_events_occurred", "events", ["occurred_at"], unique=False)
    op.create_index("ix_events_status", "events", ["status"], unique=False)
    op.create_table(
        "event_log",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=30), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_event_log_event_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_log")),
    )
    op.create_index("ix_event_log_event", "event_log", ["event_id", "id"], unique=False)

    # At most one published version is in force at any instant.
    op.execute(
        "ALTER TABLE boundary_versions ADD CONSTRAINT ex_boundary_versions_period "
        "EXCLUDE USING gist (tstzrange(effective_from, effective_to) WITH &&) "
        "WHERE (status <> 'draft')"
    )
    # The event log is append-only for every role, the app's included.
    op.execute(
        """
        CREATE FUNCTION event_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'event_log is append-only: % is not allowed', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END $$;
        CREATE TRIGGER event_log_append_only BEFORE UPDATE OR DELETE ON event_log
            FOR EACH ROW EXECUTE FUNCTION event_log_is_append_only();
        CREATE TRIGGER event_log_no_truncate BEFORE TRUNCATE ON event_log
            FOR EACH STATEMENT EXECUTE FUNCTION event_log_is_append_only();
        """
    )
    # The unified code table (统一网格编码表): every place code of every boundary version.
    op.execute(
        """
        CREATE VIEW code_table AS
        SELECT version_id, code, name, level::text AS level, parent_code FROM regions
        UNION ALL
        SELECT version_id, code, name, 'grid', community_code FROM grids
        """
    )


def downgrade() -> None:
    op.execute("DROP VIEW code_table")
    op.execute("DROP TRIGGER event_log_no_truncate ON event_log")
    op.execute("DROP TRIGGER event_log_append_only ON event_log")
    op.execute("DROP FUNCTION event_log_is_append_only()")
    op.drop_index("ix_event_log_event", table_name="event_log")
    op.drop_table("event_log")
    op.drop_index("ix_events_status", table_name="events")
    op.drop_index("ix_events_occurred", table_name="events")
    op.drop_index("ix_events_grid", table_name="events")
    op.drop_index("ix_events_geom", table_name="events", postgresql_using="gist")
    op.drop_table("events")
    op.drop_table("routing_rules")
    op.drop_index("ix_regions_parent", table_name="regions")
    op.drop_index("ix_regions_geom", table_name="regions", postgresql_using="gist")
    op.drop_table("regions")
    op.drop_index("ix_grids_geom", table_name="grids", postgresql_using="gist")
    op.drop_index("ix_grids_community", table_name="grids")
    op.drop_table("grids")
    op.drop_index("ix_population_geom", table_name="population", postgresql_using="gist")
    op.drop_table("population")
    op.drop_index("ix_police_posts_jurisdiction", table_name="police_posts", postgresql_using="gist")
    op.drop_index("ix_police_posts_geom", table_name="police_posts", postgresql_using="gist")
    op.drop_table("police_posts")
    op.drop_index("ix_key_places_type", table_name="key_places")
    op.drop_index("ix_key_places_geom", table_name="key_places", postgresql_using="gist")
    op.drop_table("key_places")
    op.drop_table("departments")
    op.drop_table("dataset_settings")
    op.drop_table("categories")
    op.drop_table("boundary_versions")
    for enum_type in ("version_status", "region_level", "post_level"):
        op.execute(f"DROP TYPE {enum_type}")
