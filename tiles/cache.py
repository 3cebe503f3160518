"""An in-process LRU of built tiles, bounded in bytes, each entry stamped with the data versions it read."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass
class CachedTile:
    """A built tile: its bytes (empty: nothing to draw), ETag, the versions it was built from, when."""

    body: bytes
    etag: str
    versions: tuple[Hashable, ...]
    built_at: float


class TileCache:
    """Least recently used tiles first out once ``max_bytes`` is reached; safe across threads."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[Hashable, CachedTile] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> CachedTile | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: Hashable, tile: CachedTile) -> None:
        size = len(tile.body) + 200  # the key and the entry's own weight, roughly
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= len(old.body) + 200
            self._entries[key] = tile
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self.bytes -= len(evicted.body) + 200

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)
