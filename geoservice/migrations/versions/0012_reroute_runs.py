"""reroute runs: historic events re-attributed to a boundary version in resumable partitions
(``reroute_runs``, ``reroute_partitions``); closed events keep their owner when their place changes;
the public rate limit's buckets shared by every API worker (``rate_buckets``, UNLOGGED)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGER = (
    "CREATE TRIGGER events_owner_follows_place BEFORE UPDATE OF grid_code, community_code, town_code, "
    "boundary_version_id ON events FOR EACH ROW {when} EXECUTE FUNCTION events_owner_follows_place()"
)
# A closed event (rejected, archived, evaluated, merged) keeps its owner when its place changes
# (re-attributed to a new boundary version for statistics). Only its first placement, which
# completes a record imported without any place (no grid, community, town or station yet: bulk
# routing gives every event a station), still gives it the unit of its place.
CLOSED_KEEP_OWNER = (
    "WHEN (OLD.status NOT IN ('rejected', 'archived', 'evaluated', 'merged') OR (OLD.grid_code IS NULL "
    "AND OLD.community_code IS NULL AND OLD.town_code IS NULL AND OLD.station_code IS NULL))"
)


def upgrade() -> None:
    op.create_table(
        "reroute_runs",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="running", nullable=False),
        sa.Column("engine", sa.String(length=20), server_default="local", nullable=False),
        sa.Column("partition_size", sa.Integer(), nullable=False),
        sa.Column("partitions", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("started_by", sa.String(length=100), server_default="", nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('running', 'done', 'abandoned')", name=op.f("ck_reroute_runs_status_known")),
        sa.CheckConstraint("partition_size > 0", name=op.f("ck_reroute_runs_partition_size_positive")),
        sa.ForeignKeyConstraint(["version_id"], ["boundary_versions.id"], name=op.f("fk_reroute_runs_version_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reroute_runs")),
    )
    op.create_index(
        "ux_reroute_runs_one_running", "reroute_runs", ["status"], unique=True,
        postgresql_where=sa.text("status = 'running'"),
    )  # fmt: skip
    op.create_table(
        "reroute_partitions",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("first_id", sa.BigInteger(), nullable=False),
        sa.Column("end_id", sa.BigInteger(), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("events", sa.Integer(), nullable=True),
        sa.Column("moved", sa.Integer(), nullable=True),
        sa.Column("outside", sa.Integer(), nullable=True),
        sa.Column("worker", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["reroute_runs.id"], name=op.f("fk_reroute_partitions_run_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "seq", name=op.f("pk_reroute_partitions")),
    )
    op.create_table(
        "rate_buckets",
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("counted_at", sa.Float(), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_rate_buckets")),
        prefixes=["UNLOGGED"],
    )
    op.execute("DROP TRIGGER events_owner_follows_place ON events")
    op.execute(TRIGGER.format(when=CLOSED_KEEP_OWNER))


def downgrade() -> None:
    op.execute("DROP TRIGGER events_owner_follows_place ON events")
    op.execute(TRIGGER.format(when=""))
    op.drop_table("rate_buckets")
    op.drop_table("reroute_partitions")
    op.drop_index("ux_reroute_runs_one_running", table_name="reroute_runs")
    op.drop_table("reroute_runs")
