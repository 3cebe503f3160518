"""forces and Open311: force_positions (short position history), api_clients (Open311 keys)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 10:00:00
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "force_positions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("geom", geoalchemy2.types.Geometry(geometry_type="POINT", srid=4326, spatial_index=False),
                  nullable=False),  # fmt: skip
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("available", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.CheckConstraint("kind IN ('grid_worker', 'patrol')", name=op.f("ck_force_positions_kind_known")),
        sa.ForeignKeyConstraint(["username"], ["users.username"], name=op.f("fk_force_positions_username"),
                                ondelete="CASCADE"),  # fmt: skip
        sa.PrimaryKeyConstraint("id", name=op.f("pk_force_positions")),
    )
    op.create_index("ix_force_positions_geom", "force_positions", ["geom"], postgresql_using="gist")
    op.create_index("ix_force_positions_user_at", "force_positions", ["username", "at"])

    op.create_table(
        "api_clients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("api_key_sha256", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_clients")),
        sa.UniqueConstraint("name", name=op.f("uq_api_clients_name")),
        sa.UniqueConstraint("api_key_sha256", name=op.f("uq_api_clients_api_key_sha256")),
    )


def downgrade() -> None:
    op.drop_table("api_clients")
    op.drop_index("ix_force_positions_user_at", table_name="force_positions")
    op.drop_index("ix_force_positions_geom", table_name="force_positions")
    op.drop_table("force_positions")
