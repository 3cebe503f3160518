"""service attributes: categories carry GeoReport v2 attribute definitions (Open311 service definitions)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "categories",
        sa.Column(
            "attributes", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False
        ),
    )
    op.create_check_constraint(
        op.f("ck_categories_attributes_list"), "categories", "jsonb_typeof(attributes) = 'array'"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_categories_attributes_list"), "categories", type_="check")
    op.drop_column("categories", "attributes")
