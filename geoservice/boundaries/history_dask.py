"""``geoservice events reroute --engine dask``: the partitions of a re-attribution run on a Dask cluster.

Each task is one partition (``history.reattribute_partition``: read, route, write and mark done in
one transaction), so Dask's own retry of a task lost with its worker cannot double anything: the
partition is either done (the retry finds nothing to do) or rolled back (the retry does it). The
router is built once, by the client, and unpacked once per worker by a worker plugin, with one
small engine per worker process (``pool_size`` 1: a task holds one connection). The database URL
travels with the plugin, so the workers must be allowed to reach the database and the cluster
must be trusted with its password, as with the data itself.
"""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Callable
from typing import Any

from distributed import Client, WorkerPlugin, as_completed
from sqlalchemy import Engine

from geoservice.boundaries.history import PartitionDone, first_line, reattribute_partition
from geoservice.infra.database import make_engine
from geoservice.routing.router import Router
from geoservice.settings import DatabaseSettings

_WORKERS: dict[str, tuple[Router, Engine]] = {}  # per process: the plugin's router and engine, by key


class HistoryOnWorkers(WorkerPlugin):
    """The run's router and a database engine, made once on each worker as it joins."""

    def __init__(self, key: str, router_blob: bytes, database_url: str) -> None:
        self.key, self.router_blob, self.database_url = key, router_blob, database_url
        self.name = f"geoservice-history-{key}"

    def setup(self, worker: Any) -> None:
        engine = make_engine(self.database_url, DatabaseSettings(pool_size=1))
        _WORKERS[self.key] = (pickle.loads(self.router_blob), engine)

    def teardown(self, worker: Any) -> None:
        held = _WORKERS.pop(self.key, None)
        if held is not None:
            held[1].dispose()


def partition_task(key: str, run_id: int, seq: int) -> PartitionDone | None:
    """One partition on a worker, with the router and engine its plugin made."""
    router, engine = _WORKERS[key]
    return reattribute_partition(engine, router, run_id, seq)


def run_on_dask(
    client: Client,
    engine: Engine,
    router: Router,
    run_id: int,
    pending: list[int],
    on_done: Callable[[PartitionDone | None], None] | None = None,
) -> list[tuple[int, str]]:
    """Every partition in ``pending`` as one task; the failures (seq, why). A failed partition stays pending."""
    key = f"run{run_id}-{uuid.uuid4().hex[:12]}"
    url = engine.url.render_as_string(hide_password=False)
    client.register_plugin(HistoryOnWorkers(key, pickle.dumps(router, protocol=pickle.HIGHEST_PROTOCOL), url))
    failures: list[tuple[int, str]] = []
    try:
        futures = client.map(partition_task, [key] * len(pending), [run_id] * len(pending), pending, pure=False)
        seq_of = {f.key: seq for f, seq in zip(futures, pending, strict=True)}
        for future in as_completed(futures):
            if future.status == "error":
                failures.append((seq_of[future.key], first_line(future.exception())))
            elif on_done is not None:
                on_done(future.result())
    finally:
        client.unregister_worker_plugin(f"geoservice-history-{key}")
    return sorted(failures)
