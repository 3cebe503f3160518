"""Export a layer to GeoJSON, GeoPackage, Shapefile or CSV, in the import contract's columns.

What ``export`` writes, ``import`` reads back unchanged: the same property names, codes as text.
Coordinates are WGS84 unless the caller asks for GCJ-02/BD-09 (to draw on a Chinese base map).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pyogrio
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from etl.contracts import contract
from layers.crs import geometries_from_wgs84, parse_crs

DRIVERS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG", ".shp": "ESRI Shapefile"}

QUERIES = {
    "regions": "SELECT code, name, level::text AS level, coalesce(parent_code, '') AS parent_code, "
    "properties, geom FROM regions WHERE version_id = :v ORDER BY code",
    "grids": "SELECT code, name, community_code, array_to_string(workers, ';') AS workers, "
    "coalesce(officer, '') AS officer, properties, geom FROM grids WHERE version_id = :v ORDER BY code",
    "posts": "SELECT code, name, level::text AS level, properties, geom FROM police_posts ORDER BY code",
    "station_areas": "SELECT code, '{}'::jsonb AS properties, jurisdiction AS geom FROM police_posts "
    "WHERE jurisdiction IS NOT NULL ORDER BY code",
    "places": "SELECT code, name, type, owner, phone, coalesce(risk_level, '') AS risk_level, "
    "coalesce(inspection_cycle_days::text, '') AS inspection_cycle_days, properties, geom "
    "FROM key_places ORDER BY code",
    "events": "SELECT id::text AS id, category_code AS category, "
    "to_char(occurred_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+08:00\"') "
    "AS occurred_at, "
    "description, status, priority, source, coalesce(grid_code, '') AS grid_code, properties, geom "
    "FROM events ORDER BY id",
}


class ExportError(ValueError):
    """The export cannot be written as asked."""


def read_layer(session: Session, layer: str, version_id: int | None) -> gpd.GeoDataFrame:
    """The layer as a GeoDataFrame in WGS84, with extra properties spread into columns."""
    contract(layer)  # unknown layer → ValueError naming the layers
    frame = gpd.read_postgis(
        text(QUERIES[layer]), session.connection(), geom_col="geom", params={"v": version_id}
    )
    extra = gpd.pd.json_normalize(frame.pop("properties").tolist()) if len(frame) else None
    if extra is not None and len(extra.columns):
        extra.index = frame.index
        frame = frame.join(extra[[c for c in extra.columns if c not in frame.columns]])
    return frame.set_crs(4326, allow_override=True)


def write_layer(frame: gpd.GeoDataFrame, path: Path, crs: str | None = None) -> int:
    """Write ``frame`` to ``path`` (format from the suffix); return the feature count."""
    path = Path(path)
    target = parse_crs(crs)
    geoms = geometries_from_wgs84(frame.geometry.values, target)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        if not all(g is None or g.geom_type == "Point" for g in geoms):
            raise ExportError(f"{path}: CSV holds points only; export this layer as GeoJSON or GeoPackage")
        table = frame.drop(columns=frame.geometry.name)
        table.insert(0, "lon", shapely.get_x(geoms))
        table.insert(1, "lat", shapely.get_y(geoms))
        table.to_csv(path, index=False)
        return len(table)
    if suffix not in DRIVERS:
        raise ExportError(f"{path}: unsupported format {suffix!r}; use .geojson, .gpkg, .shp or .csv")
    out = gpd.GeoDataFrame(frame.drop(columns=frame.geometry.name), geometry=list(geoms),
                           crs=4326 if target.is_geographic_wgs84_like else None)  # fmt: skip
    path.unlink(missing_ok=True)
    pyogrio.write_dataframe(out, path, driver=DRIVERS[suffix])
    return len(out)
