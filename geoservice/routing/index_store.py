"""The router cache's second tier: built indexes kept in the database, for every machine that reads it.

The cache directory (``geoservice.routing.index_cache``) is one machine's. A machine that has neither
published a version nor served it (a planner's laptop running ``geoservice route``, a new API server,
a batch host) found it empty and built the grid index itself: on the county, a 1,000,000-point
``route`` then took 1.7-1.8x the geopandas script's time instead of 2.4x (issue 23). The index
depends only on the boundaries, and the boundaries live in the database, so the built arrays are
kept there too, under the same key: a process that misses its directory asks the database before it
builds, and a process that builds offers its arrays to the database.

What is stored is exactly what the directory holds — each array's ``.npy`` bytes and the
``meta.json`` text with their CRC-32 — and it is written into the directory and read back through
the directory's own checks, so an entry damaged in the database is ignored and rebuilt, as a damaged
file is. The database is a cache here, never a source: every failure (an older schema, a read-only
role, the database away) is one log line, and the index is built as before. Reading an entry marks
it used; the ``KEEP`` most recently used stay (drafts' indexes, built for impact reports, come and
go).

A build's offer is written by a thread of its own (``offer``) while the process that built it goes
on to answer: a prefecture's entry takes 0.22-0.24 s to write, which the first ``route`` of a version
nobody had built paid before routing a point (issue 23). A read of a key waits for this process's
offer of that key, so a process always finds what it offered.

Each call takes its own autocommit connection for the moment it needs: never the caller's
transaction, which may be a publish or a request that should not wait on, or fail with, a cache write.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

KEEP = 32  # entries kept in the database: a grid and a station index for the versions in use and a few past
FILES = ("cells", "boundary_cells", "offsets", "candidates")  # index_cache.ARRAYS, one bytea column each
# Reading an entry marks it used: the least recently used go first when the table is pruned.
TAKE = (
    "COPY (UPDATE router_index_entries SET used_at = now() WHERE key = %(key)s "
    f"RETURNING meta, {', '.join(FILES)}) TO STDOUT (FORMAT BINARY)"
)
# A key is only ever built into the same bytes, so a write replaces what the key held: an entry that
# did not read back (damaged) is replaced by the build that followed it. Written by COPY, streamed.
REPLACE = "DELETE FROM router_index_entries WHERE key = %(key)s"
COPY_IN = f"COPY router_index_entries (key, meta, {', '.join(FILES)}) FROM STDIN (FORMAT BINARY)"
PRUNE = (
    "DELETE FROM router_index_entries WHERE key NOT IN "
    "(SELECT key FROM router_index_entries ORDER BY used_at DESC, key LIMIT %(keep)s)"
)
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)  # binary COPY: signature, flags, no extension
COPY_BLOCK = 1 << 20  # bytes handed to libpq at a time
# One writer per process, in the order offered; its thread is joined when the interpreter exits (a
# ``route`` command's offer is written before the command returns to the shell).
_OFFERS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="router-index-offer")
_offered: dict[str, Future[bool]] = {}  # by key, until written: what a read of that key waits for


@dataclass(frozen=True)
class StoredEntry:
    """One cache entry as files: ``meta.json``'s text and each array's ``.npy`` bytes, by array name.

    The bytes may be a view of a mapped file: a prefecture's 58 MB are then sent without a copy.
    """

    meta: str
    files: dict[str, bytes | memoryview]


class DatabaseIndexStore:
    """Cache entries in ``router_index_entries`` (migration 0021), keyed as the directory's are."""

    def __init__(self, engine: Engine, keep: int = KEEP) -> None:
        self.engine = engine
        self.keep = keep

    def get_into(self, key: str, directory: Path) -> bool:
        """Write the entry stored under ``key`` into ``directory`` (its ``.npy`` files and ``meta.json``).

        False when none is stored, or the database could not say. Streamed by binary COPY into the
        files: read as one row, a prefecture's 58 MB were held in libpq's result and again as Python
        bytes (its ``load_router`` from the copy peaked at +228 MB above the imports, now +186-190).
        """
        if (offered := _offered.get(key)) is not None:
            offered.result()
        try:
            with self._connection() as conn:
                driver = conn.connection.driver_connection
                with driver.cursor() as cursor, cursor.copy(TAKE, {"key": key}) as copy:  # type: ignore[union-attr]
                    stream = _CopyStream(iter(copy))
                    found = stream.row_into(directory)
                    stream.drain()
                conn.invalidate()  # see _connection
        except (SQLAlchemyError, psycopg.Error, ValueError) as exc:
            log.warning("router index store unreadable (%s): building the index", _first_line(exc))
            return False
        return found

    def put(self, key: str, entry: StoredEntry) -> bool:
        """Keep an entry under ``key`` (replacing what was there); False when it could not be written.

        Streamed by binary COPY, a megabyte at a time: as one INSERT's parameters the entry was held
        twice more, as bytes read from the files and in libpq's message (a prefecture's first
        ``load_router`` peaked 90-110 MB higher with the offer than without it: measured).
        """
        try:
            with self._connection() as conn:
                driver = conn.connection.driver_connection
                with driver.transaction(), driver.cursor() as cursor:  # type: ignore[union-attr]
                    cursor.execute(REPLACE, {"key": key})
                    with cursor.copy(COPY_IN) as copy:
                        for block in _copy_row(key, entry):
                            copy.write(block)
                    cursor.execute(PRUNE, {"keep": self.keep})
                conn.invalidate()  # see _connection
        except psycopg.errors.UniqueViolation:
            return True  # another process stored the same key meanwhile: the same bytes
        except (SQLAlchemyError, psycopg.Error) as exc:
            log.warning("could not keep the router index in the database (%s)", _first_line(exc))
            return False
        return True

    def offer(self, key: str, read: Callable[[], StoredEntry | None]) -> Future[bool]:
        """Keep what ``read`` gives under ``key``, read and written in the background; its ``put``'s answer."""

        def keep() -> bool:
            entry = read()
            return entry is not None and self.put(key, entry)

        offered = _offered[key] = _OFFERS.submit(keep)
        offered.add_done_callback(lambda done: _offered.pop(key, None) if _offered.get(key) is done else None)
        return offered

    def _connection(self) -> Connection:
        """A connection of the engine's, closed after use rather than pooled.

        libpq keeps a connection's buffers at the largest message it has carried: a prefecture's
        entry left ~55 MB in a server worker's memory for as long as the pooled connection lived
        (measured: 350 against 295 MB RSS after start). A new connection later costs a few ms.
        """
        return self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")


# The binary COPY format by hand (a header, field lengths, the trailer), both ways: psycopg's own
# ``Copy.write_row`` formats a whole row into one buffer and ``read_row`` loads each field as bytes,
# which is the second copy of a prefecture's 58 MB this module exists to avoid.
def _copy_row(key: str, entry: StoredEntry) -> Iterator[bytes | memoryview]:
    """One row in PostgreSQL's binary COPY format, its large fields in blocks (no copy of the whole)."""
    fields: list[bytes | memoryview] = [key.encode(), entry.meta.encode(), *(entry.files[name] for name in FILES)]
    yield COPY_SIGNATURE + struct.pack("!h", len(fields))
    for value in fields:
        view = memoryview(value).cast("B")
        yield struct.pack("!i", view.nbytes)
        for start in range(0, view.nbytes, COPY_BLOCK):
            yield view[start : start + COPY_BLOCK]
    yield struct.pack("!h", -1)  # the end of the data


class _CopyStream:
    """PostgreSQL's binary COPY output, read as its blocks arrive: at most one row is expected."""

    def __init__(self, blocks: Iterator[memoryview]) -> None:
        self._blocks = blocks
        self._pending = memoryview(b"")

    def row_into(self, directory: Path) -> bool:
        """The row's fields into ``directory`` (meta, then the files in ``FILES`` order); False: no row."""
        header = self._read(len(COPY_SIGNATURE))
        if header[:11] != COPY_SIGNATURE[:11]:
            raise ValueError("not a binary COPY stream")
        self._read(struct.unpack("!i", header[15:19])[0])  # a header extension, skipped
        fields = struct.unpack("!h", self._read(2))[0]
        if fields == -1:  # the end of the data: no row has the key
            return False
        if fields != 1 + len(FILES):
            raise ValueError(f"{fields} fields in the stored entry")
        meta = self._read(self._length()).decode()
        for name in FILES:
            with open(directory / f"{name}.npy", "wb") as out:
                self._take(self._length(), out.write)
        (directory / "meta.json").write_text(meta)
        return True

    def drain(self) -> None:
        for _ in self._blocks:
            pass

    def _length(self) -> int:
        length = struct.unpack("!i", self._read(4))[0]
        if length < 0:
            raise ValueError("a NULL field in the stored entry")
        return length

    def _read(self, n: int) -> bytes:
        out = bytearray()
        self._take(n, out.extend)
        return bytes(out)

    def _take(self, n: int, sink: Callable[[memoryview], object]) -> None:
        while n:
            if not self._pending:
                block = next(self._blocks, None)
                if block is None:
                    raise ValueError("the stored entry ends early")
                self._pending = memoryview(block)
            part = self._pending[:n]
            sink(part)
            self._pending, n = self._pending[len(part) :], n - len(part)


def settle() -> None:
    """Wait until every entry this process has offered is written (or has failed: logged)."""
    _OFFERS.submit(int).result()  # one writer, in order: what was offered before is done


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
