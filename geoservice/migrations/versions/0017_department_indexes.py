"""a department's events by category and status (issue 22): the indexes and statistics a handler's filters need

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 04:50:00

A handler filtering their list by a category their department never handles (police, 噪声) read all
of a million events (3.1 s, ``bench.big_events --queries``). The category decides the department, but
the planner multiplies the two filters' shares as if they were independent, expects thousands of
matches, and walks the report-time index backwards for the first 50 that never come.

* ``st_events_category_department``: extended statistics (most common pairs) on the two columns, so the
  planner knows which pairs exist; they apply to ``department_code = … AND category_code = ANY(…)``
  (the list now writes both so, see ``geoservice.events.queries.list_events``);
* ``ix_events_department_category``: the pairs a handler's filter asks for, found in one index scan;
* ``ix_events_department_status``: a handler's queue (a status, or a warning colour, which implies the
  running statuses) without reading all of the department's events' index entries (155,000 for the
  police: 11 ms a query); the two replace ``ix_events_department``, which both begin with.

``ANALYZE events`` fills the statistics now rather than at autovacuum's next visit (about 10 s at a
million events).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_events_department_category", "events", ["department_code", "category_code"])
    op.create_index("ix_events_department_status", "events", ["department_code", "status"])
    op.drop_index("ix_events_department", table_name="events")
    op.execute("CREATE STATISTICS st_events_category_department (mcv) ON category_code, department_code FROM events")
    op.execute("ANALYZE events")


def downgrade() -> None:
    op.execute("DROP STATISTICS IF EXISTS st_events_category_department")
    op.create_index("ix_events_department", "events", ["department_code"])
    op.drop_index("ix_events_department_status", table_name="events")
    op.drop_index("ix_events_department_category", table_name="events")
