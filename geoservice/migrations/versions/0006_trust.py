"""trust: sign-in throttle kept in the database, sensitive categories, grid-level user scopes

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One row per account name (as typed, known or not) and per client address that failed to sign in:
    # every API worker process reads and writes the same rows, so the throttle holds across them.
    op.create_table(
        "signin_throttle",
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('account', 'address')", name=op.f("ck_signin_throttle_kind")),
        sa.PrimaryKeyConstraint("kind", "subject", name=op.f("pk_signin_throttle")),
    )
    op.add_column("categories", sa.Column("sensitive", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    # A grid worker may be scoped to one grid: its 15-digit code.
    op.alter_column("users", "region_code", type_=sa.String(15), existing_type=sa.String(12))


def downgrade() -> None:
    op.alter_column("users", "region_code", type_=sa.String(12), existing_type=sa.String(15))
    op.drop_column("categories", "sensitive")
    op.drop_table("signin_throttle")
