"""The public rate limit shared by every API worker: one token bucket per client, in PostgreSQL.

``geoservice serve --workers N`` (or several servers behind one proxy) would otherwise give each
client N budgets, one per process. Here a check is one atomic statement on the UNLOGGED table
``rate_buckets`` — ``INSERT … ON CONFLICT (subject) DO UPDATE … RETURNING`` — that refills the
bucket by the time since its last count, takes ``cost`` when it holds that much, and says whether
it did; concurrent checks of one client serialise on its row, so the workers together never grant
more than the rate. Time is the database's clock, the one clock every worker shares. UNLOGGED: no
WAL per request, and a database crash only empties the buckets (every client starts full again).
Buckets that have refilled are deleted now and then, so the table holds only recent clients.

The check costs a round trip to the database (measured in bench/RESULTS.md, "rate limit"), so it
runs in the thread pool, never on the event loop (``blocking``).
"""

from __future__ import annotations

import itertools

from limits import parse
from sqlalchemy import Engine, text

from geoservice.api.limits import too_many

CHECK = text(
    """
    INSERT INTO rate_buckets AS b (subject, tokens, counted_at, granted)
    SELECT :subject, CASE WHEN :cost <= :capacity THEN :capacity - :cost ELSE :capacity END, now.t, :cost <= :capacity
      FROM (SELECT extract(epoch FROM clock_timestamp())::float8 AS t) AS now
    ON CONFLICT (subject) DO UPDATE SET
        granted = least(:capacity, b.tokens + (EXCLUDED.counted_at - b.counted_at) / :seconds_per_token) >= :cost,
        tokens = least(:capacity, b.tokens + (EXCLUDED.counted_at - b.counted_at) / :seconds_per_token)
                 - CASE WHEN least(:capacity, b.tokens + (EXCLUDED.counted_at - b.counted_at) / :seconds_per_token)
                             >= :cost THEN :cost ELSE 0 END,
        counted_at = EXCLUDED.counted_at
    RETURNING granted, tokens
    """
)
FORGET_FULL = text(
    "DELETE FROM rate_buckets WHERE tokens + (extract(epoch FROM clock_timestamp()) - counted_at) / :seconds_per_token "
    ">= :capacity"
)
FORGET_EVERY = 10_000  # checks per process between two clean-ups


class SharedRateLimiter:
    """The same buckets as ``PublicRateLimiter``, kept in PostgreSQL for every worker at once."""

    blocking = True  # a database round trip: call it from a worker thread

    def __init__(self, rate: str, engine: Engine) -> None:
        item = parse(rate)
        self.text = str(item)
        self.capacity = float(item.amount)
        self.seconds_per_token = item.get_expiry() / item.amount
        # One statement needs no transaction around it: autocommit saves the COMMIT's round trip.
        self.engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._checks = itertools.count(1)

    def check(self, client: str, cost: int = 1) -> None:
        """Count ``cost`` units of ``client``; a 429 with ``Retry-After`` when short (a refused batch takes nothing)."""
        bucket = {"capacity": self.capacity, "seconds_per_token": self.seconds_per_token}
        with self.engine.connect() as connection:
            granted, tokens = connection.execute(CHECK, {"subject": client[:200], "cost": float(cost), **bucket}).one()
            if next(self._checks) % FORGET_EVERY == 0:
                connection.execute(FORGET_FULL, bucket)
        if not granted:
            raise too_many(self.text, tokens, cost, self.capacity, self.seconds_per_token)
