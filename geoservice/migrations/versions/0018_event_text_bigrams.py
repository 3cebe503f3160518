"""q= on two-character Chinese words (issue 22): an index of each description's character pairs

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 21:00:00

Chinese search words are mostly two characters (垃圾, 噪声, 占道). The trigram index of 0016 cannot
serve ``ILIKE '%垃圾%'``: a two-character pattern holds no whole trigram, so PostgreSQL read every
event the other filters left (a police handler's ``q=垃圾`` at a million events: 3.2–3.8 s in
``bench.big_events --queries``).

``event_text_bigrams(t)`` is the set of the lower-cased text's two-character substrings, and
``ix_events_description_bigrams`` a GIN index of it. Why the index may answer for ILIKE: in a UTF-8
database ILIKE lower-cases both the text and the pattern with ``lower()`` and then matches them
case-sensitively, so whenever ``description ILIKE '%q%'`` holds, ``lower(q)`` is a substring of
``lower(description)`` and each pair of ``lower(q)`` is a pair of ``lower(description)``: the
condition ``event_text_bigrams(description) @> event_text_bigrams(q)`` is necessary (it never
drops a match) and the ILIKE beside it stays the exact test. Any pattern of two characters or more
has pairs, Latin or Chinese, so the trigram index is dropped: one GIN index to keep up on each write.

The function is marked ten times an operator's cost, so that where no index serves it the planner
tests the cheap ILIKE first and the pairs only on the rows that match; more would make every walk
through the report-time index look expensive (at 1000 a county's first page of 垃圾 became a
parallel scan: 25-30 ms instead of 2-5). Built in the migration's transaction (a million events:
44 s on two cores); a large live table can have the index built beforehand with
``CREATE INDEX CONCURRENTLY`` under the same name.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# PL/pgSQL: a loop over the characters is about twice as fast as the same pairs written as one SQL
# query over generate_series (11 against 23 µs for 32 characters). Repeated pairs stay: GIN keeps
# each key of a row once.
BIGRAMS = """
CREATE FUNCTION event_text_bigrams(t text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE COST 10 AS $$
DECLARE
    lowered text := lower(t);
    pairs text[] := '{}';
BEGIN
    FOR i IN 1 .. char_length(lowered) - 1 LOOP
        pairs := pairs || substr(lowered, i, 2);
    END LOOP;
    RETURN pairs;
END
$$
"""


def upgrade() -> None:
    op.execute(BIGRAMS)
    op.execute("CREATE INDEX ix_events_description_bigrams ON events USING gin (event_text_bigrams(description))")
    op.drop_index("ix_events_description_trgm", table_name="events")
    op.execute("ANALYZE events")  # the index expression's statistics: how common each pair is


def downgrade() -> None:
    op.create_index("ix_events_description_trgm", "events", ["description"], postgresql_using="gin",
                    postgresql_ops={"description": "gin_trgm_ops"})  # fmt: skip
    op.drop_index("ix_events_description_bigrams", table_name="events")
    op.execute("DROP FUNCTION event_text_bigrams(text)")
