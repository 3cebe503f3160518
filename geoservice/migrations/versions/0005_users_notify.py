"""users: NOTIFY users_changed on every change, so workers can cache who a token's holder is

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 16:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One notification per statement: a worker forgets every cached principal on any change, so
    # which rows changed does not matter, and a bulk update sends one message instead of thousands.
    op.execute(
        """
        CREATE FUNCTION notify_users_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('users_changed', TG_OP);
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users "
        "FOR EACH STATEMENT EXECUTE FUNCTION notify_users_changed()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER users_changed ON users")
    op.execute("DROP FUNCTION notify_users_changed()")
