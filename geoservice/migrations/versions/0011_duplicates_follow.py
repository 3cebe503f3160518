"""duplicates, merging and following: categories' duplicate radius and window, the ``merged`` status
and ``merged_into``, follow-token hashes, area subscriptions, a geography index for metric searches

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 05:40:00
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = ("reported", "accepted", "rejected", "dispatched", "returned", "handling", "handled", "verified",
                "reopened", "archived", "evaluated")  # fmt: skip
NEW_STATUSES = (*OLD_STATUSES, "merged")


def upgrade() -> None:
    op.add_column(
        "categories", sa.Column("duplicate_radius_m", sa.Float(), server_default=sa.text("50"), nullable=False)
    )
    op.add_column(
        "categories", sa.Column("duplicate_window_hours", sa.Float(), server_default=sa.text("72"), nullable=False)
    )
    op.create_check_constraint(
        op.f("ck_categories_duplicate_search_positive"),
        "categories",
        "duplicate_radius_m > 0 AND duplicate_window_hours > 0",
    )
    op.add_column("events", sa.Column("merged_into", sa.BigInteger(), nullable=True))
    op.add_column("events", sa.Column("merged_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("events", sa.Column("follow_token_sha256", sa.String(length=64), nullable=True))
    op.create_foreign_key(op.f("fk_events_merged_into"), "events", "events", ["merged_into"], ["id"])
    op.create_unique_constraint(op.f("uq_events_follow_token_sha256"), "events", ["follow_token_sha256"])
    op.create_index("ix_events_merged_into", "events", ["merged_into"])
    op.create_index("ix_events_geography", "events", [sa.text("geography(geom)")], postgresql_using="gist")
    op.drop_constraint(op.f("ck_events_status_known"), "events", type_="check")
    op.create_check_constraint(op.f("ck_events_status_known"), "events", f"status IN {NEW_STATUSES!r}")
    op.create_check_constraint(
        op.f("ck_events_merged_with_master"),
        "events",
        "merged_into IS NULL OR (status = 'merged' AND merged_into <> id)",
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="POLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),  # fmt: skip
        sa.Column("center_lon", sa.Float(), nullable=True),
        sa.Column("center_lat", sa.Float(), nullable=True),
        sa.Column("radius_m", sa.Float(), nullable=True),
        sa.Column("categories", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["username"], ["users.username"], name=op.f("fk_subscriptions_username"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    op.create_index("ix_subscriptions_geom", "subscriptions", ["geom"], postgresql_using="gist")
    op.create_index("ix_subscriptions_username", "subscriptions", ["username"])


def downgrade() -> None:
    op.drop_index("ix_subscriptions_username", table_name="subscriptions")
    op.drop_index("ix_subscriptions_geom", table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_constraint(op.f("ck_events_merged_with_master"), "events", type_="check")
    op.execute("UPDATE events SET status = 'rejected' WHERE status = 'merged'")  # no state to return them to
    op.drop_constraint(op.f("ck_events_status_known"), "events", type_="check")
    op.create_check_constraint(op.f("ck_events_status_known"), "events", f"status IN {OLD_STATUSES!r}")
    op.drop_index("ix_events_geography", table_name="events")
    op.drop_index("ix_events_merged_into", table_name="events")
    op.drop_constraint(op.f("uq_events_follow_token_sha256"), "events", type_="unique")
    op.drop_constraint(op.f("fk_events_merged_into"), "events", type_="foreignkey")
    op.drop_column("events", "follow_token_sha256")
    op.drop_column("events", "merged_at")
    op.drop_column("events", "merged_into")
    op.drop_constraint(op.f("ck_categories_duplicate_search_positive"), "categories", type_="check")
    op.drop_column("categories", "duplicate_window_hours")
    op.drop_column("categories", "duplicate_radius_m")
