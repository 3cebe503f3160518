"""event workflow: closed-loop columns, deadlines, deadline breaches

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = (
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
)
LEVELS = ("grid", "community", "town", "city")
STATE_TIMES = (
    "accepted_at",
    "dispatched_at",
    "handling_at",
    "handled_at",
    "verified_at",
    "archived_at",
    "evaluated_at",
)


def upgrade() -> None:
    op.add_column("events", sa.Column("handler_username", sa.String(length=100), nullable=True))
    op.add_column("events", sa.Column("reporter_username", sa.String(length=100), nullable=True))
    op.add_column("events", sa.Column("client_id", sa.String(length=100), nullable=True))
    op.add_column(
        "events",
        sa.Column(
            "photos", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False
        ),
    )
    op.add_column("events", sa.Column("accept_due_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("events", sa.Column("handle_due_at", sa.DateTime(timezone=True), nullable=True))
    for column in STATE_TIMES:
        op.add_column("events", sa.Column(column, sa.DateTime(timezone=True), nullable=True))
    op.add_column("events", sa.Column("reopen_count", sa.Integer(), server_default="0", nullable=False))
    op.add_column("events", sa.Column("escalation_count", sa.Integer(), server_default="0", nullable=False))
    op.add_column("events", sa.Column("satisfaction", sa.SmallInteger(), nullable=True))
    op.add_column("events", sa.Column("evaluation_comment", sa.Text(), nullable=True))
    op.create_check_constraint(op.f("ck_events_satisfaction_1_to_5"), "events", "satisfaction BETWEEN 1 AND 5")
    op.create_check_constraint(op.f("ck_events_status_known"), "events", f"status IN {STATUSES!r}")
    op.create_check_constraint(op.f("ck_events_escalation_level_known"), "events", f"escalation_level IN {LEVELS!r}")
    op.create_index("ix_events_department", "events", ["department_code"])
    op.create_index("ix_events_community", "events", ["community_code"])
    op.create_index("ix_events_town", "events", ["town_code"])
    op.create_index("ix_events_reported", "events", ["reported_at"])
    op.create_index("ix_events_reporter_username", "events", ["reporter_username"])

    op.create_table(
        "deadlines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("category_code", sa.String(length=80), nullable=True),
        sa.Column("priority", sa.String(length=20), nullable=False),
        sa.Column("accept_hours", sa.Float(), nullable=False),
        sa.Column("handle_hours", sa.Float(), nullable=False),
        sa.CheckConstraint("accept_hours > 0 AND handle_hours > 0", name=op.f("ck_deadlines_positive")),
        sa.ForeignKeyConstraint(["category_code"], ["categories.code"], name=op.f("fk_deadlines_category_code")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deadlines")),
    )
    # One row per (category or "any", priority); NULL must count as a value here.
    op.execute(
        "CREATE UNIQUE INDEX uq_deadlines_category_priority ON deadlines (coalesce(category_code, ''), priority)"
    )
    # Rows with no category are priority factors applied to the category's own hours.
    op.execute(
        "INSERT INTO deadlines (category_code, priority, accept_hours, handle_hours) "
        "VALUES (NULL, 'normal', 1.0, 1.0), (NULL, 'urgent', 0.5, 0.5)"
    )

    op.create_table(
        "deadline_breaches",
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("escalated_to", sa.String(length=20), nullable=True),
        sa.CheckConstraint("kind IN ('accept', 'handle')", name=op.f("ck_deadline_breaches_kind_known")),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_deadline_breaches_event_id")),
        sa.PrimaryKeyConstraint("event_id", "kind", "due_at", name=op.f("pk_deadline_breaches")),
    )


def downgrade() -> None:
    op.drop_table("deadline_breaches")
    op.drop_table("deadlines")
    for index in ("ix_events_reporter_username", "ix_events_reported", "ix_events_town", "ix_events_community",
                  "ix_events_department"):  # fmt: skip
        op.drop_index(index, table_name="events")
    for constraint in ("ck_events_escalation_level_known", "ck_events_status_known", "ck_events_satisfaction_1_to_5"):
        op.drop_constraint(op.f(constraint), "events", type_="check")
    for column in ("evaluation_comment", "satisfaction", "escalation_count", "reopen_count", *STATE_TIMES,
                   "handle_due_at", "accept_due_at", "photos", "client_id", "reporter_username",
                   "handler_username"):  # fmt: skip
        op.drop_column("events", column)
