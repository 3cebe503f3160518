"""notifications: every logged step queued by a trigger in its own transaction, inbox rows, an outbox of
deliveries (SMS, webhooks) with retries and a dead-letter state, and warning colours seen by the sweep

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 05:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notification_queue",
        sa.Column("log_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["log_id"], ["event_log.id"], name=op.f("fk_notification_queue_log_id")),
        sa.PrimaryKeyConstraint("log_id", name=op.f("pk_notification_queue")),
    )
    op.create_index(
        "ix_notification_queue_pending", "notification_queue", ["log_id"], postgresql_where=sa.text("done_at IS NULL")
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("log_id", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_notifications_user_id"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_notifications_event_id")),
        sa.ForeignKeyConstraint(["log_id"], ["event_log.id"], name=op.f("fk_notifications_log_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("log_id", "user_id", name=op.f("uq_notifications_log_id")),
    )
    op.create_index("ix_notifications_user", "notifications", ["user_id", "id"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("log_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("idempotency_key", sa.String(length=300), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dead_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("channel IN ('sms', 'webhook')", name=op.f("ck_deliveries_channel_known")),
        sa.ForeignKeyConstraint(["log_id"], ["event_log.id"], name=op.f("fk_deliveries_log_id")),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_deliveries_event_id")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_deliveries_user_id"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_deliveries_idempotency_key")),
    )
    op.create_index(
        "ix_deliveries_due",
        "deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("delivered_at IS NULL AND dead_at IS NULL"),
    )
    op.create_table(
        "event_warnings",
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("clock", sa.String(length=20), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("colour", sa.String(length=10), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("clock IN ('accept', 'handle')", name=op.f("ck_event_warnings_clock_known")),
        sa.CheckConstraint("colour IN ('blue', 'yellow', 'red')", name=op.f("ck_event_warnings_colour_known")),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_event_warnings_event_id")),
        sa.PrimaryKeyConstraint("event_id", "clock", "due_at", "colour", name=op.f("pk_event_warnings")),
    )
    # Capture: the queue row is written by the database in the step's own transaction, so a step that
    # commits is queued and one that rolls back is not; no writer of event_log can forget it. Imported
    # history (actor 'import') is not news to anyone. NOTIFY is sent at commit and wakes live streams.
    op.execute(
        """
        CREATE FUNCTION queue_event_step() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO notification_queue (log_id, event_id) VALUES (NEW.id, NEW.event_id);
            PERFORM pg_notify('geoservice_live', 'step:' || NEW.event_id);
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER event_log_queued AFTER INSERT ON event_log FOR EACH ROW "
        "WHEN (NEW.actor <> 'import') EXECUTE FUNCTION queue_event_step()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER event_log_queued ON event_log")
    op.execute("DROP FUNCTION queue_event_step()")
    op.drop_table("event_warnings")
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_index("ix_notifications_user", table_name="notifications")
    op.drop_table("notifications")
    op.drop_index("ix_notification_queue_pending", table_name="notification_queue")
    op.drop_table("notification_queue")
