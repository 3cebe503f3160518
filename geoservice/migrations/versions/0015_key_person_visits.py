"""key-person visits (issue 18): a visit is against a duty or against a key person, never both

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 19:20:00

A key person's visits are due by the person's own ``visit_cycle_days``, not by a duty of the
list, so a visit carries either ``duty_code`` or ``key_person_id``. Named for the key-person
visits alone so that a renumbering on merge (another 0015) is a rename of this file.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("visits", "duty_code", existing_type=sa.String(length=50), nullable=True)
    op.add_column("visits", sa.Column("key_person_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(op.f("fk_visits_key_person_id"), "visits", "key_people", ["key_person_id"], ["id"],
                          ondelete="CASCADE")  # fmt: skip
    op.create_check_constraint(op.f("ck_visits_one_duty"), "visits", "(duty_code IS NULL) <> (key_person_id IS NULL)")
    op.create_index("ix_visits_key_person", "visits", ["key_person_id", "visited_at"])


def downgrade() -> None:
    op.execute("DELETE FROM visits WHERE key_person_id IS NOT NULL")
    op.drop_index("ix_visits_key_person", table_name="visits")
    op.drop_constraint(op.f("ck_visits_one_duty"), "visits", type_="check")
    op.drop_constraint(op.f("fk_visits_key_person_id"), "visits", type_="foreignkey")
    op.drop_column("visits", "key_person_id")
    op.alter_column("visits", "duty_code", existing_type=sa.String(length=50), nullable=False)
