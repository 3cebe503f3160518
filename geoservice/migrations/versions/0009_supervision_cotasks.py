"""supervision orders (督办) and co-handling tasks (联合处置)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 05:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "supervision_orders",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("issued_by", sa.String(length=100), nullable=False),
        sa.Column("issuer_role", sa.String(length=30), nullable=False),
        sa.Column("unit_code", sa.String(length=15), nullable=True),
        sa.Column("instruction", sa.Text(), nullable=False),
        sa.Column("reply_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replied_by", sa.String(length=100), nullable=True),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_to", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_supervision_orders_event_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supervision_orders")),
    )
    op.create_index("ix_supervision_orders_event", "supervision_orders", ["event_id"])
    op.create_index(
        "ix_supervision_orders_waiting",
        "supervision_orders",
        ["reply_due_at"],
        postgresql_where=sa.text("replied_at IS NULL"),
    )
    op.create_table(
        "event_tasks",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("department_code", sa.String(length=50), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="open", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_by", sa.String(length=100), nullable=True),
        sa.Column("fed_back_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fed_back_by", sa.String(length=100), nullable=True),
        sa.Column("feedback", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'handling', 'fed_back', 'replaced')", name=op.f("ck_event_tasks_status_known")
        ),
        sa.ForeignKeyConstraint(["department_code"], ["departments.code"], name=op.f("fk_event_tasks_department_code")),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_event_tasks_event_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_tasks")),
    )
    op.create_index("ix_event_tasks_event", "event_tasks", ["event_id"])
    op.create_index(
        "uq_event_tasks_live",
        "event_tasks",
        ["event_id", "department_code"],
        unique=True,
        postgresql_where=sa.text("status IN ('open', 'handling')"),
    )
    op.create_index(
        "ix_event_tasks_department_live",
        "event_tasks",
        ["department_code"],
        postgresql_where=sa.text("status IN ('open', 'handling')"),
    )


def downgrade() -> None:
    op.drop_index("ix_event_tasks_department_live", table_name="event_tasks")
    op.drop_index("uq_event_tasks_live", table_name="event_tasks")
    op.drop_index("ix_event_tasks_event", table_name="event_tasks")
    op.drop_table("event_tasks")
    op.drop_index("ix_supervision_orders_waiting", table_name="supervision_orders")
    op.drop_index("ix_supervision_orders_event", table_name="supervision_orders")
    op.drop_table("supervision_orders")
