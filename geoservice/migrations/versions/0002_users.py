"""users

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 11:51:50.166541
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "admin",
                "planner",
                "dispatcher",
                "handler",
                "grid_worker",
                "supervisor",
                "public",
                name="user_role",
            ),
            nullable=False,
        ),
        sa.Column("region_code", sa.String(length=12), nullable=True),
        sa.Column("department_code", sa.String(length=50), nullable=True),
        sa.Column("display_name", sa.String(length=100), server_default="", nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "role <> 'handler' OR department_code IS NOT NULL", name=op.f("ck_users_handlers_have_department")
        ),
        sa.CheckConstraint(
            "role NOT IN ('dispatcher', 'grid_worker') OR region_code IS NOT NULL",
            name=op.f("ck_users_scoped_roles_have_region"),
        ),
        sa.ForeignKeyConstraint(["department_code"], ["departments.code"], name=op.f("fk_users_department_code")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )


def downgrade() -> None:
    op.drop_table("users")
    op.execute("DROP TYPE user_role")
