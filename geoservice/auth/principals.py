"""Who a token's holder is now, kept in the process until the users table says something changed.

Every signed-in request needs its caller's current role and scope, because a disabled account or
a changed scope must take effect without waiting for tokens to expire. Reading them from the
database costs a pool checkout and three round trips: about 3 ms of the 4 ms a signed-in request
took on the 2-core machine, most of a cached tile's time. So each process keeps what it read, and
forgets all of it when PostgreSQL says ``users`` changed (a statement trigger NOTIFYs
``users_changed``; migration 0005).

The cache is trusted only while its watcher is connected and listening. While the connection is
down a notification could be missed, so every request reads the table until the watcher is back
and has emptied the cache. Entries also expire after ``max_age_s``, a bound on staleness should a
connection die without the watcher noticing. A lookup that read the table while a change was
being announced does not store its (possibly old) answer: the generation moved on meanwhile.
"""

from __future__ import annotations

import threading
import time

from psycopg import Notify
from sqlalchemy import Engine

from geoservice.auth.users import Principal, active_principal
from geoservice.infra.database import session_factory
from geoservice.infra.listen import ChannelWatcher

CHANNEL = "users_changed"


class NotCached:
    """Returned by ``PrincipalCache.cached`` when only the database can answer."""


NOT_CACHED = NotCached()


class PrincipalCache:
    """Enabled principals (or None for disabled and unknown users) by username, for one process."""

    def __init__(self, engine: Engine, max_age_s: float) -> None:
        self.max_age_s = max_age_s
        self._sessions = session_factory(engine)
        self._entries: dict[str, tuple[Principal | None, float]] = {}
        self._generation = 0
        self._trusted = False
        self._lock = threading.Lock()
        self._watcher = ChannelWatcher(
            engine, CHANNEL, self._woken, wake_s=5.0, on_listening=self._listening, on_lost=self._lost
        )

    def start(self) -> None:
        """Start listening (on the running event loop); with ``max_age_s`` 0 the cache stays off."""
        if self.max_age_s > 0:
            self._watcher.start()

    async def stop(self) -> None:
        await self._watcher.stop()

    @property
    def trusted(self) -> bool:
        """Whether answers come from memory now (the watcher is listening)."""
        return self._trusted

    def cached(self, username: str) -> Principal | None | NotCached:
        """The principal from memory, or ``NOT_CACHED``; never touches the database (event-loop safe)."""
        entry = self._entries.get(username)
        if entry is None or not self._trusted or time.monotonic() - entry[1] > self.max_age_s:
            return NOT_CACHED
        return entry[0]

    def load(self, username: str) -> Principal | None:
        """Read the user from the database and remember the answer (blocking: run it in a thread)."""
        generation = self._generation
        with self._sessions() as session:
            principal = active_principal(session, username)
        with self._lock:
            if self._trusted and generation == self._generation:
                self._entries[username] = (principal, time.monotonic())
        return principal

    def forget(self, *, trusted: bool | None = None) -> None:
        """Drop every entry (lookups already under way will not store what they read); set ``trusted`` if given."""
        with self._lock:
            self._generation += 1
            self._entries = {}
            if trusted is not None:
                self._trusted = trusted

    def _woken(self, notes: list[Notify]) -> None:
        if notes:
            self.forget()

    def _listening(self) -> None:
        self.forget(trusted=True)

    def _lost(self) -> None:
        self.forget(trusted=False)
