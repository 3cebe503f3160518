"""Route points held as partitioned (Geo)Parquet on a Dask cluster: a province's history, not one city's day.

Each partition is routed by the router's vectorised path (``routing.bulk.route_points``), exactly as
``geoservice route`` does in one process, so the answers are the same on every point. The router is
built once, in the client, from the boundary version in force; a worker plugin ships it to each
worker once (pickled: ~40 kB for a town, a few MB for a city), and every partition on that worker
uses the same copy — never one build per partition. Without a scheduler address a ``LocalCluster``
on loopback is started for the run.

Output: one GeoParquet file per input partition (input columns, the routed codes, ``department`` and
``rule_id`` when there is a ``category`` column, ``reason`` — empty, or why the row could not be
routed — and a WGS84 point ``geometry``). ``load_routed`` COPYs it into a new PostGIS table in one
transaction.
"""

from __future__ import annotations

import pickle
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import dask_geopandas
import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import shapely
from distributed import Client, LocalCluster, WorkerPlugin
from sqlalchemy import text
from sqlalchemy.orm import Session

from etl.load import copy_rows
from etl.readers import ReadError
from geoservice.routing.bulk import route_points
from geoservice.routing.bulk_files import checked_wgs84
from geoservice.routing.router import Router
from layers.crs import InputCRS, crs_from_file, parse_crs

TEXT = pd.StringDtype("pyarrow")  # typed text, so Parquet's schema is known before any partition is computed
TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_ROUTERS: dict[str, Router] = {}  # per process: the routers the plugin unpacked, by key


@dataclass
class DistributedSummary:
    """What ``geoservice route --engine dask`` prints at the end."""

    rows: int
    routed: int
    outside: int
    rejected: int
    partitions: int
    workers: int


class RouterOnWorkers(WorkerPlugin):
    """Unpacks the router once on each worker as it joins; partitions find it under ``key``."""

    def __init__(self, key: str, blob: bytes) -> None:
        self.key, self.blob = key, blob
        self.name = f"geoservice-router-{key}"

    def setup(self, worker: Any) -> None:
        _ROUTERS[self.key] = pickle.loads(self.blob)

    def teardown(self, worker: Any) -> None:
        _ROUTERS.pop(self.key, None)


@contextmanager
def dask_client(scheduler: str | None, workers: int) -> Iterator[Client]:
    """A client of the scheduler at ``scheduler``, or of a LocalCluster of ``workers`` processes on loopback."""
    if scheduler:
        with Client(scheduler, timeout="10s") as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def route_parquet(
    client: Client, router: Router, source: Path, target: Path, *, crs: str | None = None
) -> DistributedSummary:
    """Route every row of the Parquet file or directory ``source`` into GeoParquet files under ``target``."""
    frame, input_crs = _read(source, crs)
    key = f"v{router.version_id}-{uuid.uuid4().hex[:12]}"
    client.register_plugin(RouterOnWorkers(key, pickle.dumps(router, protocol=pickle.HIGHEST_PROTOCOL)))
    _ROUTERS[key] = router  # the client works out the output's columns from an empty partition
    try:
        meta = route_partition(frame._meta, key, input_crs)
        routed = frame.map_partitions(route_partition, key, input_crs, meta=meta)
        target.mkdir(parents=True, exist_ok=True)
        dask_geopandas.from_dask_dataframe(routed, geometry="geometry").to_parquet(target, write_index=False)
        # Counted from what was written: counting ``routed`` would route every partition a second time.
        written = dd.read_parquet(str(target), columns=["grid_code", "reason"])
        counts = written.map_partitions(_counts, meta=_counts(meta[["grid_code", "reason"]])).compute()
    finally:
        _ROUTERS.pop(key, None)
        client.unregister_worker_plugin(f"geoservice-router-{key}")
    total = counts.sum()
    return DistributedSummary(
        rows=int(total["rows"]), routed=int(total["routed"]), outside=int(total["outside"]),
        rejected=int(total["rejected"]), partitions=frame.npartitions, workers=len(client.scheduler_info()["workers"]),
    )  # fmt: skip


def route_partition(part: pd.DataFrame, key: str, crs: InputCRS) -> gpd.GeoDataFrame:
    """One partition routed by the router this process holds under ``key`` (see ``RouterOnWorkers``)."""
    router = _ROUTERS[key]
    table, x, y, not_point = _coordinates(part)
    lon, lat, problems = checked_wgs84(x, y, crs)
    problems = np.where(not_point, "geometry is not a Point", problems)
    ok = problems == ""
    categories = table["category"].astype(object).to_numpy() if "category" in table.columns else None
    routed = route_points(router, lon[ok], lat[ok], None if categories is None else categories[ok])
    out = table.reset_index(drop=True)
    rows = np.flatnonzero(ok)
    for column in routed.columns:
        if column == "rule_id":
            values: Any = pd.array([None] * len(out), dtype="Int64")
            values[rows] = routed[column].array
        else:
            values = np.full(len(out), "", dtype=object)
            values[rows] = routed[column].to_numpy(dtype=object)
            values = pd.array(values, dtype=TEXT)
        out[column] = values
    out["reason"] = pd.array(problems.astype(object), dtype=TEXT)
    points = np.where(ok, shapely.points(np.where(ok, lon, 0), np.where(ok, lat, 0)), None)
    return gpd.GeoDataFrame(out, geometry=gpd.GeoSeries(points, crs=4326))


def load_routed(session: Session, source: Path, table: str) -> int:
    """COPY the routed GeoParquet under ``source`` into a new table ``table``, all or nothing; return rows."""
    if not TABLE_NAME.fullmatch(table):
        raise ValueError(f"{table!r} is not a table name (lower-case letters, digits, _; at most 63)")
    if session.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar() is not None:
        raise ValueError(f"table {table!r} exists already; name a new one")
    files = sorted(source.glob("*.parquet"))
    if not files:
        raise ReadError(source, "no .parquet files to load")
    columns = [c for c in pq.read_schema(files[0]).names if c != "geometry"]  # the schema, not the rows
    ddl = ", ".join(f'"{c}" text' for c in columns)
    session.execute(text(f'CREATE TABLE "{table}" ({ddl}, geom geometry(Point, 4326))'))
    rows = 0
    for path in files:
        part = gpd.read_parquet(path)
        geoms = shapely.to_wkb(shapely.set_srid(part.geometry.values, 4326), hex=True, include_srid=True)
        values = part[columns].astype(object).where(part[columns].notna(), None).to_numpy()
        copy_rows(
            session,
            f'"{table}"',
            [f'"{c}"' for c in columns] + ["geom"],
            ([*(None if v is None else str(v) for v in row), g] for row, g in zip(values, geoms, strict=True)),
        )
        rows += len(part)
    session.execute(text(f'CREATE INDEX ON "{table}" USING gist (geom)'))
    return rows


def _read(source: Path, crs: str | None) -> tuple[dd.DataFrame, InputCRS]:
    """The partitions and the CRS of their coordinates (a GeoParquet's own, or ``--crs`` for lon/lat)."""
    if not source.exists():
        raise ReadError(source, "no such file or directory")
    files = sorted(source.glob("*.parquet")) if source.is_dir() else [source]
    if not files or any(f.suffix.lower() != ".parquet" for f in files):
        raise ReadError(source, "the dask engine reads Parquet (a .parquet file or a directory of them)")
    schema = pq.read_schema(files[0])
    if b"geo" in (schema.metadata or {}):  # GeoParquet: its geometry column and CRS are in the metadata
        frame = dask_geopandas.read_parquet([str(f) for f in files])
        return frame, _chosen(crs_from_file(frame.crs), crs, source)
    if not {"lon", "lat"} <= set(schema.names):
        raise ReadError(source, "Parquet needs a geometry column (GeoParquet) or 'lon' and 'lat'")
    return dd.read_parquet([str(f) for f in files]), parse_crs(crs)


def _chosen(declared: InputCRS | None, given: str | None, source: Path) -> InputCRS:
    if given is None:
        return declared or parse_crs(None)
    wanted = parse_crs(given)
    if declared is not None and not declared.is_geographic_wgs84_like and declared != wanted:
        raise ReadError(source, f"the file declares {declared.name}, not {wanted.name}")
    return wanted


def _coordinates(part: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """The attribute columns, x and y, and which rows hold a geometry that is not a Point."""
    if isinstance(part, gpd.GeoDataFrame):
        geoms = np.asarray(part.geometry.values, dtype=object)
        is_point = shapely.get_type_id(geoms) == 0
        x = np.where(is_point, shapely.get_x(np.where(is_point, geoms, None)), np.nan)
        y = np.where(is_point, shapely.get_y(np.where(is_point, geoms, None)), np.nan)
        return pd.DataFrame(part.drop(columns=part.geometry.name)), x, y, ~is_point & ~shapely.is_missing(geoms)
    x = pd.to_numeric(part["lon"], errors="coerce").to_numpy(float)
    y = pd.to_numeric(part["lat"], errors="coerce").to_numpy(float)
    return pd.DataFrame(part), x, y, np.zeros(len(part), dtype=bool)


def _counts(part: pd.DataFrame) -> pd.DataFrame:
    ok = part["reason"] == ""
    return pd.DataFrame({
        "rows": [len(part)], "routed": [int((ok & (part["grid_code"] != "")).sum())],
        "outside": [int((ok & (part["grid_code"] == "")).sum())], "rejected": [int((~ok).sum())],
    })  # fmt: skip
