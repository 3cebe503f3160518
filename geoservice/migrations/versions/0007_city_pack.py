"""city pack: places' owner/phone/risk/inspection, departments' parent and duty phone, categories'
grid-worker closing, users' phone and first-sign-in password change, the grids a grid worker serves,
the audit trail of reference data edited through the API

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 15:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("key_places", sa.Column("owner", sa.String(length=200), server_default="", nullable=False))
    op.add_column("key_places", sa.Column("phone", sa.String(length=50), server_default="", nullable=False))
    op.add_column("key_places", sa.Column("risk_level", sa.String(length=20), nullable=True))
    op.add_column("key_places", sa.Column("inspection_cycle_days", sa.Integer(), nullable=True))
    op.create_check_constraint(
        op.f("ck_key_places_risk_level_known"),
        "key_places",
        "risk_level IS NULL OR risk_level IN ('low', 'medium', 'high')",
    )
    op.create_check_constraint(
        op.f("ck_key_places_inspection_cycle_positive"),
        "key_places",
        "inspection_cycle_days IS NULL OR inspection_cycle_days > 0",
    )
    op.add_column("departments", sa.Column("parent_code", sa.String(length=50), nullable=True))
    op.add_column("departments", sa.Column("duty_phone", sa.String(length=50), server_default="", nullable=False))
    op.add_column(
        "categories",
        sa.Column("grid_worker_closes", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column("users", sa.Column("phone", sa.String(length=50), server_default="", nullable=False))
    op.add_column(
        "users", sa.Column("must_change_password", sa.Boolean(), server_default=sa.text("false"), nullable=False)
    )
    op.create_table(
        "user_grids",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_user_grids_user_id"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "grid_code", name=op.f("pk_user_grids")),
    )
    op.create_index("ix_user_grids_grid", "user_grids", ["grid_code"])
    op.create_table(
        "reference_changes",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("table_name", sa.String(length=30), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reference_changes")),
    )

    op.create_table(
        "pack_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="running", nullable=False),
        sa.Column("step", sa.Text(), server_default="", nullable=False),
        sa.Column("steps_done", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "result", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('running', 'done', 'failed')", name=op.f("ck_pack_jobs_status_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pack_jobs")),
    )


def downgrade() -> None:
    op.drop_table("pack_jobs")
    op.drop_table("reference_changes")
    op.drop_index("ix_user_grids_grid", table_name="user_grids")
    op.drop_table("user_grids")
    op.drop_column("users", "must_change_password")
    op.drop_column("users", "phone")
    op.drop_column("categories", "grid_worker_closes")
    op.drop_column("departments", "duty_phone")
    op.drop_column("departments", "parent_code")
    op.drop_constraint(op.f("ck_key_places_inspection_cycle_positive"), "key_places", type_="check")
    op.drop_constraint(op.f("ck_key_places_risk_level_known"), "key_places", type_="check")
    op.drop_column("key_places", "inspection_cycle_days")
    op.drop_column("key_places", "risk_level")
    op.drop_column("key_places", "phone")
    op.drop_column("key_places", "owner")
