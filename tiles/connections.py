"""The tile queries' own database connections: one round trip per cold tile.

Through the engine's pool a tile query took four round trips: the pool's pre-ping, ``BEGIN``
(psycopg opens a transaction before the first statement), the query, and the ``ROLLBACK`` that
returns the connection to the pool: 0.9 ms of a 1.2 ms tile at z14 on the 2-core machine
(measured in-process, against the same query on a raw autocommit connection). A tile query is
one read-only statement, so it needs no transaction of its own: these connections run in
autocommit and send the statement alone.

They are the engine's own connections, taken from its pool once and detached from it, so they
carry what the engine gives every connection (``jit=off``, PostGIS and the transforms warmed up
by ``geoservice.infra.database.warm_up``). Instead of a ping before every query, a connection
found broken when used (the database restarted) is dropped and the query runs once more on a
new one, which is what the pre-ping was there for. Errors come out as SQLAlchemy's
(``OperationalError``, ``DataError``...), as they did through the engine, so the app answers
them as before (a 503, a 422).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.engine import Compiled
from sqlalchemy.exc import DBAPIError

COMPILED_KEPT = 512  # distinct tile statements (layer × zoom band × scope × filters) kept compiled


class TileConnections:
    """A LIFO of idle autocommit connections, at most ``keep`` of them; more are opened while busy."""

    def __init__(self, engine: Engine, keep: int) -> None:
        self.engine = engine
        self.keep = keep
        self._idle: list[psycopg.Connection] = []
        self._lock = threading.Lock()
        self._compiled: OrderedDict[str, Compiled] = OrderedDict()

    def scalar(self, sql: str, params: dict[str, Any]) -> Any:
        """The first column of the first row of ``sql`` (SQLAlchemy's ``:name`` parameters), or None."""
        compiled = self._compile(sql)
        statement, values = compiled.string, compiled.construct_params(params)
        retried = False
        while True:
            conn, reused = self._take()
            try:
                row = conn.execute(statement, values).fetchone()
            except psycopg.Error as exc:
                if conn.closed or conn.broken:
                    conn.close()
                    if reused and not retried and isinstance(exc, psycopg.OperationalError):
                        retried = True  # a connection that died while idle: the database restarted
                        continue
                else:
                    self._give(conn)
                raise DBAPIError.instance(statement, values, exc, psycopg.Error) from exc
            except BaseException:  # interrupted mid-statement: the connection's state is unknown
                conn.close()
                raise
            self._give(conn)
            return None if row is None else row[0]

    def close(self) -> None:
        """Close every idle connection (one in use closes when it comes back)."""
        with self._lock:
            idle, self._idle, self.keep = self._idle, [], 0
        for conn in idle:
            conn.close()

    def __len__(self) -> int:
        return len(self._idle)

    def _take(self) -> tuple[psycopg.Connection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._open(), False

    def _give(self, conn: psycopg.Connection) -> None:
        if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            with self._lock:
                if len(self._idle) < self.keep:
                    self._idle.append(conn)
                    return
        conn.close()

    def _open(self) -> psycopg.Connection:
        """One of the engine's connections (its connect arguments and warm-up), detached from its pool."""
        proxied = self.engine.raw_connection()
        proxied.detach()
        conn = proxied.dbapi_connection
        if not isinstance(conn, psycopg.Connection):  # pragma: no cover - the service runs on psycopg 3
            proxied.close()
            raise TypeError(f"tile connections need psycopg 3, the engine gives {type(conn).__name__}")
        conn.rollback()
        conn.autocommit = True
        return conn

    def _compile(self, sql: str) -> Compiled:
        """``sql`` as the engine would send it (``%(name)s`` placeholders), compiled once per statement."""
        with self._lock:
            compiled = self._compiled.get(sql)
            if compiled is not None:
                self._compiled.move_to_end(sql)
                return compiled
        compiled = text(sql).compile(dialect=self.engine.dialect)
        with self._lock:
            self._compiled[sql] = compiled
            while len(self._compiled) > COMPILED_KEPT:
                self._compiled.popitem(last=False)
        return compiled
