"""A task on the server's event loop that LISTENs on one PostgreSQL channel and survives restarts.

Workers learn of changes made by other processes (a published boundary version, a disabled
account) through NOTIFY. Two things make that subtle, and this class handles both once: a
notification sent while the watcher is not connected is lost for good, so whoever relies on it is
told when listening starts (``on_listening``: reload, forget what was cached) and when it stops
(``on_lost``: stop trusting what was cached); and the watcher must keep retrying rather than die
with the connection.

It waits on the event loop rather than in a thread of its own: a thread waking to poll would take
the GIL from the requests being served (measurable in their tail latency), and a task stops at once.
The callbacks may block (building a router takes a second), so they run in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg
from psycopg import Notify
from sqlalchemy import Engine

log = logging.getLogger(__name__)


def conninfo(engine: Engine) -> str:
    """A libpq connection string for the engine's database (for connections outside the pool)."""
    url = engine.url
    return psycopg.conninfo.make_conninfo(
        host=url.host or "", port=url.port or 5432, user=url.username or "",
        password=url.password or "", dbname=url.database or "",
    )  # fmt: skip


class ChannelWatcher:
    """LISTEN on ``channel``; call ``on_wake`` with the notifications, or with none every ``wake_s`` seconds."""

    def __init__(
        self,
        engine: Engine,
        channel: str,
        on_wake: Callable[[list[Notify]], None],
        *,
        wake_s: float,
        on_listening: Callable[[], None] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.channel = channel
        self.on_wake = on_wake
        self.wake_s = wake_s
        self.on_listening = on_listening
        self.on_lost = on_lost
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start watching (call from the running event loop, e.g. the app's lifespan)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"listen-{self.channel}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo(self.engine), autocommit=True) as conn:
                    await conn.execute(f"LISTEN {self.channel}")
                    if self.on_listening is not None:
                        await asyncio.to_thread(self.on_listening)
                    while True:
                        # Wake on a notification or after wake_s, whichever comes first.
                        notes = [n async for n in conn.notifies(timeout=self.wake_s, stop_after=1)]
                        await asyncio.to_thread(self.on_wake, notes)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database restarting must not kill the watcher
                log.exception("watcher of %s lost its connection; retrying", self.channel)
                if self.on_lost is not None:
                    self.on_lost()
                await asyncio.sleep(self.wake_s)
