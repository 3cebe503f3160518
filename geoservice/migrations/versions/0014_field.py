"""the field side (issue 18): photos stored in the media store, with their EXIF facts; patrols and their fixes;
the duty list and visits; the key people register and its read log

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 08:50:00
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY_PERSON_KINDS = ("community_correction", "mental_disorder", "drug", "released", "petition", "youth",
                    "elderly_alone")  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "patrols",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("region_code", sa.String(length=15), nullable=True),
        sa.Column("idempotency_key", sa.String(length=120), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("track", _geometry("LINESTRING", nullable=True), nullable=True),
        sa.Column("length_m", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("point_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint("kind IN ('grid_worker', 'patrol')", name=op.f("ck_patrols_kind_known")),
        sa.CheckConstraint(
            "stopped_at IS NULL OR stopped_at >= started_at", name=op.f("ck_patrols_stops_after_start")
        ),
        sa.ForeignKeyConstraint(["username"], ["users.username"], name=op.f("fk_patrols_username"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patrols")),
        sa.UniqueConstraint("username", "idempotency_key", name=op.f("uq_patrols_username")),
    )
    op.create_index("ix_patrols_track", "patrols", ["track"], postgresql_using="gist")
    op.create_index("ix_patrols_started", "patrols", ["started_at"])
    op.create_table(
        "patrol_points",
        sa.Column("patrol_id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("geom", _geometry("POINT", nullable=False), nullable=False),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["patrol_id"], ["patrols.id"], name=op.f("fk_patrol_points_patrol_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("patrol_id", "at", name=op.f("pk_patrol_points")),
    )
    op.create_index("ix_patrol_points_geom", "patrol_points", ["geom"], postgresql_using="gist")
    op.create_index("ix_patrol_points_at", "patrol_points", ["at"])
    op.create_table(
        "duties",
        sa.Column("code", sa.String(length=50), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("level", sa.String(length=20), nullable=False),
        sa.Column("every_days", sa.Integer(), nullable=False),
        sa.Column("region_code", sa.String(length=15), nullable=True),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.CheckConstraint("level IN ('grid', 'community')", name=op.f("ck_duties_level_known")),
        sa.CheckConstraint("every_days >= 1", name=op.f("ck_duties_every_days_positive")),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_duties")),
    )
    op.create_table(
        "visits",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("duty_code", sa.String(length=50), nullable=False),
        sa.Column("unit_code", sa.String(length=15), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("visited_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("notes", sa.Text(), server_default="", nullable=False),
        sa.Column("place_code", sa.String(length=50), nullable=True),
        sa.Column("geom", _geometry("POINT", nullable=True), nullable=True),
        sa.Column("idempotency_key", sa.String(length=120), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["duty_code"], ["duties.code"], name=op.f("fk_visits_duty_code"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["username"], ["users.username"], name=op.f("fk_visits_username"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visits")),
        sa.UniqueConstraint("username", "idempotency_key", name=op.f("uq_visits_username")),
    )
    op.create_index("ix_visits_duty_unit", "visits", ["duty_code", "unit_code", "visited_at"])
    op.create_index("ix_visits_geom", "visits", ["geom"], postgresql_using="gist")

    op.create_table(
        "photos",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("visit_id", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=10), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("exif_orientation", sa.SmallInteger(), nullable=True),
        sa.Column("original_key", sa.String(length=200), nullable=False),
        sa.Column("display_key", sa.String(length=200), nullable=False),
        sa.Column("thumb_key", sa.String(length=200), nullable=False),
        sa.Column("gps_lon", sa.Float(), nullable=True),
        sa.Column("gps_lat", sa.Float(), nullable=True),
        sa.Column("gps_distance_m", sa.Float(), nullable=True),
        sa.Column("gps_flagged", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("caption", sa.String(length=500), server_default="", nullable=False),
        sa.Column("uploaded_by", sa.String(length=100), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("format IN ('JPEG', 'PNG', 'WEBP')", name=op.f("ck_photos_format_known")),
        sa.CheckConstraint("(gps_lon IS NULL) = (gps_lat IS NULL)", name=op.f("ck_photos_gps_both_or_neither")),
        sa.CheckConstraint("(event_id IS NULL) <> (visit_id IS NULL)", name=op.f("ck_photos_one_owner")),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_photos_event_id"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["visit_id"], ["visits.id"], name=op.f("fk_photos_visit_id"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photos")),
        sa.UniqueConstraint("event_id", "sha256", name=op.f("uq_photos_event_id")),
        sa.UniqueConstraint("visit_id", "sha256", name=op.f("uq_photos_visit_id")),
    )
    op.create_index("ix_photos_event", "photos", ["event_id"])
    op.create_index("ix_photos_visit", "photos", ["visit_id"])

    op.create_table(
        "key_people",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("id_number", sa.String(length=18), server_default="", nullable=False),
        sa.Column("phone", sa.String(length=50), server_default="", nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("address", sa.String(length=300), server_default="", nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=False),
        sa.Column("responsible_username", sa.String(length=100), nullable=True),
        sa.Column("visit_cycle_days", sa.Integer(), nullable=False),
        sa.Column("notes", sa.Text(), server_default="", nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(f"kind IN {KEY_PERSON_KINDS!r}", name=op.f("ck_key_people_kind_known")),
        sa.CheckConstraint("visit_cycle_days >= 1", name=op.f("ck_key_people_visit_cycle_positive")),
        sa.ForeignKeyConstraint(["responsible_username"], ["users.username"],
                                name=op.f("fk_key_people_responsible_username"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_people")),
    )  # fmt: skip
    op.create_index("ix_key_people_grid", "key_people", ["grid_code"])
    op.create_table(
        "key_person_reads",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("reader", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("person_id", sa.BigInteger(), nullable=False),
        sa.Column("what", sa.String(length=100), nullable=False),
        sa.Column("in_full", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_person_reads")),
    )
    op.create_index("ix_key_person_reads_person", "key_person_reads", ["person_id", "at"])


def _geometry(kind: str, *, nullable: bool) -> geoalchemy2.types.Geometry:
    return geoalchemy2.types.Geometry(
        geometry_type=kind, srid=4326, dimension=2, spatial_index=False, from_text="ST_GeomFromEWKT",
        name="geometry", nullable=nullable,
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("key_person_reads")
    op.drop_table("key_people")
    op.drop_table("photos")
    op.drop_table("visits")
    op.drop_table("duties")
    op.drop_table("patrol_points")
    op.drop_table("patrols")
