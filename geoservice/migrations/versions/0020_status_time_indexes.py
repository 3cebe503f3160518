"""a status's events newest first, and the running events newest first (issue 22)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 05:40:00

At a million events (``bench.big_events``) two first pages still read thousands of rows:

* ``status=archived``: the newest 9,000 events are not archived yet, so walking the report-time
  index backwards read 9,000 rows for 50 (10.6 ms of execution). ``ix_events_status_reported``,
  (status, report time), reads one status's events newest first (0.6 ms); the list writes a single
  status as an equality so that it can (``= ANY`` of one value cannot give the index's order). It
  replaces ``ix_events_status``, which it begins with.
* ``warning=red``: a colour is worked out from the clocks at the moment of asking, so no index can
  hold it; the list read every running event (3,738), coloured and sorted them (17.6 ms).
  ``ix_events_running_reported`` holds only the running events (the only ones with a colour), by
  report time: the newest are read first and coloured until 50 match (0.5 ms when most are red).
  It is a few thousand entries however many events are closed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# CLOCKED_STATUSES of geoservice.events.deadlines, as the list writes them, so the planner can prove
# that a warning filter's ``status = ANY(...)`` falls inside the index.
RUNNING = "status IN ('reported', 'dispatched', 'handling', 'reopened')"


def upgrade() -> None:
    op.create_index("ix_events_status_reported", "events", ["status", "reported_at"])
    op.drop_index("ix_events_status", table_name="events")
    op.create_index("ix_events_running_reported", "events", ["reported_at"], postgresql_where=sa.text(RUNNING))


def downgrade() -> None:
    op.drop_index("ix_events_running_reported", table_name="events")
    op.create_index("ix_events_status", "events", ["status"])
    op.drop_index("ix_events_status_reported", table_name="events")
