"""event counts per local month and place, kept by the writes (issue 22): counts by town, community, month

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 21:30:00

``/v1/stats/counts`` by town or month read every event in the caller's scope: at a million events
0.16–0.36 s for a county-wide dispatcher alone and 0.5–2.3 s with four at once on two cores
(``bench.big_events``), against a target of 200 ms. ``event_month_counts`` holds the number of
events per local month (``Asia/Shanghai``, as ``geoservice.stats.filters.LOCAL_TZ``), town,
community, place prefix — the first 12 characters of ``coalesce(grid, community, town, '')``, the
place every region scope and ``region=`` filter match by prefix, so a scope of a community or wider
selects exactly the same events here as on ``events`` — and the leading department (a handler's
scope: the events it leads here, the few it only co-handles from ``events``). The demo city has
45,607 such rows for a million events.

Statement triggers with transition tables keep it exact in the writer's own transaction: an insert
(a report, a batch of reports, an import's COPY) adds its rows' groups once per statement; an update
moves only the rows whose report time, place codes or department changed (re-routing after a
publish, a dispatch to another department; most status changes touch nothing here); a delete
subtracts. (``events`` cannot be truncated: ``event_log``, which references it, refuses it.) Groups
are upserted in key order, so two writers lock shared rows in the same order. A group that drops
to zero stays as a row of 0 and is not shown.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = """
CREATE TABLE event_month_counts (
    month date NOT NULL,
    town_code varchar(12),
    community_code varchar(12),
    place_prefix varchar(12) NOT NULL,
    department_code varchar(50),
    events bigint NOT NULL,
    CONSTRAINT uq_event_month_counts_group
        UNIQUE NULLS NOT DISTINCT (month, town_code, community_code, place_prefix, department_code)
)
"""

# The group of each row of a transition table, and its number of rows (negative: taken away).
GROUPS = """
    SELECT date_trunc('month', r.reported_at AT TIME ZONE 'Asia/Shanghai')::date AS month, r.town_code,
           r.community_code, left(coalesce(r.grid_code, r.community_code, r.town_code, ''), 12) AS place_prefix,
           r.department_code, {sign} AS events
      FROM {table} r
"""
UPSERT = """
    INSERT INTO event_month_counts AS c (month, town_code, community_code, place_prefix, department_code, events)
    SELECT month, town_code, community_code, place_prefix, department_code, sum(events)
      FROM ({rows}) g
     GROUP BY 1, 2, 3, 4, 5
    HAVING sum(events) <> 0
     ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (month, town_code, community_code, place_prefix, department_code)
        DO UPDATE SET events = c.events + excluded.events;
"""
MOVED = "(SELECT o.* FROM {this} o JOIN {other} n USING (id) WHERE {changed})"
KEYED = ("reported_at", "town_code", "community_code", "grid_code", "department_code")
CHANGED = " OR ".join(f"o.{column} IS DISTINCT FROM n.{column}" for column in KEYED)


def _function(name: str, rows: str) -> str:
    body = UPSERT.format(rows=rows)
    return f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n{body}\nRETURN NULL;\nEND\n$$"


FUNCTIONS = {
    "event_month_counts_added": GROUPS.format(sign=1, table="added_rows"),
    "event_month_counts_removed": GROUPS.format(sign=-1, table="removed_rows"),
    "event_month_counts_moved": GROUPS.format(sign=1, table=MOVED.format(this="new_rows", other="old_rows",
                                                                       changed=CHANGED))
    + " UNION ALL "
    + GROUPS.format(sign=-1, table=MOVED.format(this="old_rows", other="new_rows", changed=CHANGED)),
}  # fmt: skip
TRIGGERS = [
    "CREATE TRIGGER event_month_counts_insert AFTER INSERT ON events REFERENCING NEW TABLE AS added_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION event_month_counts_added()",
    "CREATE TRIGGER event_month_counts_delete AFTER DELETE ON events REFERENCING OLD TABLE AS removed_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION event_month_counts_removed()",
    "CREATE TRIGGER event_month_counts_update AFTER UPDATE ON events "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION event_month_counts_moved()",
]


def upgrade() -> None:
    op.execute(TABLE)
    for name, rows in FUNCTIONS.items():
        op.execute(_function(name, rows))
    for statement in TRIGGERS:
        op.execute(statement)
    op.execute(UPSERT.format(rows=GROUPS.format(sign=1, table="events")))  # the events there are already


def downgrade() -> None:
    for trigger in ("update", "delete", "insert"):
        op.execute(f"DROP TRIGGER event_month_counts_{trigger} ON events")
    for name in FUNCTIONS:
        op.execute(f"DROP FUNCTION {name}()")
    op.execute("DROP TABLE event_month_counts")
