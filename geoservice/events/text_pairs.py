"""Which character pairs of a ``q=`` word the index of pairs is asked for (migration 0018).

The list finds words through ``event_text_bigrams(description) @> pairs`` and then checks the whole
word with ``LIKE``/``ILIKE``, so any subset of the word's pairs gives exactly the same answers: the
pairs only narrow what is read. Their cost is not the same, though. A pair found in half of all
descriptions (发现, 巡查) has a posting list of half a million entries; asking for {发现, 现金} took
25 ms of GIN work at a million events, {现金} alone 2.5 ms, for the same 5,906 events. So the pairs
that PostgreSQL's own statistics call common are left out, keeping at least the rarest one.

Only for words without cased letters, whose pairs are their plain two-character substrings on both
sides; a word with cased letters keeps ``event_text_bigrams(:word)``, computed by the database with
the same ``lower()`` as the descriptions' pairs.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import text
from sqlalchemy.orm import Session

COMMON_SHARE = 0.1  # a pair in more than this share of the descriptions is left out (if another remains)
REFRESH_S = 600.0  # statistics change with ANALYZE (autovacuum's, or a migration's), not per request
STATISTICS = text(
    "SELECT u.pair, u.share FROM pg_stats s, "
    "unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) AS u(pair, share) "
    "WHERE s.schemaname = current_schema() AND s.tablename = 'ix_events_description_bigrams' "
    "AND u.pair IS NOT NULL"
)

# Per database (tests and tools open several in one process): its URL → (read at, pair → share).
# Module-level because it holds what the database says about itself, the same for every caller.
_shares: dict[str, tuple[float, dict[str, float]]] = {}
_lock = threading.Lock()


def has_case(word: str) -> bool:
    """Whether the word has letters with an upper and a lower case (Latin, Cyrillic…), unlike Chinese."""
    return word.lower() != word.upper()


def pairs_to_ask(session: Session, word: str) -> list[str] | None:
    """The word's pairs minus the common ones; None for a word with cased letters or shorter than two."""
    if len(word) < 2 or has_case(word):
        return None
    pairs = list(dict.fromkeys(word[i : i + 2] for i in range(len(word) - 1)))
    shares = _common_pairs(session)
    rare = [pair for pair in pairs if shares.get(pair, 0.0) <= COMMON_SHARE]
    return rare or [min(pairs, key=lambda pair: shares.get(pair, 0.0))]


def _common_pairs(session: Session) -> dict[str, float]:
    key = session.get_bind().url.render_as_string(hide_password=True)
    cached = _shares.get(key)
    if cached is not None and time.monotonic() - cached[0] < REFRESH_S:
        return cached[1]
    with _lock:
        shares = {row.pair: float(row.share) for row in session.execute(STATISTICS)}
        _shares[key] = (time.monotonic(), shares)
    return shares
