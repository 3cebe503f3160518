"""Every event as a handful of numbers in memory, so that a low-zoom events tile is counted, not scanned.

Below the cluster zoom an events tile carries counts per cell. At zoom 8 one tile holds the whole
city, and PostgreSQL visits each of its 50,000 events at about a microsecond apiece on the 2-core
machine: 57 ms for the tile, measured, against a 50 ms target that includes HTTP. The same count
over columns in memory takes a millisecond or two; PostGIS still encodes the tile from the cells.

The columns follow the events table: loaded whole at first use, brought up to date from the rows
that changed whenever the events version moves (new ids, new log entries: every workflow step
writes the log, and a transaction committing up to ``LOOKBACK`` ids late is still caught), and
reloaded whole in the background every ``reload_s`` (``GEOSERVICE_TILE_EVENTS_RELOAD_S``), the
bound for a transaction that commits later still. That reload used to follow the tiles' one-minute
age; on a million events it costs the database 4–5 s and the worker ~1 s, which every minute was
a steady share of a core and the p99 of every tile that met it (issue 22), so it is ten minutes.
The filter, scope and warning rules here are those of ``geoservice.events`` (the SQL in
``tiles.catalog``, ``warning_sql``); ``tests/tiles/test_event_points.py`` checks that both count
the same cells.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from psycopg.rows import namedtuple_row
from sqlalchemy import Engine

log = logging.getLogger(__name__)
# One row of arrays rather than 50,000 rows: psycopg turns each array into a list in C, which makes
# a reload of the whole table several times cheaper than building a Python row per event. All the
# aggregates of one query read the rows in the same order; ``Columns.sorted`` then orders by id.
COLUMNS = (
    "SELECT coalesce(array_agg(e.id), '{}') AS id, "
    "coalesce(array_agg(ST_X(e.geom)), '{}') AS lon, "
    "coalesce(array_agg(ST_Y(e.geom)), '{}') AS lat, "
    "coalesce(array_agg(e.status::text), '{}') AS status, "
    "coalesce(array_agg(e.category_code::text), '{}') AS category, "
    "coalesce(array_agg(coalesce(e.grid_code, e.community_code, e.town_code, '')), '{}') AS place, "
    "coalesce(array_agg(coalesce(e.department_code, '')), '{}') AS department, "
    "coalesce(array_agg(coalesce(co.departments, '')), '{}') AS co_departments, "
    "coalesce(array_agg(coalesce(e.reporter_username, '')), '{}') AS reporter, "
    "coalesce(array_agg(coalesce(e.owner_kind || ':' || e.owner_code, '')), '{}') AS owner, "
    + ", ".join(f"coalesce(array_agg(coalesce(date_part('epoch', e.{column}), 'NaN')), '{{}}') AS {name}"
                for column, name in (("reported_at", "reported"), ("accept_due_at", "accept_due"),
                                     ("handle_due_at", "handle_due"), ("dispatched_at", "dispatched")))
    + " FROM events e LEFT JOIN ("
    # The departments co-handling an event while their task is live, as ",a,b,"
    # (``auth.scope.department_scope_sql`` lets them see it).
    "SELECT event_id, ',' || string_agg(department_code, ',' ORDER BY department_code) || ',' AS departments "
    "FROM event_tasks WHERE status IN ('open', 'handling') GROUP BY event_id) co ON co.event_id = e.id"
)  # fmt: skip
TOKEN = "SELECT (SELECT max(id) FROM events) AS event_id, (SELECT max(id) FROM event_log) AS log_id"
# Changed since a token: new events and events with new log entries, looking back LOOKBACK ids on
# both, so that a transaction committing after a later id was seen is still caught next time.
CHANGED = (
    " WHERE e.id > %(event_id)s - {lookback}"
    " OR e.id IN (SELECT event_id FROM event_log WHERE id > %(log_id)s - {lookback})"
)
LOOKBACK = 1_000
HANDLING_STATES = ("dispatched", "handling", "reopened")
SCOPE_MASKS = 16  # caller scopes whose masks are kept
RUNNING = "running clocks"  # the key of the running clocks among what is derived from the columns


class Codes:
    """Strings as small integers, so that a filter on them is one comparison per event.

    A code never changes once given, so columns encoded earlier stay valid as names are added.
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self._index: dict[str, int] = {}
        self._lock = threading.Lock()  # a background reload and a request may encode at once

    def encode(self, values: Sequence[str]) -> np.ndarray:
        # Names first (a few hundred distinct among a million values), then one C-level lookup per value:
        # the loop that did both for each value held the GIL for 3 s of every million-event reload.
        with self._lock:
            index = self._index
            for value in dict.fromkeys(values):
                if value not in index:
                    index[value] = len(self.names)
                    self.names.append(value)
            return np.fromiter(map(index.__getitem__, values), dtype=np.int32, count=len(values))

    def accepted(self, keep: Callable[[str], bool], codes: np.ndarray) -> np.ndarray:
        """Which of ``codes`` name something ``keep(name)`` accepts: one lookup per value in a table of the names.

        For the 300,000 events of a county-wide zoom-10 tile against 1,800 accepted places, ``np.isin``
        took 2.2 ms and the table 1.5 ms plus 0.4 to build it (measured): a little less, and one rule
        for every name column.
        """
        names = list(self.names)  # a snapshot: names are only ever appended
        table = np.fromiter((bool(keep(name)) for name in names), dtype=bool, count=len(names))
        return table[codes]


@dataclass(frozen=True)
class EventScope:
    """Which events a caller may see, as the service's events scope says (``geoservice.events.queries``)."""

    everything: bool = False
    region_prefix: str | None = None
    department_code: str | None = None
    reporter_username: str | None = None


@dataclass(frozen=True)
class Thresholds:
    """The warning colours' fractions of a running deadline (the service's ``GEOSERVICE_WARNING_*``)."""

    blue: float
    yellow: float
    red: float


@dataclass(frozen=True)
class Columns:
    """The events as arrays, one entry per event, sorted by id; times in epoch seconds (NaN: none)."""

    id: np.ndarray
    mx: np.ndarray  # Web Mercator metres, by the spherical formula the SQL aggregate uses
    my: np.ndarray
    # The point's box as PostGIS stores it (float32, see ``float_box``), each bound a column of its own:
    # comparing contiguous arrays is 5× faster than comparing columns of an (n, 2) array (measured).
    lon_low: np.ndarray
    lon_high: np.ndarray
    lat_low: np.ndarray
    lat_high: np.ndarray
    status: np.ndarray
    category: np.ndarray
    place: np.ndarray
    department: np.ndarray
    co_departments: np.ndarray
    reporter: np.ndarray
    owner: np.ndarray
    reported: np.ndarray
    accept_due: np.ndarray
    handle_due: np.ndarray
    dispatched: np.ndarray

    def merged(self, changed: Columns) -> Columns:
        """These columns with ``changed``'s rows replacing the rows of the same id, new ids added."""
        if not len(self.id):
            return changed
        at = np.searchsorted(self.id, changed.id)
        known = (at < len(self.id)) & (self.id[np.minimum(at, len(self.id) - 1)] == changed.id)
        fields = {}
        for name in self.__dataclass_fields__:
            old, new = getattr(self, name), getattr(changed, name)
            column = old.copy()
            column[at[known]] = new[known]
            fields[name] = np.concatenate([column, new[~known]])
        return Columns(**fields).sorted()

    def sorted(self) -> Columns:
        """The same events in order of id (what ``merged`` searches)."""
        order = np.argsort(self.id, kind="stable")
        return Columns(**{name: getattr(self, name)[order] for name in self.__dataclass_fields__})


@dataclass(frozen=True)
class Cells:
    """Counts per cell of one tile: where each cell's events are on average, and their warnings."""

    mx: np.ndarray
    my: np.ndarray
    count: np.ndarray
    red: np.ndarray
    yellow: np.ndarray
    blue: np.ndarray


@dataclass(frozen=True)
class PointFilters:
    """The events tile filters, parsed: states, warning colours, category, reported from/to (epoch s), owner."""

    statuses: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    category: str | None = None
    reported_from: float | None = None
    reported_to: float | None = None
    owner: str | None = None


class EventPoints:
    """The events of one process's tile service, in memory, kept as current as the events version."""

    def __init__(self, engine: Engine, reload_s: float) -> None:
        self.engine = engine
        self.reload_s = reload_s
        self.statuses, self.categories, self.places = Codes(), Codes(), Codes()
        self.departments, self.reporters, self.owners, self.co_departments = Codes(), Codes(), Codes(), Codes()
        self._columns: Columns | None = None
        self._token: tuple[int, int] = (0, 0)
        self._synced_with: Hashable = None
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()
        self._reloading = False
        # What tiles derive from the columns in hand and reuse until they change (``_derived``): each recent
        # caller scope's mask, and the running clocks. The columns are held weakly: their successor must
        # not keep them alive.
        self._derived: tuple[weakref.ref[Columns] | None, dict[Hashable, Any]] = (None, {})

    def columns(self, version: Hashable) -> Columns:
        """The columns as of at least ``version`` (the events version the tile service read)."""
        with self._lock:
            if self._columns is None:
                self._columns, self._token = self._read(None)
                self._loaded_at = time.monotonic()
            elif version != self._synced_with:
                changed, self._token = self._read(self._token)
                if len(changed.id):
                    self._columns = self._columns.merged(changed)
            self._synced_with = version
            columns = self._columns
            stale = time.monotonic() - self._loaded_at > self.reload_s and not self._reloading
            if stale:
                self._reloading = True
        if stale:
            threading.Thread(target=self._reload, name="event-points-reload", daemon=True).start()
        return columns

    def cells(
        self,
        columns: Columns,
        cell_m: float,
        search: tuple[float, float, float, float],
        scope: EventScope,
        filters: PointFilters,
        now: datetime,
        thresholds: Thresholds,
    ) -> Cells:
        """Count the events in ``search`` (lon/lat) that the scope and filters keep, per cell of ``cell_m``."""
        box = float_box(np.asarray(search, dtype=np.float64))  # rows west, south, east, north; columns down, up
        west, south, east, north = box[0, 0], box[1, 0], box[2, 1], box[3, 1]  # the envelope rounded outward
        # The box first, over every event, and the caller's scope (its mask is kept); each later test reads
        # only the rows still in (at zoom 14 a tile holds a few hundredths of a county's events).
        inside = (columns.lon_high >= west) & (columns.lon_low <= east)
        inside &= (columns.lat_high >= south) & (columns.lat_low <= north)
        if not scope.everything:
            inside &= self._scope_mask(columns, scope)
        rows = np.flatnonzero(inside)
        if filters.statuses:
            rows = rows[self.statuses.accepted(lambda s: s in filters.statuses, columns.status[rows])]
        if filters.category:
            wanted, children = filters.category, filters.category + "."
            family = self.categories.accepted(lambda c: c == wanted or c.startswith(children), columns.category[rows])
            rows = rows[family]
        if filters.owner:
            rows = rows[self.owners.accepted(lambda o: o == filters.owner, columns.owner[rows])]
        if filters.reported_from is not None:
            rows = rows[columns.reported[rows] >= filters.reported_from]
        if filters.reported_to is not None:
            rows = rows[columns.reported[rows] < filters.reported_to]
        colour = self._warnings(columns, rows, now.timestamp(), thresholds)
        if filters.warnings:
            wanted_colour = np.isin(colour, [WARNING_CODE[w] for w in filters.warnings])
            rows, colour = rows[wanted_colour], colour[wanted_colour]
        mx, my = columns.mx[rows], columns.my[rows]
        if not len(mx):
            return Cells(mx, my, *(np.zeros(0, dtype=np.int64) for _ in range(4)))
        # A tile spans about 130 cells each way: number them densely and count with bincount, in one pass.
        cx, cy = np.floor(mx / cell_m).astype(np.int64), np.floor(my / cell_m).astype(np.int64)
        cx, cy = cx - cx.min(), cy - cy.min()
        cell = cx * (cy.max() + 1) + cy
        count = np.bincount(cell)
        used = np.flatnonzero(count)
        sums = [np.bincount(cell, weights=values)[used] for values in (mx, my)]
        coloured = colour > 0  # few: only running clocks have a colour
        cell_of, colour_of = cell[coloured], colour[coloured]
        tallies = [np.bincount(cell_of[colour_of == WARNING_CODE[c]], minlength=len(count))[used].astype(np.int64)
                   for c in ("red", "yellow", "blue")]  # fmt: skip
        count = count[used]
        return Cells(sums[0] / count, sums[1] / count, count, *tallies)

    # --- reading ---------------------------------------------------------------------------------
    def _read(self, since: tuple[int, int] | None) -> tuple[Columns, tuple[int, int]]:
        """All events (``since`` None) or those changed since a token, and the token they are current to."""
        query = COLUMNS + ("" if since is None else CHANGED.format(lookback=LOOKBACK))
        params = {} if since is None else {"event_id": since[0], "log_id": since[1]}
        with self.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            driver = conn.connection.driver_connection  # binary arrays: half the time of text (measured)
            with driver.cursor(binary=True, row_factory=namedtuple_row) as cursor:  # type: ignore[union-attr]
                row = cursor.execute(query, params).fetchone()
                event_id, log_id = cursor.execute(TOKEN).fetchone()
            conn.rollback()
        return self._columns_of(row), (int(event_id or 0), int(log_id or 0))

    def _reload(self) -> None:
        try:
            columns, token = self._read(None)
            with self._lock:
                self._columns, self._token, self._synced_with = columns, token, None
                self._loaded_at = time.monotonic()
        except Exception:  # the next tile tries again; the columns in hand stay in use meanwhile
            log.exception("could not reload the events for low-zoom tiles")
        finally:
            self._reloading = False

    def _columns_of(self, row: Any) -> Columns:
        lon, lat = np.asarray(row.lon, dtype=np.float64), np.asarray(row.lat, dtype=np.float64)
        columns = Columns(
            id=np.asarray(row.id, dtype=np.int64),
            mx=lon * 20037508.342789244 / 180.0,
            my=np.log(np.tan(math.pi / 4 + np.radians(lat) / 2)) * 6378137.0,
            **dict(zip(("lon_low", "lon_high"), np.ascontiguousarray(float_box(lon).T), strict=True)),
            **dict(zip(("lat_low", "lat_high"), np.ascontiguousarray(float_box(lat).T), strict=True)),
            status=self.statuses.encode(row.status),
            category=self.categories.encode(row.category),
            place=self.places.encode(row.place),
            department=self.departments.encode(row.department),
            co_departments=self.co_departments.encode(row.co_departments),
            reporter=self.reporters.encode(row.reporter),
            owner=self.owners.encode(row.owner),
            **{name: np.asarray(getattr(row, name), dtype=np.float64)
               for name in ("reported", "accept_due", "handle_due", "dispatched")},
        )  # fmt: skip
        return columns.sorted()

    # --- rules -----------------------------------------------------------------------------------
    def _derived_from(self, columns: Columns) -> dict[Hashable, Any]:
        """What was derived from ``columns`` so far; a fresh dict once the columns in hand are others."""
        held, derived = self._derived
        if held is None or held() is not columns:
            derived = {}
            self._derived = (weakref.ref(columns), derived)  # one assignment: a thread reads the old pair or the new
        return derived

    def _scope_mask(self, columns: Columns, scope: EventScope) -> np.ndarray:
        """Which of all the events ``scope`` keeps (a byte an event), kept for its next tile.

        Testing the scope on a zoom-10 tile's rows took 2.6 ms of its 17 (measured).
        """
        derived = self._derived_from(columns)
        mask = derived.get(scope)
        if mask is None:
            mask = self._in_scope(columns, scope)
            if len(derived) > SCOPE_MASKS:
                derived.clear()  # a few scopes are in use at once: no order worth keeping
            derived[scope] = mask
        return mask

    def _in_scope(self, columns: Columns, scope: EventScope) -> np.ndarray:
        """``geoservice.events.queries.scope_sql``, over the columns: which events the caller may see."""
        if scope.everything:
            return np.ones(len(columns.id), dtype=bool)
        if scope.region_prefix is not None:
            prefix = scope.region_prefix
            return self.places.accepted(lambda p: p.startswith(prefix), columns.place)
        if scope.department_code is not None:
            lead = self.departments.accepted(lambda d: d == scope.department_code, columns.department)
            listed = f",{scope.department_code},"
            return lead | self.co_departments.accepted(lambda c: listed in c, columns.co_departments)
        if scope.reporter_username is not None:
            return self.reporters.accepted(lambda r: r == scope.reporter_username, columns.reporter)
        return np.zeros(len(columns.id), dtype=bool)

    def _warnings(self, columns: Columns, rows: np.ndarray, now: float, thresholds: Thresholds) -> np.ndarray:
        """``warning_sql`` over the columns: a colour code for each of ``rows``.

        Only running clocks have a colour, so the colours are worked out for those alone (found once
        per columns object) and then read for the tile's rows: at zoom 10 a tile holds 400,000 events
        and testing each one's state took 3.4 ms of the tile's 17 (measured), the lookup 0.4.
        """
        running, reported = self._running_clocks(columns)
        accept_due, handle_due = columns.accept_due[running], columns.handle_due[running]
        reported_at, dispatched = columns.reported[running], columns.dispatched[running]
        accept = reported & ~np.isnan(accept_due)
        handle = ~reported & ~np.isnan(handle_due) & ~np.isnan(dispatched)
        timed = accept | handle
        colour = np.zeros(len(columns.id), dtype=np.int8)
        if timed.any():
            start = np.where(accept, reported_at, dispatched)[timed]
            due = np.where(accept, accept_due, handle_due)[timed]
            span = due - start
            with np.errstate(divide="ignore", invalid="ignore"):
                used = np.where(span != 0, (now - start) / np.where(span != 0, span, 1.0), np.inf)
            codes = np.zeros(len(used), dtype=np.int8)
            codes[used >= thresholds.blue] = WARNING_CODE["blue"]
            codes[used >= thresholds.yellow] = WARNING_CODE["yellow"]
            codes[(used >= thresholds.red) | (now >= due)] = WARNING_CODE["red"]
            colour[running[timed]] = codes
        return colour[rows]

    def _running_clocks(self, columns: Columns) -> tuple[np.ndarray, np.ndarray]:
        """The rows whose state runs a clock ("reported", or one of ``HANDLING_STATES``), and which are "reported"."""
        derived = self._derived_from(columns)
        known = derived.get(RUNNING)
        if known is None:
            reported = self.statuses.accepted(lambda s: s == "reported", columns.status)
            handling = self.statuses.accepted(lambda s: s in HANDLING_STATES, columns.status)
            running = np.flatnonzero(reported | handling)
            known = derived[RUNNING] = (running, reported[running])
        return known


WARNING_CODE = {"none": 0, "blue": 1, "yellow": 2, "red": 3}


def float_box(values: np.ndarray) -> np.ndarray:
    """Each value as PostGIS keeps it in a bounding box: the float32 interval around it, rounded outward.

    ``&&`` compares those boxes, so a point a float32 step outside a tile's search envelope is
    still found in SQL; comparing the same intervals here finds exactly the same events.
    """
    single = values.astype(np.float32)
    back = single.astype(np.float64)
    down = np.where(back <= values, single, np.nextafter(single, np.float32(-np.inf)))
    up = np.where(back >= values, single, np.nextafter(single, np.float32(np.inf)))
    return np.stack([down, up], axis=-1)



