"""The cities the benchmarks run on, each loaded into its own database of the bench cluster.

* ``simple``: 6,000 Voronoi cells over the real county boundary, straight edges (a vertex only
  where three cells meet, plus the county boundary's own vertices);
* ``dense``: the very same cells, every shared edge carrying a vertex every 20–30 m (25 m on
  average) and the county boundary one every 28 m: real digitised grids look like this, and
  point-in-polygon cost grows with the vertex count;
* ``demo``: the project's demo city (``geoservice.city.demo.load_demo``), wiggled digitised-looking edges.

Both synthetic variants come from one noded linework (``etl.demo.tessellation``'s pieces): each
boundary between two cells is one edge, densified once, so neighbours share it vertex for vertex
and the dense variant is an exact coverage like the simple one. Communities, towns, posts and
station jurisdictions come from the demo builder (``etl.demo``), computed once on the simple
variant and re-dissolved on the dense one, so both have the same codes, posts and jurisdictions.

Everything is loaded the way a user loads data: ``etl.load.import_frame`` (validated: codes,
nesting, overlaps, gaps) and ``geoservice.boundaries.versions.publish``. Databases are dropped and rebuilt on
every run (the cluster itself is the only thing kept): a full build takes about a minute, and a
stale cache is a worse risk than that minute.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import shapely
from scipy.spatial import cKDTree
from sqlalchemy import Engine, text

from etl.demo.density import town_centres, urban_model
from etl.demo.graph import shared_boundaries
from etl.demo.hierarchy import Hierarchy, build_hierarchy, dissolve
from etl.demo.metric import city_polygon, demo_metric_epsg
from etl.demo.posts import Posts, build_posts
from etl.demo.tessellation import Tessellation, cell_edges, edge_faces, relax, voronoi_cells
from etl.demo.wiggle import PRECISION, densify_outer, wiggle
from etl.load import import_frame
from geoservice.boundaries.publish import publish
from geoservice.boundaries.settings import BoundarySettings
from geoservice.city.demo import DEMO_BOUNDARY, DEMO_VERSION, load_demo, read_boundary
from geoservice.infra.database import make_engine, migrate, transaction
from geoservice.infra.embedded import EmbeddedCluster
from geoservice.settings import RoutingSettings
from layers.crs import remember_metric_epsg

BENCH_HOME = Path(__file__).resolve().parents[1] / ".geoservice" / "bench"
SEED = 20240601
N_GRIDS = 6000
N_COMMUNITIES = 600  # ~10 grids each; the code allows 999
N_TOWNS = 14  # 如皋 has 14 towns and streets
N_POSTS = 400
ADCODE = "320682"
VERSION = "bench"
EFFECTIVE_FROM = datetime(2024, 1, 1, tzinfo=UTC)
CITY_KEYS = ("simple", "dense", "demo")
TITLES = {
    "simple": "synthetic 6,000 Voronoi grids, straight edges",
    "dense": "synthetic 6,000 Voronoi grids, a vertex every ~25 m",
    "demo": "demo city 如皋市 (1,500 digitised grids)",
}

Step = Callable[[str], None]


@dataclass(frozen=True)
class City:
    """A loaded city: where its database is and what is in it."""

    key: str
    title: str
    dbname: str
    url: str  # SQLAlchemy URL
    conninfo: str  # libpq string (psycopg, wrk-free servers)
    version_id: int
    metric_epsg: int
    grids: int
    vertices: int  # vertices of all grid polygons: what point-in-polygon tests walk
    build_s: float


def bench_cluster() -> EmbeddedCluster:
    """The benchmarks' own cluster (never the demo's or the tests')."""
    return EmbeddedCluster(BENCH_HOME)


def build_cities(cluster: EmbeddedCluster, keys: tuple[str, ...] = CITY_KEYS, step: Step = print) -> list[City]:
    """Build and load every requested city, each into a fresh database ``bench_<key>``."""
    cities = []
    layouts: dict[str, _Layers] = {}
    if {"simple", "dense"} & set(keys):
        started = time.perf_counter()
        step("building the synthetic layout (6,000 Voronoi cells, both variants)")
        layouts = synthetic_layers()
        layout_s = (time.perf_counter() - started) / 2
    for key in keys:
        started = time.perf_counter()
        dbname = f"bench_{key}"
        step(f"loading {key} into database {dbname}")
        cluster.ensure_database(dbname, fresh=True)
        engine = make_engine(cluster.url(dbname))
        try:
            migrate(engine)
            if key == "demo":
                load_demo(engine, routing=RoutingSettings(), boundaries=BoundarySettings())
            else:
                _load_layers(engine, layouts[key])
            version_id, epsg, grids, vertices = _describe(engine)
        finally:
            engine.dispose()
        _settle(cluster, dbname)
        build_s = time.perf_counter() - started + (layout_s if key != "demo" else 0.0)
        cities.append(
            City(key, TITLES[key], dbname, cluster.url(dbname), cluster.conninfo(dbname),
                 version_id, epsg, grids, vertices, build_s)
        )  # fmt: skip
    return cities


def _settle(cluster: EmbeddedCluster, dbname: str) -> None:
    """VACUUM ANALYZE and CHECKPOINT, so autovacuum and dirty-page writes do not run under the timings.

    A user's database has long been vacuumed and analysed; one loaded a second ago has not, and its
    first minute of autovacuum made the single-point PostGIS p99 ten times worse.
    """
    with psycopg.connect(cluster.conninfo(dbname), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")


def _describe(engine: Engine) -> tuple[int, int, int, int]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT v.id, (SELECT value::int FROM dataset_settings WHERE key = 'metric_epsg') AS epsg, "
                "count(g.id) AS grids, sum(ST_NPoints(g.geom)) AS vertices "
                "FROM boundary_versions v JOIN grids g ON g.version_id = v.id "
                "WHERE v.status = 'published' GROUP BY v.id"
            )
        ).one()
    return int(row.id), int(row.epsg), int(row.grids), int(row.vertices)


# --- the synthetic layout ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Layers:
    """Import layers (WGS84) of one variant."""

    regions: gpd.GeoDataFrame
    grids: gpd.GeoDataFrame
    posts: gpd.GeoDataFrame
    station_areas: gpd.GeoDataFrame
    metric_epsg: int


def county_boundary() -> shapely.Geometry:
    """The real county boundary (如皋市), WGS84."""
    return read_boundary(DEMO_BOUNDARY, "gcj02")


def synthetic_layers(
    seed: int = SEED,
    n_grids: int = N_GRIDS,
    n_communities: int = N_COMMUNITIES,
    boundary: shapely.Geometry | None = None,
) -> dict[str, _Layers]:
    """Both variants of the synthetic city: same cells, codes, posts; only the edges' vertices differ.

    ``boundary`` (WGS84) replaces the county's, e.g. ``bench.prefecture_db``'s county scaled to a
    prefecture's 12,000 km²: the density model and the vertex spacing are relative to the city and
    in metres, so the same code makes a city of any size.
    """
    rng = np.random.default_rng(seed)
    boundary = county_boundary() if boundary is None else boundary
    epsg = demo_metric_epsg(shapely.centroid(boundary).x)
    city = city_polygon(boundary, epsg, PRECISION)
    model = urban_model(city, town_centres(city, N_TOWNS, rng), rng)
    seeds = relax(city, model.sample(n_grids, rng), 2)
    edges, outer = cell_edges(city, voronoi_cells(city, seeds))
    simple = _cells(city, edges, seeds)
    dense_edges = np.empty(len(edges), dtype=object)
    for k, (edge, is_outer) in enumerate(zip(edges, outer.tolist(), strict=True)):
        straight = wiggle(shapely.get_coordinates(edge), rng, amplitude=0.0)  # densified, not moved
        dense_edges[k] = densify_outer(edge) if is_outer else shapely.LineString(straight)
    dense = _cells(city, dense_edges, seeds)
    keep = (simple != None) & (dense != None)  # noqa: E711 (elementwise on an object array)
    simple, dense = simple[keep], dense[keep]
    tess = Tessellation(simple, shared_boundaries(simple), 0, len(edges))
    h = build_hierarchy(tess, model, n_communities, ADCODE, rng)
    posts = build_posts(h, model, N_POSTS, rng)
    h_dense = _redissolve(h, dense)
    return {
        "simple": _layers(h, posts, epsg),
        "dense": _layers(h_dense, posts, epsg),
    }


def _cells(city: shapely.Geometry, edges: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Faces of the noded edges, grouped by Voronoi cell (the nearest seed): one (Multi)Polygon per seed."""
    faces = edge_faces(city, edges)
    owner = cKDTree(seeds).query(shapely.get_coordinates(shapely.point_on_surface(faces)))[1]
    cells = np.full(len(seeds), None, dtype=object)
    for k in np.unique(owner).tolist():
        parts = faces[owner == k]
        cells[k] = parts[0] if len(parts) == 1 else shapely.coverage_union_all(parts)
    return cells


def _redissolve(h: Hierarchy, grids: np.ndarray) -> Hierarchy:
    """The same hierarchy over other grid polygons (same labels, communities and towns re-unioned)."""
    communities = dissolve(grids, h.grid_community, len(h.community_codes))
    towns = dissolve(communities, h.community_town, len(h.town_codes))
    return dataclasses.replace(
        h, grid_polygons=grids, community_polygons=communities, town_polygons=towns,
        city_polygon=shapely.coverage_union_all(towns),
    )  # fmt: skip


def _layers(h: Hierarchy, posts: Posts, epsg: int) -> _Layers:
    towns = np.argsort(h.town_codes, kind="stable").tolist()
    comms = np.argsort(h.community_codes, kind="stable").tolist()
    regions = [(h.city_code, "示范市", "city", "", h.city_polygon)]
    regions += [(h.town_codes[t], h.town_names[t], "town", h.city_code, h.town_polygons[t]) for t in towns]
    regions += [
        (h.community_codes[c], h.community_names[c], "community", h.town_codes[h.community_town[c]],
         h.community_polygons[c])
        for c in comms
    ]  # fmt: skip
    grids = pd.DataFrame(
        {
            "code": h.grid_codes,
            "name": h.grid_names,
            "community_code": [h.community_codes[c] for c in h.grid_community.tolist()],
            "workers": h.grid_workers,
            "officer": h.grid_officers,
            "geometry": h.grid_polygons,
        }
    ).sort_values("code", kind="stable")
    return _Layers(
        regions=_wgs84(pd.DataFrame(regions, columns=["code", "name", "level", "parent_code", "geometry"]), epsg),
        grids=_wgs84(grids, epsg),
        posts=_wgs84(
            pd.DataFrame(
                {
                    "code": posts.codes,
                    "name": posts.names,
                    "level": posts.levels,
                    "geometry": shapely.points(posts.points),
                }
            ),
            epsg,
        ),  # fmt: skip
        station_areas=_wgs84(pd.DataFrame({"code": posts.station_codes, "geometry": posts.station_areas}), epsg),
        metric_epsg=epsg,
    )


def _wgs84(frame: pd.DataFrame, epsg: int) -> gpd.GeoDataFrame:
    """Metric frame → WGS84, polygons as MultiPolygons (the one type polygon layers store)."""
    geoms = np.array(frame["geometry"].to_numpy(), dtype=object)
    single = shapely.get_type_id(geoms) == shapely.GeometryType.POLYGON
    if single.any():
        geoms[single] = shapely.multipolygons(geoms[single], indices=np.arange(int(single.sum())))
    frame = frame.assign(geometry=geoms).reset_index(drop=True)
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=epsg).to_crs(4326)


def _load_layers(engine: Engine, layers: _Layers) -> None:
    """Validated import and publish, in one transaction (as ``load_demo`` does)."""
    with transaction(engine) as session:
        remember_metric_epsg(session, layers.metric_epsg)
        for layer in ("regions", "grids"):
            import_frame(session, layer, getattr(layers, layer), version=VERSION, source=f"bench {layer}")
        publish(session, VERSION, EFFECTIVE_FROM, routing=RoutingSettings(), boundaries=BoundarySettings())
        for layer in ("posts", "station_areas"):
            import_frame(session, layer, getattr(layers, layer), source=f"bench {layer}")


__all__ = ["City", "bench_cluster", "build_cities", "county_boundary", "DEMO_VERSION"]
