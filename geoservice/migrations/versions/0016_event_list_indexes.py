"""event list indexes (issue 22): scope/region prefixes, category families and text search at a million events

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 01:30:00

Measured on a 1,000,000-event demo city (bench.big_events), three list filters read the whole
table because nothing could serve them:

* the place prefix every region scope and ``region=`` filter writes,
  ``coalesce(grid_code, community_code, town_code, '') LIKE '<prefix>%'``: an expression index with
  ``text_pattern_ops`` serves the prefix under any collation, and its statistics (a finer histogram:
  a city has thousands of grids) tell the planner how many events a subtree holds (without them a
  county-wide dispatcher's town filter took 0.5 s); it carries the codes and the report time, so a
  region-scoped count reads the index only;
* a category family, ``category_code = :c OR category_code LIKE 'c.%'``: ``text_pattern_ops`` again;
* ``q=`` (``description ILIKE '%…%'``): a trigram GIN index (pg_trgm, a trusted extension the
  database owner may create); Chinese text splits into trigrams as well under a UTF-8 ctype.

Built in the migration's transaction (a million events: about a minute on two cores); a large live
table can have them built beforehand with ``CREATE INDEX CONCURRENTLY`` under the same names.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PLACE = "coalesce(grid_code, community_code, town_code, '')"
# What a region-scoped count reads besides the place: counts by town/community/grid/month of a
# dispatcher's subtree then come from the index alone (an index-only scan), not from the table.
COVERED = ["grid_code", "community_code", "town_code", "reported_at"]


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index("ix_events_place", "events", [sa.literal_column(PLACE).label("place")],
                    postgresql_ops={"place": "text_pattern_ops"}, postgresql_include=COVERED)  # fmt: skip
    op.execute("ALTER INDEX ix_events_place ALTER COLUMN 1 SET STATISTICS 1000")
    op.create_index("ix_events_category", "events", ["category_code"],
                    postgresql_ops={"category_code": "text_pattern_ops"})  # fmt: skip
    op.create_index("ix_events_description_trgm", "events", ["description"], postgresql_using="gin",
                    postgresql_ops={"description": "gin_trgm_ops"})  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_events_description_trgm", table_name="events")
    op.drop_index("ix_events_category", table_name="events")
    op.drop_index("ix_events_place", table_name="events")
