"""The fan-out and delivery loops as daemon threads: inside the API process, or ``geoservice notify run``.

Like the deadline sweep (``events.sweep.PeriodicSweep``): each loop drains its table, then waits
``poll_s``; an error (PostgreSQL restarting) is logged and the next round retries, so nothing queued is
lost while the database is away: it is all rows, read again when it is back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from geoservice.notifications import fanout, outbox
from geoservice.notifications.settings import NotifySettings

log = logging.getLogger(__name__)


class NotifyLoops:
    """Two threads: steps → inbox and outbox (fan-out), outbox → channels (delivery)."""

    def __init__(self, engine: Engine, settings: NotifySettings, gateways: outbox.Gateways | None = None) -> None:
        self.engine, self.settings = engine, settings
        self.gateways = gateways or outbox.Gateways.from_settings(settings)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for name, work in (("notify-fanout", self._fan_out), ("notify-outbox", self._deliver)):
            thread = threading.Thread(target=self._loop, args=(name, work), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self.gateways.webhook is not None:
            self.gateways.webhook.close()

    def wait(self) -> None:
        """Block until ``stop`` (the CLI's foreground run)."""
        self._stop.wait()

    def _fan_out(self) -> int:
        return fanout.drain(self.engine, self.settings, limit=200)

    def _deliver(self) -> int:
        return outbox.drain(self.engine, self.gateways, self.settings, limit=200)

    def _loop(self, name: str, work: Callable[[], int]) -> None:
        while not self._stop.is_set():
            try:
                busy = work() > 0
            except OperationalError as exc:  # the database away or restarting: the rows wait for the next round
                log.warning("%s: database unavailable, retrying: %s", name, str(exc).splitlines()[0])
                busy = False
            except Exception:  # a bug must not end the loop either; it is logged in full
                log.exception("%s round failed; retrying", name)
                busy = False
            if not busy:
                self._stop.wait(self.settings.poll_s)
