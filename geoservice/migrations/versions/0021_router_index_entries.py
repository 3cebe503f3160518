"""built router indexes kept in the database, for machines whose own cache has not seen them (issue 23)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 08:00:00

A router index depends only on a version's boundaries; ``geoservice.routing.index_store`` keeps the
arrays one process built so that another machine reads them instead of building them again. One
row per cache key: ``meta.json``'s text and each array's ``.npy`` bytes, as the cache directory
holds them. The arrays are compressed with LZ4 where the server has it (a raster of two-byte ranks
shrinks several times, and LZ4 decompresses faster than the bytes would travel), else with
PostgreSQL's default.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILES = ("cells", "boundary_cells", "offsets", "candidates")


def upgrade() -> None:
    op.create_table(
        "router_index_entries",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("meta", sa.Text(), nullable=False),
        *(sa.Column(name, sa.LargeBinary(), nullable=False) for name in FILES),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        prefixes=["UNLOGGED"],  # a cache: a crash empties it and the next build fills it again, no WAL for its MBs
    )
    lz4 = op.get_bind().execute(
        sa.text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
    ).scalar()
    if lz4:
        for name in FILES:
            op.execute(f"ALTER TABLE router_index_entries ALTER COLUMN {name} SET COMPRESSION lz4")


def downgrade() -> None:
    op.drop_table("router_index_entries")
