"""The field suite (issue 18): weekly patrol coverage in PostGIS against the same figures in shapely, and photos.

* **coverage**: ``geoservice.field.coverage.patrol_coverage`` for every grid of a synthetic district
  (``--grids`` squares of 500 m) and a week of patrols (``--patrols`` tracks of ``--fixes`` fixes,
  10 s apart, a random walk at walking pace), best of 3.
* **peers**: the same figures (1) in one PostGIS statement — each fix's piece buffered in the metric
  CRS, the pieces touching a grid unioned and clipped (the service's own first version) — and (2) the
  way a Python user would get them: fixes read once, segments joined where fixes are at most 5 min
  apart, projected with pyproj, each buffered by 30 m and unioned with shapely 2, intersected with
  each grid through an STRtree. Ratios are a peer's time over the service's; **agreement** is the
  largest difference of a grid's share against each peer (target 1e-4).
* **photo**: ``geoservice.media.images.prepare_photo`` on a 12 MP phone JPEG with EXIF (orientation
  6, GPS): checked, turned upright, re-encoded, thumbnailed; median of 5.

``python -m bench.field`` runs it in the bench cluster (a fresh database ``bench_field``).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from datetime import UTC, datetime, timedelta

import geopandas as gpd
import numpy as np
import shapely
from PIL import ExifTags, Image
from pyproj import Transformer
from shapely import MultiPolygon, STRtree, box
from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.cities import bench_cluster
from bench.machine import describe
from etl.load import import_frame
from geoservice.boundaries.publish import publish
from geoservice.boundaries.settings import BoundarySettings
from geoservice.field.coverage import patrol_coverage, week_bounds
from geoservice.field.settings import PatrolSettings
from geoservice.infra.database import make_engine, migrate, transaction
from geoservice.media.images import prepare_photo
from geoservice.media.settings import MediaSettings
from geoservice.settings import RoutingSettings
from geoservice.stats.filters import Condition
from layers.crs import city_metric_epsg

X0, Y0 = 120.50, 32.30
SIDE_DEG = 0.0053  # about 500 m of longitude at 32°N, 590 m of latitude


def build(engine, grids_side: int, patrols: int, fixes: int, seed: int = 7) -> datetime:
    """A city of ``grids_side``² square grids in one community, and a week of random-walk patrols."""
    n = grids_side
    city = box(X0, Y0, X0 + n * SIDE_DEG, Y0 + n * SIDE_DEG)
    regions = gpd.GeoDataFrame(
        [("320682000000", "基准市", "city", ""), ("320682100000", "基准镇", "town", "320682000000"),
         ("320682100200", "基准村", "community", "320682100000")],
        columns=["code", "name", "level", "parent_code"], geometry=[MultiPolygon([city])] * 3, crs=4326,
    )  # fmt: skip
    cells = [box(X0 + i * SIDE_DEG, Y0 + j * SIDE_DEG, X0 + (i + 1) * SIDE_DEG, Y0 + (j + 1) * SIDE_DEG)
             for j in range(n) for i in range(n)]  # fmt: skip
    codes = [f"320682100200{k + 1:03d}" for k in range(len(cells))]
    grids = gpd.GeoDataFrame({"code": codes, "name": [f"网格{k + 1}" for k in range(len(cells))],
                              "community_code": "320682100200"},
                             geometry=[MultiPolygon([c]) for c in cells], crs=4326)  # fmt: skip
    now = datetime.now(UTC)
    _, start, _ = week_bounds(None, now)
    rng = np.random.default_rng(seed)
    with transaction(engine) as session:
        import_frame(session, "regions", regions, version="bench")
        import_frame(session, "grids", grids, version="bench")
        publish(session, "bench", datetime(2026, 1, 1, tzinfo=UTC), routing=RoutingSettings(),
                boundaries=BoundarySettings())
        session.execute(text("INSERT INTO users (username, password_hash, role, region_code) "
                             "VALUES ('walker', 'x', 'grid_worker', '320682100200')"))  # fmt: skip
        for k in range(patrols):
            began = start + timedelta(hours=2 + 3 * k % 150)
            pid = session.execute(text("INSERT INTO patrols (username, kind, started_at) VALUES ('walker', "
                                       "'grid_worker', :at) RETURNING id"), {"at": began}).scalar_one()  # fmt: skip
            x = X0 + rng.uniform(0.1, 0.9) * n * SIDE_DEG
            y = Y0 + rng.uniform(0.1, 0.9) * n * SIDE_DEG
            steps = rng.normal(0, 1.4e-4, size=(fixes, 2)).cumsum(axis=0)  # ~14 m per 10 s
            gap = rng.integers(fixes // 3, fixes)  # one long gap per patrol: a lost fix
            ats = [began + timedelta(seconds=10 * i + (900 if i >= gap else 0)) for i in range(fixes)]
            session.execute(
                text("INSERT INTO patrol_points (patrol_id, at, geom) SELECT :id, f.at, "
                     "ST_SetSRID(ST_MakePoint(f.x, f.y), 4326) FROM unnest(CAST(:ats AS timestamptz[]), "
                     "CAST(:xs AS float8[]), CAST(:ys AS float8[])) AS f(at, x, y)"),
                {"id": pid, "ats": ats, "xs": list(x + steps[:, 0]), "ys": list(y + steps[:, 1])},
            )  # fmt: skip
    return now


POSTGIS_SQL = """
    WITH fixes AS (
        SELECT pp.patrol_id, pp.at, pp.geom, lag(pp.geom) OVER w AS prev_geom, lag(pp.at) OVER w AS prev_at
        FROM patrol_points pp WHERE pp.at >= :start AND pp.at < :end
        WINDOW w AS (PARTITION BY pp.patrol_id ORDER BY pp.at)
    ), pieces AS MATERIALIZED (
        SELECT ST_Buffer(ST_Transform(
                   CASE WHEN prev_geom IS NOT NULL AND at - prev_at <= make_interval(secs => :gap)
                        THEN ST_MakeLine(prev_geom, geom) ELSE geom END, CAST(:srid AS integer)), :radius) AS b
        FROM fixes
    ), cells AS (
        SELECT g.code, ST_Transform(g.geom, CAST(:srid AS integer)) AS m FROM grids g WHERE g.version_id = :version
    )
    SELECT c.code, ST_Area(c.m) AS area_m2,
           coalesce((SELECT ST_Area(ST_Intersection(c.m, ST_Union(p.b))) FROM pieces p
                     WHERE p.b && c.m AND ST_Intersects(p.b, c.m)), 0) AS covered_m2
    FROM cells c
"""


def postgis_peer(
    engine, version: int, epsg: int, start: datetime, end: datetime, settings: PatrolSettings
) -> dict[str, float]:
    """The shares from one SQL statement: every fix's piece buffered and unioned in PostGIS."""
    with engine.connect() as conn:
        rows = conn.execute(text(POSTGIS_SQL), {"start": start, "end": end, "gap": settings.max_gap_s, "srid": epsg,
                                                "radius": settings.cover_m, "version": version}).all()  # fmt: skip
    return {r.code: min(r.covered_m2 / r.area_m2, 1.0) for r in rows}


def peer(engine, epsg: int, start: datetime, end: datetime, settings: PatrolSettings) -> dict[str, float]:
    """The shares computed in Python with shapely, from the same rows."""
    with engine.connect() as conn:
        fixes = conn.execute(text("SELECT patrol_id, at, ST_X(geom), ST_Y(geom) FROM patrol_points "
                                  "WHERE at >= :s AND at < :e ORDER BY patrol_id, at"), {"s": start, "e": end}).all()
        grids = conn.execute(text("SELECT code, ST_AsBinary(geom) FROM grids")).all()
    to_metric = Transformer.from_crs(4326, epsg, always_xy=True)
    pid = np.array([f[0] for f in fixes])
    ts = np.array([f[1].timestamp() for f in fixes])
    x, y = to_metric.transform(np.array([f[2] for f in fixes]), np.array([f[3] for f in fixes]))
    joined = (pid[1:] == pid[:-1]) & (ts[1:] - ts[:-1] <= settings.max_gap_s)
    pieces = list(shapely.points(x, y))
    starts = np.flatnonzero(joined)
    pieces += list(shapely.linestrings(np.stack([np.stack([x[starts], y[starts]], 1),
                                                 np.stack([x[starts + 1], y[starts + 1]], 1)], 1)))  # fmt: skip
    swath = shapely.union_all(shapely.buffer(np.array(pieces), settings.cover_m))
    cells = shapely.transform(shapely.from_wkb([g[1] for g in grids]),
                              lambda xy: np.column_stack(to_metric.transform(xy[:, 0], xy[:, 1])))  # fmt: skip
    parts = list(shapely.get_parts(swath))
    tree = STRtree(parts)
    shares = {}
    for (code, _), cell in zip(grids, cells, strict=True):
        near = tree.query(cell, predicate="intersects")
        covered = shapely.union_all([parts[i] for i in near]).intersection(cell).area if len(near) else 0.0
        shares[code] = min(covered / cell.area, 1.0)
    return shares


def photo_ms() -> float:
    image = Image.effect_noise((4000, 3000), 64).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[ExifTags.IFD.GPSInfo] = {1: "N", 2: (32.0, 18.0, 1.5), 3: "E", 4: (120.0, 30.0, 2.5)}
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85, exif=exif.tobytes())
    data, settings = out.getvalue(), MediaSettings(photo_max_bytes=50 * 1024 * 1024)
    times = []
    for _ in range(5):
        began = time.perf_counter()
        prepare_photo(data, settings)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.field", description=__doc__.splitlines()[0])
    parser.add_argument("--grids-side", type=int, default=20, help="grids per side (default 20: 400 grids)")
    parser.add_argument("--patrols", type=int, default=40)
    parser.add_argument("--fixes", type=int, default=360, help="fixes per patrol (10 s apart)")
    parser.add_argument("--url", help="an empty database to use instead of the bench cluster's bench_field")
    args = parser.parse_args()
    if args.url:
        engine = make_engine(args.url)
    else:
        cluster = bench_cluster()
        cluster.up("bench_field")
        cluster.ensure_database("bench_field", fresh=True)
        engine = make_engine(cluster.url("bench_field"))
    migrate(engine)
    now = build(engine, args.grids_side, args.patrols, args.fixes)
    settings = PatrolSettings()
    _, start, end = week_bounds(None, now)
    with Session(engine) as session:
        epsg = city_metric_epsg(session, None)
        version = session.execute(text("SELECT id FROM boundary_versions")).scalar_one()
        service_s = []
        for _ in range(3):
            began = time.perf_counter()
            rows = patrol_coverage(session, version, Condition(), start, end, settings, epsg)
            service_s.append(time.perf_counter() - began)
    postgis_s = []
    for _ in range(3):
        began = time.perf_counter()
        in_sql = postgis_peer(engine, version, epsg, start, end, settings)
        postgis_s.append(time.perf_counter() - began)
    peer_s = []
    for _ in range(3):
        began = time.perf_counter()
        shares = peer(engine, epsg, start, end, settings)
        peer_s.append(time.perf_counter() - began)
    worst_sql = max(abs(r["share"] - in_sql[r["grid_code"]]) for r in rows)
    worst = max(abs(r["share"] - shares[r["grid_code"]]) for r in rows)
    best = min(service_s)
    conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    print("; ".join(f"{label}: {value}" for label, value in describe(conninfo).rows))
    print(f"grids {len(rows)}, patrols {args.patrols}, fixes {args.patrols * args.fixes}")
    print(f"coverage (service: swath unioned once in shapely): best {best:.3f} s")
    print(f"peer, one PostGIS statement:  best {min(postgis_s):.3f} s  ratio {min(postgis_s) / best:.2f}x  "
          f"largest share difference {worst_sql:.2e}")  # fmt: skip
    print(f"peer, shapely per fix + STRtree: best {min(peer_s):.3f} s  ratio {min(peer_s) / best:.2f}x  "
          f"largest share difference {worst:.2e}")  # fmt: skip
    print("(shares are rounded to 1e-4 by the service)")
    print(f"photo: prepare a 12 MP JPEG, median of 5: {photo_ms():.0f} ms")
    engine.dispose()


if __name__ == "__main__":
    main()
