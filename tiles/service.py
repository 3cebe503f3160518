"""Serving a tile: answer from the cache when the data it was built from has not changed there, else build it.

A tile outside the layer's data (its extent for the versions in force) is empty without a query.
The ETag is a digest of the tile's bytes, so a tile rebuilt with the same content keeps its ETag
and clients holding it get a 304.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine, text

from tiles.address import TileAddress, boxes_overlap
from tiles.cache import CachedTile, TileCache
from tiles.catalog import (
    BUFFER,
    CELLS_TILE_SQL,
    CLUSTER_PIXELS,
    CROWDED_CELL_PIXELS,
    EXTENT,
    LAYERS,
    BuildContext,
    TileFilters,
    TileLayer,
    TileScope,
)
from tiles.connections import TileConnections
from tiles.event_points import Cells, EventPoints, PointFilters, Thresholds
from tiles.settings import TileSettings
from tiles.versions import Box, DataVersions

EXTENT_SQL = {
    "boundary": "SELECT ST_Extent(geom) AS e FROM regions WHERE version_id = :version",
    "posts": "SELECT ST_Extent(geom) AS e FROM police_posts",
    "places": "SELECT ST_Extent(geom) AS e FROM key_places",
    "events": "SELECT ST_Extent(geom) AS e FROM events",
    "rings": (
        "SELECT ST_Extent(ST_Transform(ST_Expand(ST_Transform(geom, :epsg), :radius), 4326)) AS e FROM police_posts"
    ),
}


@dataclass(frozen=True)
class TileAnswer:
    """A tile as served: bytes (empty: nothing there), ETag, and whether the cache answered."""

    body: bytes
    etag: str
    cached: bool


@dataclass(frozen=True)
class Rules:
    """What the service decides and the tiles follow: the metric CRS, ring radii, the warning rule."""

    metric_epsg: int
    rings_m: dict[str, float]
    warning_sql: str
    warnings: Thresholds  # the thresholds behind ``warning_sql``, for the counts kept in memory


class TileService:
    """One per process: the data versions, the extents, the cache and the builder."""

    def __init__(self, engine: Engine, settings: TileSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.versions = DataVersions(engine, self.settings.version_check_s)
        self.cache = TileCache(int(self.settings.cache_mb * 1024 * 1024))
        self.event_points = EventPoints(engine, self.settings.events_reload_s)
        self.connections = TileConnections(engine, self.settings.connections)
        self._extents: dict[tuple[str, Hashable], Box | None] = {}
        self._lock = threading.Lock()

    def tile(
        self, layer_name: str, address: TileAddress, scope: TileScope, filters: TileFilters, rules: Rules
    ) -> TileAnswer:
        """The tile's bytes for this caller's scope and filters, from the cache when still right."""
        layer = LAYERS[layer_name]
        current = self.versions.current()
        tokens = tuple(current[s] for s in layer.sources)
        key = (layer.name, address, scope.key, filters.key)
        box = address.lonlat_bounds(margin=BUFFER / EXTENT)
        entry = self.cache.get(key)
        if entry is not None and self._still_right(layer, entry, tokens, box):
            return TileAnswer(entry.body, entry.etag, cached=True)
        extent = self.extent(layer, current, rules)
        if extent is None or not boxes_overlap(extent, box):
            body = b""
        else:
            body = self.build(layer, address, scope, filters, rules, current)
        built = CachedTile(body, etag_of(body), tokens, time.monotonic())
        self.cache.put(key, built)
        return TileAnswer(built.body, built.etag, cached=False)

    def cached_tile(
        self, layer_name: str, address: TileAddress, scope: TileScope, filters: TileFilters
    ) -> TileAnswer | None:
        """The tile from the cache without touching the database, or None (then call ``tile``).

        Safe on the event loop: it answers only while the versions read last are recent enough.
        """
        current = self.versions.known()
        if current is None:
            return None
        layer = LAYERS[layer_name]
        entry = self.cache.get((layer.name, address, scope.key, filters.key))
        tokens = tuple(current[s] for s in layer.sources)
        box = address.lonlat_bounds(margin=BUFFER / EXTENT)
        if entry is not None and self._still_right(layer, entry, tokens, box):
            return TileAnswer(entry.body, entry.etag, cached=True)
        return None

    def build(
        self,
        layer: TileLayer,
        address: TileAddress,
        scope: TileScope,
        filters: TileFilters,
        rules: Rules,
        current: dict[str, Hashable] | None = None,
        now: datetime | None = None,
    ) -> bytes:
        """Run the layer's query for one tile (no cache); an empty tile is ``b""``; warnings as of ``now``."""
        current = current or self.versions.current()
        context = BuildContext(
            version_id=current["boundary"],  # type: ignore[arg-type]
            metric_epsg=rules.metric_epsg,
            rings_m=rules.rings_m,
            warning_sql=rules.warning_sql,
            now=now or _now(),
            max_features=self.settings.max_features,
            events_cluster_until=self.settings.events_cluster_until,
        )
        if layer.name == "events" and self.settings.events_in_memory:
            one_by_one = address.z >= context.events_cluster_until
            cells = self._event_cells(address, scope, filters, rules, current["events"], context.now,
                                      CROWDED_CELL_PIXELS if one_by_one else CLUSTER_PIXELS)  # fmt: skip
            if not one_by_one or int(cells.count.sum()) > self.settings.events_one_by_one_max:
                return self._cells_tile(address, cells)
        sql, params = layer.build(address, scope, filters, context)
        return bytes(self.connections.scalar(sql, params) or b"")

    def _event_cells(
        self, address: TileAddress, scope: TileScope, filters: TileFilters, rules: Rules, version: Hashable,
        now: datetime, cell_pixels: int,
    ) -> Cells:  # fmt: skip
        """The tile's events (buffer included) counted per cell of ``cell_pixels`` over the events in memory."""
        points = self.event_points
        return points.cells(
            points.columns(version), address.pixel_m * cell_pixels, address.lonlat_bounds(margin=BUFFER / EXTENT),
            scope.events, point_filters(filters), now, rules.warnings,
        )  # fmt: skip

    def _cells_tile(self, address: TileAddress, cells: Cells) -> bytes:
        """Counts per cell, encoded by PostGIS like the SQL aggregate's."""
        if not len(cells.count):
            return b""
        columns = {"xs": cells.mx, "ys": cells.my, "counts": cells.count, "reds": cells.red, "yellows": cells.yellow,
                   "blues": cells.blue}  # fmt: skip
        params = {"z": address.z, "x": address.x, "y": address.y,
                  **{name: array_text(values) for name, values in columns.items()}}  # fmt: skip
        return bytes(self.connections.scalar(CELLS_TILE_SQL, params) or b"")

    def extent(self, layer: TileLayer, current: dict[str, Hashable], rules: Rules) -> Box | None:
        """Bounds (lon/lat) of the layer's data for the versions in force; None when it holds nothing."""
        source = "rings" if layer.name == "rings" else layer.sources[0]
        token = (current[layer.sources[0]], current["boundary"], rules.metric_epsg)
        with self._lock:
            if (source, token) in self._extents:
                return self._extents[(source, token)]
        grown = self._grown_events_extent(token) if source == "events" else None
        if grown is not None:
            found = grown
        elif source == "boundary" and current["boundary"] is None:
            found = None
        else:
            params: dict[str, Any] = {"version": current["boundary"], "epsg": rules.metric_epsg,
                                      "radius": max(rules.rings_m.values())}  # fmt: skip
            query = text(f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM ({EXTENT_SQL[source]}) s")
            with self.engine.connect() as conn:
                row = conn.execute(query, params).one()
            found = None if row[0] is None else (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
        with self._lock:
            self._extents = {k: v for k, v in self._extents.items() if k[0] != source}  # keep only the newest
            self._extents[(source, token)] = found
        return found

    def close(self) -> None:
        """Close the tile queries' own connections (the engine's pool is its owner's to dispose)."""
        self.connections.close()

    def _grown_events_extent(self, token: tuple[Hashable, ...]) -> Box | None:
        """Events only arrive (none is deleted or moved): the old extent plus the new points, without a scan."""
        with self._lock:
            known = [(k[1], v) for k, v in self._extents.items() if k[0] == "events" and v is not None]
        if not known or known[0][0][1:] != token[1:]:
            return None
        (old_token, extent) = known[0]
        added = self.versions.history["events"].changed_since(old_token[0])
        if added is None:
            return None
        xs = [extent[0], extent[2], *(b[0] for b in added), *(b[2] for b in added)]
        ys = [extent[1], extent[3], *(b[1] for b in added), *(b[3] for b in added)]
        return min(xs), min(ys), max(xs), max(ys)

    def _still_right(self, layer: TileLayer, entry: CachedTile, tokens: tuple[Hashable, ...], box: Box) -> bool:
        if "events" in layer.sources and time.monotonic() - entry.built_at > self.settings.events_max_age_s:
            return False
        if entry.versions == tokens:
            return True
        for source, old, new in zip(layer.sources, entry.versions, tokens, strict=True):
            if old == new:
                continue
            if source not in layer.precise or not self.versions.history[source].untouched(old, box):
                return False
        entry.versions = tokens  # carried over: nothing that changed touches this tile
        return True


def point_filters(filters: TileFilters) -> PointFilters:
    """The events filters of a tile request, with the times as epoch seconds."""
    since, until = (None if t is None else datetime.fromisoformat(t).timestamp()
                    for t in (filters.reported_from, filters.reported_to))  # fmt: skip
    return PointFilters(filters.statuses, filters.warnings, filters.category, since, until, filters.owner)


def array_text(values: np.ndarray) -> str:
    """The numbers as PostgreSQL's array text, for a ``CAST(… AS float8[])`` (or ``int[]``).

    psycopg's list dumper looks at each element in Python: 3.8 ms for 1,500 floats, against 2.0 ms
    joining their ``repr`` (which PostgreSQL reads back to the same double); a crowded tile's 1,024
    cells send six such arrays.
    """
    return "{" + ",".join(map(repr, values.tolist())) + "}"


def etag_of(body: bytes) -> str:
    """A strong ETag from the content, so equal tiles share it across versions and processes."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def _now() -> datetime:
    return datetime.now(UTC)
