"""A background thread that LISTENs on one PostgreSQL channel and survives the database restarting.

Workers learn of changes made by other processes (a published boundary version, a disabled
account) through NOTIFY. Two things make that subtle, and this class handles both once: a
notification sent while the watcher is not connected is lost for good, so whoever relies on it is
told when listening starts (``on_listening``: reload, forget what was cached) and when it stops
(``on_lost``: stop trusting what was cached); and the watcher must keep retrying rather than die
with the connection.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import psycopg
from psycopg import Notify
from sqlalchemy import Engine

log = logging.getLogger(__name__)
POLL_S = 0.25  # how long a wait for notifications lasts, so that ``stop`` never waits for a whole ``wake_s``


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
        name: str | None = None,
    ) -> None:
        self.engine = engine
        self.channel = channel
        self.on_wake = on_wake
        self.wake_s = wake_s
        self.on_listening = on_listening
        self.on_lost = on_lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name or f"listen-{channel}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.wake_s + 5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(conninfo(self.engine), autocommit=True) as conn:
                    conn.execute(f"LISTEN {self.channel}")
                    if self.on_listening is not None:
                        self.on_listening()
                    woken = time.monotonic()
                    while not self._stop.is_set():
                        # Wake on a notification or after wake_s, whichever comes first.
                        notes = list(conn.notifies(timeout=POLL_S, stop_after=1))
                        if notes or time.monotonic() - woken >= self.wake_s:
                            self.on_wake(notes)
                            woken = time.monotonic()
            except Exception:  # the database restarting must not kill the watcher
                log.exception("watcher of %s lost its connection; retrying", self.channel)
                if self.on_lost is not None:
                    self.on_lost()
                self._stop.wait(self.wake_s)
