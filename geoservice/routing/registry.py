"""Which router answers now, and how a published version reaches every worker without a restart.

Each worker process holds one ``RouterRegistry``. A background thread LISTENs on the
``boundary_version`` channel (``geoservice.boundaries.versions.publish`` NOTIFYs it) and also checks the
version in force every ``version_check_s`` seconds, which catches versions whose ``effective_from``
arrives later and notifications lost while the database was away. When the version changes, the new
router is built beside the old one and swapped in with one reference assignment: a request holds
the router it started with, so every answer comes entirely from one version.

While a new version's router is being built the old one no longer answers: a request that finds
the registry ``behind`` waits for the build (seconds on a large city) rather than answer from
boundaries no longer in force. Reports routed just before the worker heard of the publish are
routed again by ``on_swap`` (the app passes ``boundaries.reroute.reroute_window``).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime

from psycopg import Notify
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from geoservice.boundaries.versions import LAYERS_CHANGED, NOTIFY_CHANNEL, NoVersionInForce, current_version_id
from geoservice.infra.database import session_factory
from geoservice.infra.listen import ChannelWatcher
from geoservice.routing.loader import load_router
from geoservice.routing.router import Router
from geoservice.settings import RoutingSettings

log = logging.getLogger(__name__)
PAST_ROUTERS = 4  # routers of past versions kept for ``at=`` queries


class RouterRegistry:
    """The current router of one process, and a few of past versions."""

    def __init__(
        self,
        engine: Engine,
        settings: RoutingSettings,
        on_swap: Callable[[Router], object] | None = None,
        *,
        long_lived: bool = True,
    ) -> None:
        """One process's routers; ``long_lived``: whether the process keeps them.

        A server keeps its routers, so it gives back what building them left (``Router.settle_memory``);
        a command that routes once and exits (``geoservice route``) does not.
        """
        self.engine = engine
        self.settings = settings
        self.on_swap = on_swap
        self.long_lived = long_lived
        self._in_force: int | None = None  # the version the database last said is in force
        self._sessions = session_factory(engine)
        self._current: Router | None = None
        self._past: OrderedDict[int, Router] = OrderedDict()
        self._build_lock = threading.Lock()
        self._watcher: ChannelWatcher | None = None

    # --- reading -------------------------------------------------------------------------------------
    def current(self) -> Router:
        """The router of the version in force (built on first use when no watcher runs)."""
        router = self._current
        if router is None or self.behind():
            self.refresh()  # waits for the build under way (one build, under the lock)
            router = self._current
        if router is None:
            raise NoVersionInForce("no boundary version is in force yet: import grids and publish a version")
        return router

    def behind(self) -> bool:
        """Whether a newer version is in force than the router answering (its build is under way)."""
        current, in_force = self._current, self._in_force
        return current is not None and in_force is not None and current.version_id != in_force

    def loaded(self) -> Router | None:
        """The router this worker answers from now, without building one."""
        return self._current

    def at(self, instant: datetime | None) -> Router:
        """The router of the version in force at ``instant`` (now when None)."""
        if instant is None:
            return self.current()
        with self._sessions() as session:
            version_id = current_version_id(session, instant)
        if version_id is None:
            raise NoVersionInForce(f"no boundary version was in force at {instant.isoformat()}")
        current = self._current
        if current is not None and current.version_id == version_id:
            return current
        with self._build_lock:
            if version_id not in self._past:
                with self._sessions() as session:
                    self._past[version_id] = self._load(session, version_id)
                while len(self._past) > PAST_ROUTERS:
                    self._past.popitem(last=False)
            self._past.move_to_end(version_id)
            return self._past[version_id]

    # --- keeping current -----------------------------------------------------------------------------
    def refresh(self, *, force: bool = False) -> bool:
        """Swap in a new router if the version in force changed (or ``force``: posts, places or rules did)."""
        with self._sessions() as session:
            version_id = current_version_id(session)
        self._in_force = version_id
        current = self._current
        if version_id is None or (not force and current is not None and current.version_id == version_id):
            return False
        with self._build_lock:
            if not force and self._current is not None and self._current.version_id == version_id:
                return False
            if force:
                self._past.clear()
            with self._sessions() as session:
                router = self._load(session, version_id)
            self._current = router  # one assignment: readers see the old router or the new one
        log.info("router now answers from boundary version %s (%s)", router.version_name, version_id)
        if self.on_swap is not None:  # outside the build lock: a report waiting for it holds the routing lock
            try:
                self.on_swap(router)
            except Exception:  # the next swap (or restart) catches up; answering goes on meanwhile
                log.exception("could not re-route the reports made while version %s was loading", version_id)
        return True

    def _load(self, session: Session, version_id: int) -> Router:
        router = load_router(session, version_id, self.settings)
        if self.long_lived:
            router.settle_memory()
        return router

    def start(self) -> None:
        """Build the current router and start watching for published versions (on the running event loop)."""
        try:
            self.refresh()
        except Exception:  # an empty database is fine: the watcher builds it when a version appears
            log.exception("could not build the router at start")
        self._watcher = ChannelWatcher(self.engine, NOTIFY_CHANNEL, self._woken, wake_s=self.settings.version_check_s)
        self._watcher.start()

    async def stop(self) -> None:
        """Stop the watcher."""
        if self._watcher is not None:
            await self._watcher.stop()

    def _woken(self, notes: list[Notify]) -> None:
        self.refresh(force=any(n.payload == LAYERS_CHANGED for n in notes))
