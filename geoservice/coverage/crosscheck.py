"""The report's figures computed a second, independent way: in PostGIS, with plain SQL.

``report`` computes in Python (shapely overlays, a k-d tree over the posts, numpy sums); this module
asks PostGIS the same questions the way a PostGIS user would write them: the layers transformed
into the metric CRS in temporary tables with GIST indexes, ``ST_Buffer`` (same 128-gon) +
``ST_Union`` + ``ST_Intersection`` for areas, ``ST_DWithin`` for "within the rule", ``ST_Intersects``
for "in this unit" (the first child by code on a shared edge). Tests require the two to agree within
0.1 %, and ``bench/coverage.py`` times both side by side.

The temporary tables live in the caller's transaction (``ON COMMIT DROP``) and are dropped at the
end; nothing else is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.boundaries.units import unit_by_code
from geoservice.boundaries.versions import current_version_id
from geoservice.coverage.inputs import CHILD_LEVEL, LEVELS, year_before
from geoservice.coverage.rings import QUAD_SEGS
from layers.crs import city_metric_epsg

FIELDS = ("area_km2", "covered_km2", "population", "population_covered", "places", "places_outside",
          "events", "events_outside")  # fmt: skip

_UNITS = """
CREATE TEMP TABLE cov_units ON COMMIT DROP AS
  SELECT 0 AS k, code::text AS code, ST_Transform(geom, :epsg) AS g FROM {table} WHERE version_id = :v AND code = :c;
CREATE TEMP TABLE cov_box ON COMMIT DROP AS
  SELECT ST_Envelope(geom) AS b FROM {table} WHERE version_id = :v AND code = :c
"""
_CHILDREN = """
INSERT INTO cov_units
  SELECT row_number() OVER (ORDER BY code), code, ST_Transform(geom, :epsg) FROM {table}
  WHERE version_id = :v AND {parent_column} = :c
"""
_SETUP = """
CREATE INDEX ON cov_units USING gist (g);
CREATE TEMP TABLE cov_posts ON COMMIT DROP AS
  SELECT level::text AS level, ST_Transform(geom, :epsg) AS g FROM police_posts;
CREATE INDEX ON cov_posts USING gist (g);
CREATE TEMP TABLE cov_points ON COMMIT DROP AS
  SELECT row_number() OVER () AS id, kind, w, g, ST_PointOnSurface(g) AS s FROM (
    SELECT 'people' AS kind, count::float8 AS w, ST_Transform(geom, :epsg) AS g
    FROM population, cov_box WHERE geom && b
    UNION ALL
    SELECT 'events', 1.0, ST_Transform(geom, :epsg)
    FROM events, cov_box WHERE geom && b AND occurred_at > :since AND occurred_at <= :until
    UNION ALL
    SELECT 'places', 1.0, ST_Transform(geom, :epsg) FROM key_places, cov_box WHERE geom && b
  ) layers;
CREATE INDEX ON cov_points USING gist (s);
ANALYZE cov_points;
ANALYZE cov_units;
CREATE TEMP TABLE cov_in ON COMMIT DROP AS
  SELECT p.* FROM cov_units r JOIN cov_points p ON r.k = 0 AND ST_Intersects(r.g, p.s);
CREATE INDEX ON cov_in USING gist (s);
ANALYZE cov_in;
CREATE TEMP TABLE cov_located ON COMMIT DROP AS
  SELECT i.kind, i.w, i.g, c.k
  FROM cov_in i LEFT JOIN (
    SELECT p.id, min(u.k) AS k FROM cov_units u JOIN cov_in p ON u.k > 0 AND ST_Intersects(u.g, p.s) GROUP BY p.id
  ) c ON c.id = i.id;
"""

_AREAS = f"""
SELECT u.code, ST_Area(u.g) / 1e6 AS area_km2, COALESCE(ST_Area(ST_Intersection(u.g, r.g)), 0) / 1e6 AS covered_km2
FROM cov_units u LEFT JOIN LATERAL (
  SELECT ST_Union(ST_Buffer(q.g, :r, 'quad_segs={QUAD_SEGS}')) AS g
  FROM cov_posts q WHERE q.level = :level AND ST_DWithin(q.g, u.g, :r)
) r ON true
"""

_COUNTS = """
WITH flagged AS (
  SELECT l.kind, l.k, l.w,
         EXISTS (SELECT 1 FROM cov_posts q WHERE q.level = :level AND ST_DWithin(q.g, l.g, :r)) AS inside
  FROM cov_located l
)
SELECT kind, GROUPING(k) = 1 AS whole, k, sum(w) AS total, COALESCE(sum(w) FILTER (WHERE inside), 0) AS within
FROM flagged GROUP BY GROUPING SETS ((kind), (kind, k))
"""


def postgis_figures(
    session: Session,
    region: str,
    as_of: datetime,
    radii_m: dict[str, float],
    levels: Sequence[str] = LEVELS,
    metric_crs: str | None = None,
) -> dict[tuple[str, str], dict[str, float]]:
    """{(unit code, level): figures} for the region and its children, named as ``LevelFigures``'s fields.

    Measured in the city's metric CRS, as ``coverage_report`` does (``metric_crs``: the configured one).
    """
    version_id = current_version_id(session)
    level = unit_by_code(session, version_id, region).level
    child = CHILD_LEVEL[level]
    statements = _UNITS.format(table="grids" if level == "grid" else "regions").split(";\n")
    if child is not None:
        grids = child == "grid"
        statements.append(
            _CHILDREN.format(
                table="grids" if grids else "regions", parent_column="community_code" if grids else "parent_code"
            )
        )
    statements += filter(str.strip, _SETUP.split(";\n"))
    params = {"epsg": city_metric_epsg(session, metric_crs), "v": version_id, "c": region,
              "since": year_before(as_of), "until": as_of}  # fmt: skip
    for statement in statements:
        session.execute(text(statement), params)
    codes = dict(session.execute(text("SELECT k, code FROM cov_units")).all())
    people_loaded = session.execute(text("SELECT EXISTS (SELECT 1 FROM population)")).scalar()
    out: dict[tuple[str, str], dict[str, float]] = {}
    for lvl in levels:
        args = {"level": lvl, "r": radii_m[lvl]}
        for row in session.execute(text(_AREAS), args):
            out[(row.code, lvl)] = {
                "area_km2": row.area_km2, "covered_km2": row.covered_km2,
                "population": 0.0 if people_loaded else None, "population_covered": 0.0 if people_loaded else None,
                "places": 0, "places_outside": 0, "events": 0, "events_outside": 0,
            }  # fmt: skip
        for row in session.execute(text(_COUNTS), args):
            unit = codes[0] if row.whole else codes.get(row.k)
            if unit is None:  # in the region but in no child
                continue
            figures = out[(unit, lvl)]
            if row.kind == "people" and people_loaded:
                figures["population"], figures["population_covered"] = float(row.total), float(row.within)
            elif row.kind == "events":
                figures["events"], figures["events_outside"] = int(row.total), int(row.total - row.within)
            elif row.kind == "places":
                figures["places"], figures["places_outside"] = int(row.total), int(row.total - row.within)
    for table in ("cov_located", "cov_in", "cov_points", "cov_posts", "cov_box", "cov_units"):
        session.execute(text(f"DROP TABLE IF EXISTS {table}"))
    return out
