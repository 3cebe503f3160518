"""owners: every event's owner (a unit of the region tree or a department) and its history, the first
owner set by a trigger for every inserter, per-level escalation deadlines, categories' small_matter

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 05:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The unit that holds an event at a level: that level's code, else the next level up that exists.
# The city is the root of the event's own tree: its town's parent in the event's boundary version,
# else the city region of that version (else of the newest version, for rows without one).
UNIT_FUNCTION = """
CREATE FUNCTION event_city_code(community text, town text, version_id integer)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT r.parent_code FROM regions r
          WHERE r.version_id = $3 AND r.code = coalesce($2, left($1, 9) || '000')
            AND r.parent_code IS NOT NULL AND r.parent_code <> ''),
        (SELECT r.code FROM regions r WHERE r.level = 'city'
          ORDER BY (r.version_id = $3) DESC NULLS LAST, r.version_id DESC, r.code LIMIT 1))
$$;
CREATE FUNCTION event_unit_code(level text, grid text, community text, town text, version_id integer)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE level
        WHEN 'grid' THEN coalesce(grid, community, town, event_city_code(community, town, version_id))
        WHEN 'community' THEN coalesce(community, town, event_city_code(community, town, version_id))
        WHEN 'town' THEN coalesce(town, event_city_code(community, town, version_id))
        ELSE event_city_code(community, town, version_id)
    END
$$
"""
# The first owner per row, before it is stored; its history row once per statement (a bulk import's
# COPY or INSERT … SELECT writes all of them in one go).
FIRST_OWNER = """
CREATE FUNCTION events_first_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.owner_code IS NULL THEN
        NEW.owner_kind := 'unit';
        NEW.owner_code := event_unit_code(coalesce(NEW.escalation_level, 'grid'), NEW.grid_code,
                                          NEW.community_code, NEW.town_code, NEW.boundary_version_id);
        IF NEW.owner_code IS NULL THEN
            NEW.owner_kind := NULL;
        END IF;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER events_first_owner BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION events_first_owner();
CREATE FUNCTION events_first_owner_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_owners (event_id, owner_kind, owner_code, since, reason)
    SELECT id, owner_kind, owner_code, coalesce(reported_at, now()), 'first owner'
      FROM inserted WHERE owner_code IS NOT NULL ORDER BY id;
    RETURN NULL;
END
$$;
CREATE TRIGGER events_first_owner_history AFTER INSERT ON events REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION events_first_owner_history();
"""
# An event placed (or moved by a re-route) after it was stored follows its place, unless someone
# else holds it: a department, or a unit other than the one its old place gave it.
FOLLOW_PLACE = """
CREATE FUNCTION events_owner_follows_place() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unit text := event_unit_code(NEW.escalation_level, NEW.grid_code, NEW.community_code, NEW.town_code,
                                 NEW.boundary_version_id);
BEGIN
    IF NEW.owner_kind IS DISTINCT FROM 'department' AND unit IS DISTINCT FROM NEW.owner_code
       AND (NEW.owner_code IS NULL OR NEW.owner_code IS NOT DISTINCT FROM event_unit_code(
            OLD.escalation_level, OLD.grid_code, OLD.community_code, OLD.town_code, OLD.boundary_version_id)) THEN
        UPDATE event_owners SET until = now() WHERE event_id = NEW.id AND until IS NULL;
        IF unit IS NOT NULL THEN
            INSERT INTO event_owners (event_id, owner_kind, owner_code, since, reason)
            VALUES (NEW.id, 'unit', unit, now(), 'placed or re-routed');
        END IF;
        NEW.owner_kind := CASE WHEN unit IS NULL THEN NULL ELSE 'unit' END;
        NEW.owner_code := unit;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER events_owner_follows_place BEFORE UPDATE OF grid_code, community_code, town_code, boundary_version_id
    ON events FOR EACH ROW EXECUTE FUNCTION events_owner_follows_place();
"""
# Existing rows: department-held states belong to their department, everything else to the unit
# at the event's level; one history row each, since the event's last change.
BACKFILL = """
UPDATE events SET
    owner_kind = CASE WHEN status IN ('dispatched', 'handling', 'reopened') AND department_code IS NOT NULL
                      THEN 'department' ELSE 'unit' END,
    owner_code = CASE WHEN status IN ('dispatched', 'handling', 'reopened') AND department_code IS NOT NULL
                      THEN department_code
                      ELSE event_unit_code(escalation_level, grid_code, community_code, town_code,
                                           boundary_version_id) END;
UPDATE events SET owner_kind = NULL WHERE owner_code IS NULL;
INSERT INTO event_owners (event_id, owner_kind, owner_code, since, reason)
SELECT id, owner_kind, owner_code, updated_at, 'backfill (migration 0008)' FROM events WHERE owner_code IS NOT NULL;
"""


def upgrade() -> None:
    op.add_column("events", sa.Column("owner_kind", sa.String(length=20), nullable=True))
    op.add_column("events", sa.Column("owner_code", sa.String(length=50), nullable=True))
    op.create_check_constraint(
        op.f("ck_events_owner_kind_known"), "events", "owner_kind IS NULL OR owner_kind IN ('unit', 'department')"
    )
    op.create_index("ix_events_owner", "events", ["owner_kind", "owner_code"])
    op.create_table(
        "event_owners",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("owner_kind", sa.String(length=20), nullable=False),
        sa.Column("owner_code", sa.String(length=50), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.CheckConstraint("owner_kind IN ('unit', 'department')", name=op.f("ck_event_owners_owner_kind_known")),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_event_owners_event_id"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_owners")),
    )
    op.create_index("ix_event_owners_event", "event_owners", ["event_id"])
    op.create_table(
        "escalation_levels",
        sa.Column("level", sa.String(length=20), nullable=False),
        sa.Column("accept_hours", sa.Float(), nullable=False),
        sa.Column("handle_hours", sa.Float(), nullable=False),
        sa.CheckConstraint("level IN ('community', 'town', 'city')", name=op.f("ck_escalation_levels_level_known")),
        sa.CheckConstraint("accept_hours > 0 AND handle_hours > 0", name=op.f("ck_escalation_levels_positive")),
        sa.PrimaryKeyConstraint("level", name=op.f("pk_escalation_levels")),
    )
    op.alter_column("categories", "grid_worker_closes", new_column_name="small_matter")
    op.execute(UNIT_FUNCTION)
    op.execute(FIRST_OWNER)
    op.execute(FOLLOW_PLACE)
    op.execute(BACKFILL)


def downgrade() -> None:
    op.execute("DROP TRIGGER events_owner_follows_place ON events")
    op.execute("DROP FUNCTION events_owner_follows_place()")
    op.execute("DROP TRIGGER events_first_owner_history ON events")
    op.execute("DROP FUNCTION events_first_owner_history()")
    op.execute("DROP TRIGGER events_first_owner ON events")
    op.execute("DROP FUNCTION events_first_owner()")
    op.execute("DROP FUNCTION event_unit_code(text, text, text, text, integer)")
    op.execute("DROP FUNCTION event_city_code(text, text, integer)")
    op.alter_column("categories", "small_matter", new_column_name="grid_worker_closes")
    op.drop_table("escalation_levels")
    op.drop_index("ix_event_owners_event", table_name="event_owners")
    op.drop_table("event_owners")
    op.drop_index("ix_events_owner", table_name="events")
    op.drop_constraint(op.f("ck_events_owner_kind_known"), "events", type_="check")
    op.drop_column("events", "owner_code")
    op.drop_column("events", "owner_kind")
