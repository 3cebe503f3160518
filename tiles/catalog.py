"""The tile layers: what each one holds, at which zooms, and the PostGIS query that builds a tile of it.

Every query follows the pattern the good tile servers share: find rows with an index (``&&``
against the tile's envelope grown by the buffer, in the storage CRS 4326), simplify to about one
pixel below ``SIMPLIFY_UNTIL`` (``simplify_tolerance`` says why before the transform), transform
to Web Mercator, clip and quantise with ``ST_AsMVTGeom``, and stop at a per-tile feature
limit. Metric work (the rings) happens in the city's metric CRS, never in degrees.

Events are drawn one by one from ``events_cluster_until`` on; below it a tile carries one point
per cell of about ``CLUSTER_PIXELS`` pixels with the count of events (and of each warning colour)
in it, so a city-wide view ships a few hundred points instead of 50,000. From the cluster zoom on,
a tile crowded with more events than ``events_one_by_one_max`` (counted in memory) carries counts
per cell of ``CROWDED_CELL_PIXELS`` instead: a town centre's tile with a year of a million-event
city's reports held 24,693 of them, which PostgreSQL took 0.26 s just to read and sort, and which
no map can draw one by one. One more zoom or a filter (open only, a time window) shows them singly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from layers.models import POST_LEVELS
from tiles.address import TileAddress
from tiles.event_points import EventScope

EXTENT = 4096
DEGREE_M = 111_319.490793  # Web Mercator metres per degree of longitude
BUFFER = 64
SIMPLIFY_UNTIL = 15  # from this zoom on, geometries go out as stored (ST_AsMVTGeom still snaps to the grid)
CLUSTER_PIXELS = 32
CROWDED_CELL_PIXELS = 8  # from the cluster zoom on, for a tile with too many events to draw one by one
GRID_DETAILS_FROM = 12  # grid tiles below this zoom carry code, name and community code only
MERCATOR_X = "({lon}) * 20037508.342789244 / 180.0"
MERCATOR_Y = "ln(tan(pi() / 4 + radians({lat}) / 2)) * 6378137.0"  # the spherical formula of EPSG:3857
Query = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class TileScope:
    """What the caller may see, as SQL handed over by the service (the rules live there, once).

    ``code_prefix``: grids and regions whose code starts with it (region-scoped staff);
    ``region_code``: posts, places and rings inside that region's polygon; ``event_where`` /
    ``event_params``: the events scope over ``events e``, and ``events`` the same scope for the
    counts kept in memory (``tiles.event_points``). ``key`` names the scope in the cache.
    """

    key: str = "all"
    code_prefix: str | None = None
    region_code: str | None = None
    event_where: str = "TRUE"
    event_params: tuple[tuple[str, Any], ...] = ()
    events: EventScope = EventScope(everything=True)


@dataclass(frozen=True)
class TileFilters:
    """Layer-specific filters from the query string; ``key`` is their canonical form for the cache.

    ``event_where`` / ``event_params``: the events filters as SQL over ``events e``, written by the
    service (``geoservice.events.queries.filter_clauses``) as the scope is; the fields above say the
    same for the cache key and for the counts kept in memory.
    """

    statuses: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    category: str | None = None
    reported_from: str | None = None  # ISO 8601 with a zone, as given
    reported_to: str | None = None
    owner: str | None = None  # ``unit:<region or grid code>`` or ``department:<code>``, as the statistics key it
    levels: tuple[str, ...] = ()
    event_where: str = "TRUE"
    event_params: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> str:
        parts = [
            ",".join(self.statuses), ",".join(self.warnings), self.category or "",
            self.reported_from or "", self.reported_to or "", ",".join(self.levels), self.owner or "",
        ]  # fmt: skip
        return "|".join(parts)


@dataclass(frozen=True)
class BuildContext:
    """Facts of the dataset a query needs: the boundary version in force, the metric CRS, ring radii, rules."""

    version_id: int | None
    metric_epsg: int
    rings_m: dict[str, float]
    warning_sql: str  # colour of ``events e`` at ``:now`` (the service's rule)
    now: Any
    max_features: int
    events_cluster_until: int


@dataclass(frozen=True)
class TileLayer:
    """One layer: its name in URLs and in the tile, zooms, fields (for TileJSON) and the data it reads."""

    name: str
    description: str
    geometry: str
    minzoom: int
    maxzoom: int
    fields: dict[str, str]
    sources: tuple[str, ...]  # data sources whose version the cache key carries
    precise: frozenset[str]  # sources whose changes invalidate only the tiles they touch
    build: Callable[[TileAddress, TileScope, TileFilters, BuildContext], Query]
    filters: frozenset[str] = field(default_factory=frozenset)


def tile_query(layer: str, body: str, feature_id: str | None = None) -> str:
    """Wrap the rows of ``body`` (a SELECT with ``geom`` in tile coordinates) into one MVT."""
    fid = f", '{feature_id}'" if feature_id else ""
    return (
        f"WITH b AS ({_BOUNDS}), m AS ({body}) "
        f"SELECT ST_AsMVT(m.*, '{layer}', {EXTENT}, 'geom'{fid}) FROM m WHERE m.geom IS NOT NULL"
    )


# The tile's envelope grown by the buffer, in lon/lat, computed by ``TileAddress.lonlat_bounds``
# and passed as numbers (not derived in a CTE) so that the planner sees them: with them it
# estimates the rows a tile holds, and scans rather than uses the index for a tile of the whole city.
SEARCH = "ST_MakeEnvelope(:west, :south, :east, :north, 4326)"
_BOUNDS = f"SELECT ST_TileEnvelope(:z, :x, :y) AS clip, {SEARCH} AS search"


def _mvt_geom(geom_4326: str, tile: TileAddress) -> str:
    """Simplified (below ``SIMPLIFY_UNTIL``), in Web Mercator, clipped and quantised to the tile."""
    if tile.z >= SIMPLIFY_UNTIL:
        return _clip(f"ST_Transform({geom_4326}, 3857)")
    return _clip(f"ST_Transform(ST_Simplify({geom_4326}, :tolerance, true), 3857)")


def _clip(geom_3857: str) -> str:
    return f"ST_AsMVTGeom({geom_3857}, b.clip, {EXTENT}, {BUFFER}, true)"


def simplify_tolerance(tile: TileAddress) -> float:
    """One pixel of this zoom, in degrees, small enough along both axes anywhere in the tile.

    Simplifying before the transform is what keeps a tile of digitised grids cheap (Douglas-Peucker
    then projects a few vertices instead of all of them: 10 ms instead of 60 ms for the demo city's
    1,500 grids). Web Mercator's x is linear in longitude (one pixel = pixel_m / 111,319.49 degrees)
    and its y stretches latitude by 1 / cos(lat), so a tolerance of pixel_m · cos(lat) / 111,319.49
    at the tile's largest latitude moves no vertex by more than a pixel in either direction. This is
    a drawing tolerance, not a distance: nothing is measured in degrees.
    """
    _, south, _, north = tile.lonlat_bounds()
    widest = max(abs(south), abs(north))
    return tile.pixel_m * math.cos(math.radians(widest)) / DEGREE_M


def _base(tile: TileAddress, ctx: BuildContext) -> dict[str, Any]:
    west, south, east, north = tile.lonlat_bounds(margin=BUFFER / EXTENT)
    return {"z": tile.z, "x": tile.x, "y": tile.y, "tolerance": simplify_tolerance(tile), "limit": ctx.max_features,
            "west": west, "south": south, "east": east, "north": north}  # fmt: skip


def _scope_region(alias: str, scope: TileScope) -> str:
    if scope.region_code is None:
        return "TRUE"
    return (
        f"EXISTS (SELECT 1 FROM regions sr WHERE sr.version_id = :version AND sr.code = :scope_region "
        f"AND ST_Intersects(sr.geom, {alias}.geom))"
    )


def _scope_params(scope: TileScope, ctx: BuildContext) -> dict[str, Any]:
    params: dict[str, Any] = {"version": ctx.version_id}
    if scope.region_code is not None:
        params["scope_region"] = scope.region_code
    if scope.code_prefix is not None:
        params["scope_prefix"] = scope.code_prefix + "%"
    return params


def _levels(filters: TileFilters) -> tuple[str, dict[str, Any]]:
    if not filters.levels:
        return "TRUE", {}
    return "p.level::text = ANY(:levels)", {"levels": list(filters.levels)}


def grids_sql(tile: TileAddress, scope: TileScope, _: TileFilters, ctx: BuildContext) -> Query:
    """Grids with their community, town, workers and officer; below ``GRID_DETAILS_FROM``, code and names only.

    At zoom 10 those names were 40 % of a tile's bytes and a third of its build time (72.8 kB and
    14.0 ms against 44.0 kB and 9.0 ms for the demo city's densest tile, measured side by side),
    while the map draws grids there by code and community alone and asks the server for the whole
    grid when one is clicked.
    """
    prefix = "g.code LIKE :scope_prefix" if scope.code_prefix is not None else "TRUE"
    columns, joins = "", ""
    if tile.z >= GRID_DETAILS_FROM:
        columns = (
            ", c.name AS community, c.parent_code AS town_code, t.name AS town, "
            "array_to_string(g.workers, '、') AS workers, coalesce(g.officer, '') AS officer"
        )
        joins = (
            "LEFT JOIN regions c ON c.version_id = g.version_id AND c.code = g.community_code "
            "LEFT JOIN regions t ON t.version_id = g.version_id AND t.code = c.parent_code "
        )
    body = (
        f"SELECT {_mvt_geom('g.geom', tile)} AS geom, g.code, g.name, g.community_code{columns} FROM b, grids g {joins}"
        f"WHERE g.version_id = :version AND g.geom && {SEARCH} AND {prefix} ORDER BY g.code LIMIT :limit"
    )
    return tile_query("grids", body), {**_base(tile, ctx), **_scope_params(scope, ctx)}


def regions_sql(tile: TileAddress, scope: TileScope, _: TileFilters, ctx: BuildContext) -> Query:
    prefix = "r.code LIKE :scope_prefix" if scope.code_prefix is not None else "TRUE"
    body = (
        f"SELECT {_mvt_geom('r.geom', tile)} AS geom, r.code, r.name, r.level::text AS level, "
        "coalesce(r.parent_code, '') AS parent_code FROM b, regions r "
        f"WHERE r.version_id = :version AND r.geom && {SEARCH} AND {prefix} ORDER BY r.code LIMIT :limit"
    )
    return tile_query("regions", body), {**_base(tile, ctx), **_scope_params(scope, ctx)}


def posts_sql(tile: TileAddress, scope: TileScope, filters: TileFilters, ctx: BuildContext) -> Query:
    levels, level_params = _levels(filters)
    body = (
        f"SELECT {_mvt_geom('p.geom', tile)} AS geom, p.code, p.name, p.level::text AS level "
        f"FROM b, police_posts p WHERE p.geom && {SEARCH} AND {levels} AND {_scope_region('p', scope)} "
        "ORDER BY p.code LIMIT :limit"
    )
    return tile_query("posts", body), {**_base(tile, ctx), **_scope_params(scope, ctx), **level_params}


def rings_sql(tile: TileAddress, scope: TileScope, filters: TileFilters, ctx: BuildContext) -> Query:
    """Each post's ring at its level's radius, buffered in the metric CRS and only then put in Web Mercator.

    Posts are found by distance in metres from the tile (a 10 km ring reaches tiles far from its
    post); the number of segments per quarter circle keeps the chord within about a pixel.
    """
    levels, level_params = _levels(filters)
    radii = " UNION ALL ".join(f"SELECT '{level}'::text AS level, CAST(:r_{level} AS float8) AS radius"
                               for level in POST_LEVELS)  # fmt: skip
    body = (
        f"SELECT {_clip('ST_Transform(ST_Buffer(p.pm, p.radius, p.segments), 3857)')} AS geom, "
        "p.code, p.name, p.level, p.radius AS radius_m FROM b, ("
        "  SELECT p.code, p.name, p.level::text AS level, r.radius, ST_Transform(p.geom, :epsg) AS pm, "
        "         greatest(2, least(64, ceil(pi() * sqrt(r.radius / (32 * :pixel)))))::int AS segments "
        f"    FROM police_posts p JOIN ({radii}) r ON r.level = p.level::text, b "
        "   WHERE ST_DWithin(ST_Transform(p.geom, :epsg), ST_Transform(b.search, :epsg), r.radius) "
        f"    AND {levels} AND {_scope_region('p', scope)}"
        ") p ORDER BY p.radius DESC, p.code LIMIT :limit"
    )
    params = {**_base(tile, ctx), **_scope_params(scope, ctx), **level_params, "epsg": ctx.metric_epsg,
              "pixel": tile.pixel_m, **{f"r_{level}": ctx.rings_m[level] for level in POST_LEVELS}}  # fmt: skip
    return tile_query("rings", body), params


def places_sql(tile: TileAddress, scope: TileScope, _: TileFilters, ctx: BuildContext) -> Query:
    body = (
        f"SELECT {_mvt_geom('k.geom', tile)} AS geom, k.code, k.name, k.type "
        f"FROM b, key_places k WHERE k.geom && {SEARCH} AND {_scope_region('k', scope)} ORDER BY k.code LIMIT :limit"
    )
    return tile_query("places", body), {**_base(tile, ctx), **_scope_params(scope, ctx)}


def events_sql(tile: TileAddress, scope: TileScope, filters: TileFilters, ctx: BuildContext) -> Query:
    """Events one by one from ``events_cluster_until``; below it, counts per cell of ``CLUSTER_PIXELS``."""
    where, params = _event_conditions(scope, filters)
    params.update(_base(tile, ctx), now=ctx.now)
    warning = ctx.warning_sql
    if tile.z >= ctx.events_cluster_until:
        due = "CASE WHEN e.status = 'reported' THEN e.accept_due_at ELSE e.handle_due_at END"
        body = (
            f"SELECT {_mvt_geom('e.geom', tile)} AS geom, e.id, e.status, {warning} AS warning, "
            "e.category_code AS category, e.priority, coalesce(e.grid_code, '') AS grid_code, "
            "coalesce(e.department_code, '') AS department, "
            "coalesce(e.owner_kind || ':' || e.owner_code, '') AS owner, "
            "to_char(e.reported_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS reported_at, "
            f"coalesce(to_char(({due}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '') AS due_at "
            f"FROM b, events e WHERE e.geom && {SEARCH} AND {where} ORDER BY e.reported_at DESC, e.id DESC LIMIT :limit"
        )
        return tile_query("events", body, feature_id="id"), params
    cell = tile.pixel_m * CLUSTER_PIXELS
    x, y = MERCATOR_X.format(lon="ST_X(e.geom)"), MERCATOR_Y.format(lat="ST_Y(e.geom)")
    body = (
        "SELECT ST_AsMVTGeom(ST_SetSRID(ST_MakePoint(avg(p.mx), avg(p.my)), 3857), (SELECT clip FROM b), "
        f"{EXTENT}, {BUFFER}, true) AS geom, count(*)::int AS count, "
        "count(*) FILTER (WHERE p.warning = 'red')::int AS red, "
        "count(*) FILTER (WHERE p.warning = 'yellow')::int AS yellow, "
        "count(*) FILTER (WHERE p.warning = 'blue')::int AS blue "
        f"FROM (SELECT {x} AS mx, {y} AS my, {warning} AS warning "
        f"         FROM b, events e WHERE e.geom && {SEARCH} AND {where} OFFSET 0) p "
        "GROUP BY floor(p.mx / :cell), floor(p.my / :cell)"
    )
    params["cell"] = cell
    return tile_query("events", body), params


# Counts per cell computed outside the database (``tiles.event_points``), encoded like the ones above.
CELLS_TILE_SQL = (
    f"SELECT ST_AsMVT(m.*, 'events', {EXTENT}, 'geom') FROM ("
    f"  SELECT ST_AsMVTGeom(ST_Point(c.x, c.y, 3857), ST_TileEnvelope(:z, :x, :y), {EXTENT}, {BUFFER}, true) AS geom,"
    "         c.count, c.red, c.yellow, c.blue"
    "    FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[]), CAST(:counts AS int[]), CAST(:reds AS int[]),"
    "                CAST(:yellows AS int[]), CAST(:blues AS int[])) AS c(x, y, count, red, yellow, blue)"
    ") m WHERE m.geom IS NOT NULL"
)


def _event_conditions(scope: TileScope, filters: TileFilters) -> tuple[str, dict[str, Any]]:
    params = {**dict(scope.event_params), **dict(filters.event_params)}
    return f"({scope.event_where}) AND ({filters.event_where})", params


EVENT_FILTERS = frozenset({"status", "warning", "category", "from", "to", "owner"})
LAYERS: dict[str, TileLayer] = {
    layer.name: layer
    for layer in (
        TileLayer("regions", "City, towns/streets and communities/villages (统计用区划代码)", "polygon", 5, 18,
                  {"code": "String", "name": "String", "level": "String", "parent_code": "String"},
                  ("boundary",), frozenset({"boundary"}), regions_sql),
        TileLayer("grids", "Basic grids (网格) of the boundary version in force; below z12 code, name and "
                  "community_code only", "polygon", 9, 18,
                  {"code": "String", "name": "String", "community_code": "String", "community": "String",
                   "town_code": "String", "town": "String", "workers": "String", "officer": "String"},
                  ("boundary",), frozenset({"boundary"}), grids_sql),
        TileLayer("posts", "Police posts: village rooms, central rooms, stations", "point", 9, 18,
                  {"code": "String", "name": "String", "level": "String"},
                  ("posts", "boundary"), frozenset({"boundary"}), posts_sql, frozenset({"level"})),
        TileLayer("rings", "Coverage rings of the posts (100 m / 1 km / 10 km by default)", "polygon", 9, 18,
                  {"code": "String", "name": "String", "level": "String", "radius_m": "Number"},
                  ("posts", "boundary"), frozenset(), rings_sql, frozenset({"level"})),
        TileLayer("places", "Key places (重点场所): schools, hospitals, markets, risk sources…", "point", 11, 18,
                  {"code": "String", "name": "String", "type": "String"},
                  ("places", "boundary"), frozenset({"boundary"}), places_sql),
        TileLayer("events",
                  "Events; below the cluster zoom and in crowded tiles, counts per cell (count, red, yellow, blue)",
                  "point", 5, 18,
                  {"id": "Number", "status": "String", "warning": "String", "category": "String",
                   "priority": "String", "grid_code": "String", "department": "String", "owner": "String",
                   "reported_at": "String",
                   "due_at": "String", "count": "Number", "red": "Number", "yellow": "Number", "blue": "Number"},
                  ("events",), frozenset({"events"}), events_sql, EVENT_FILTERS),
    )
}  # fmt: skip
