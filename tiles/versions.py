"""The version of each data source a tile is built from, and what changed between two versions.

A cached tile carries the version of each source it read. When a source moves on, a tile is
rebuilt only if the change touches it: a published boundary version names the grids and regions
that differ from the one before (their old and new bounding boxes), and new or changed events name
their points; a cached tile none of whose boxes meet its envelope (with the tile buffer) is still
right, and is carried over to the new version as it is, with the same ETag. Posts and key places
carry no change list: a change to either rebuilds that layer's tiles (they change rarely).

Versions are read in one round trip, at most every ``check_s`` seconds per process:

* boundary: the id of the version in force now;
* events: the newest event id and the newest event-log id (every workflow step appends to the
  log; imports add new ids), both read from their primary keys;
* posts, places: the row count and the sum of the rows' ``xmin`` (the transaction that last
  wrote each row), which moves on every insert, update or delete.

An event whose transaction commits after a later id was already seen would not move the events
version; events tiles are therefore also rebuilt once they are ``events_max_age_s`` old.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass, field

from sqlalchemy import Engine, text

from tiles.address import boxes_overlap

Box = tuple[float, float, float, float]
SOURCES = ("boundary", "events", "posts", "places")
MAX_CHANGED_BOXES = 5_000  # beyond this many changed features, a change counts as touching everything
KEPT_CHANGES = 256

VERSIONS_SQL = text(
    """
    SELECT (SELECT id FROM boundary_versions WHERE status <> 'draft'
             AND tstzrange(effective_from, effective_to) @> now()) AS boundary,
           (SELECT max(id) FROM events) AS event_id,
           (SELECT max(id) FROM event_log) AS log_id,
           (SELECT count(*) || ':' || coalesce(sum(xmin::text::bigint), 0) FROM police_posts) AS posts,
           (SELECT count(*) || ':' || coalesce(sum(xmin::text::bigint), 0) FROM key_places) AS places
    """
)
# Grids and regions whose drawn content differs between two versions; old and new boxes both count.
BOUNDARY_CHANGES_SQL = text(
    """
    WITH o AS (SELECT code, geom, name || '|' || community_code || '|' || array_to_string(workers, ';') || '|'
                      || coalesce(officer, '') AS attrs FROM grids WHERE version_id = :old
               UNION ALL
               SELECT code, geom, name || '|' || level || '|' || coalesce(parent_code, '') FROM regions
                WHERE version_id = :old),
         n AS (SELECT code, geom, name || '|' || community_code || '|' || array_to_string(workers, ';') || '|'
                      || coalesce(officer, '') AS attrs FROM grids WHERE version_id = :new
               UNION ALL
               SELECT code, geom, name || '|' || level || '|' || coalesce(parent_code, '') FROM regions
                WHERE version_id = :new),
         changed AS (SELECT o.geom AS old_geom, n.geom AS new_geom FROM o FULL JOIN n USING (code)
                      WHERE o.code IS NULL OR n.code IS NULL OR o.attrs <> n.attrs
                         OR ST_AsBinary(o.geom) <> ST_AsBinary(n.geom))
    SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)
      FROM changed, LATERAL (SELECT Box2D(g) AS b FROM (VALUES (old_geom), (new_geom)) AS v(g)
                              WHERE g IS NOT NULL) boxes
    """
)
EVENT_CHANGES_SQL = text(
    """
    SELECT ST_X(geom), ST_Y(geom) FROM events WHERE id > :event_id
    UNION
    SELECT ST_X(e.geom), ST_Y(e.geom) FROM event_log l JOIN events e ON e.id = l.event_id WHERE l.id > :log_id
    LIMIT :cap
    """
)


@dataclass
class SourceHistory:
    """The current version of one source and, for recent versions, what changed on the way here."""

    current: Hashable = None
    changes: dict[Hashable, tuple[Hashable, list[Box] | None]] = field(default_factory=dict)

    def advance(self, new: Hashable, boxes: list[Box] | None) -> None:
        """Record the move to ``new``; ``boxes`` None means the change may touch anything."""
        if new == self.current:
            return
        self.changes[self.current] = (new, boxes)
        self.current = new
        while len(self.changes) > KEPT_CHANGES:
            self.changes.pop(next(iter(self.changes)))

    def changed_since(self, old: Hashable) -> list[Box] | None:
        """Every box changed from ``old`` to the current version; None when that is not known."""
        boxes: list[Box] = []
        while old != self.current:
            step = self.changes.get(old)
            if step is None or step[1] is None or len(boxes) > KEPT_CHANGES * MAX_CHANGED_BOXES:
                return None
            boxes += step[1]
            old = step[0]
        return boxes

    def untouched(self, old: Hashable, box: Box) -> bool:
        """Whether every change from ``old`` to the current version stays clear of ``box``."""
        seen = 0
        while old != self.current:
            step = self.changes.get(old)
            if step is None or step[1] is None or seen > KEPT_CHANGES:
                return False
            if any(boxes_overlap(box, changed) for changed in step[1]):
                return False
            old, seen = step[0], seen + 1
        return True


class DataVersions:
    """Per-process view of the sources' versions, refreshed at most every ``check_s`` seconds."""

    def __init__(self, engine: Engine, check_s: float) -> None:
        self.engine = engine
        self.check_s = check_s
        self.history = {source: SourceHistory() for source in SOURCES}
        self._raw: dict[str, Hashable] = {}
        self._checked_at = float("-inf")
        self._lock = threading.Lock()
        self._ahead = False
        self._ahead_lock = threading.Lock()

    def current(self) -> dict[str, Hashable]:
        """The version of every source now (read from the database when the last read is too old)."""
        if time.monotonic() - self._checked_at >= self.check_s:
            with self._lock:
                if time.monotonic() - self._checked_at >= self.check_s:
                    self._refresh()
        return {source: history.current for source, history in self.history.items()}

    def known(self) -> dict[str, Hashable] | None:
        """The versions as last read, if that read is recent enough to trust; None when a read is due."""
        if time.monotonic() - self._checked_at >= self.check_s:
            return None
        return {source: history.current for source, history in self.history.items()}

    def refresh_ahead(self) -> bool:
        """Whether to read the versions now, off the request path, while the last read is still trusted.

        A busy server then never answers a request late for a version read: past half of
        ``check_s`` one caller (the first to ask) is told to start ``current`` in the background.
        """
        if self.check_s <= 0 or self._ahead or time.monotonic() - self._checked_at < self.check_s / 2:
            return False
        # Not ``_lock``: a read holds that through its round trip, and this runs on the event loop.
        with self._ahead_lock:
            if self._ahead:
                return False
            self._ahead = True
            return True

    def read_ahead(self) -> None:
        """Read the versions now, as ``refresh_ahead`` asked (blocking: run it in a thread)."""
        try:
            with self._lock:
                self._refresh()
        finally:
            self._ahead = False

    def _refresh(self) -> None:
        with self.engine.connect() as conn:
            row = conn.execute(VERSIONS_SQL).one()
            raw: dict[str, Hashable] = {
                "boundary": row.boundary,
                "events": (row.event_id, row.log_id),
                "posts": row.posts,
                "places": row.places,
            }
            first = not self._raw
            for source, token in raw.items():
                if first:
                    self.history[source].current = token
                elif token != self._raw[source]:
                    self.history[source].advance(token, self._changes(conn, source, self._raw[source], token))
        self._raw = raw
        self._checked_at = time.monotonic()

    def _changes(self, conn: object, source: str, old: Hashable, new: Hashable) -> list[Box] | None:
        if source == "boundary" and old is not None and new is not None:
            rows = conn.execute(BOUNDARY_CHANGES_SQL, {"old": old, "new": new}).all()  # type: ignore[attr-defined]
            return [tuple(r) for r in rows] if len(rows) <= MAX_CHANGED_BOXES else None
        if source == "events" and isinstance(old, tuple) and isinstance(new, tuple):
            params = {"event_id": old[0] or 0, "log_id": old[1] or 0, "cap": MAX_CHANGED_BOXES + 1}
            rows = conn.execute(EVENT_CHANGES_SQL, params).all()  # type: ignore[attr-defined]
            return [(x, y, x, y) for x, y in rows] if len(rows) <= MAX_CHANGED_BOXES else None
        return None
