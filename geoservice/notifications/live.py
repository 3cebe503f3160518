"""Live push across API workers: one LISTEN per process on ``geoservice_live``, fanned to its open streams.

The trigger on ``event_log`` and the fan-out send ``NOTIFY geoservice_live`` at commit, from whichever
process made the change. Each worker's ``LiveHub`` listens once (``infra.listen.ChannelWatcher``) and
wakes every stream it serves; a woken stream reads what is new *for its caller* from the tables, so
the message carries no data and a stream never sees what its caller's scope hides. A notification
sent while the hub was not listening is lost, so (re)connecting wakes every stream too: they read the
tables, nothing is missed.
"""

from __future__ import annotations

import asyncio
import threading

from psycopg import Notify
from sqlalchemy import Engine

from geoservice.infra.listen import ChannelWatcher

CHANNEL = "geoservice_live"


class LiveHub:
    """Wakes the open streams of this process when anything they may show has changed."""

    def __init__(self, engine: Engine, wake_s: float = 5.0) -> None:
        self._streams: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._lock = threading.Lock()
        self._watcher = ChannelWatcher(engine, CHANNEL, self._on_wake, wake_s=wake_s, on_listening=self.wake_all)

    def start(self) -> None:
        self._watcher.start()

    async def stop(self) -> None:
        await self._watcher.stop()

    def subscribe(self) -> asyncio.Event:
        """An event set whenever the stream should look again (call from the stream's event loop)."""
        woken = asyncio.Event()
        with self._lock:
            self._streams.add((asyncio.get_running_loop(), woken))
        return woken

    def unsubscribe(self, woken: asyncio.Event) -> None:
        with self._lock:
            self._streams = {s for s in self._streams if s[1] is not woken}

    def wake_all(self) -> None:
        with self._lock:
            streams = list(self._streams)
        for loop, woken in streams:
            if not loop.is_closed():
                loop.call_soon_threadsafe(woken.set)

    def _on_wake(self, notes: list[Notify]) -> None:
        if notes:
            self.wake_all()
