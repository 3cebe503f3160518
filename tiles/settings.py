"""``GEOSERVICE_TILE_*``: the cache, the per-tile feature limit, how often data versions are checked."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TileSettings(BaseSettings):
    """How tiles are built and kept."""

    model_config = SettingsConfigDict(env_prefix="GEOSERVICE_TILE_", extra="ignore")

    cache_mb: float = Field(256.0, ge=0, description="tile cache per process, in MiB (0: no cache)")
    version_check_s: float = Field(1.0, ge=0, description="how often the data versions are read (0: every tile)")
    max_features: int = Field(20_000, ge=1, le=200_000, description="features per tile at most")
    events_cluster_until: int = Field(14, ge=0, le=24, description="below this zoom, events go out as counts per cell")
    events_one_by_one_max: int = Field(
        2_000, ge=1, le=200_000,
        description="from the cluster zoom on, a tile with more events than this carries counts per cell (in memory)",
    )  # fmt: skip
    events_in_memory: bool = Field(
        True,
        description="count events in memory below the cluster zoom and in crowded tiles above it "
        "(False: below it in PostGIS, row by row; above it, one by one up to max_features)",
    )
    connections: int = Field(
        8, ge=0, le=100, description="idle connections kept for tile queries, apart from the engine's pool"
    )
    events_max_age_s: float = Field(60.0, gt=0, description="events tiles (warning colours) are rebuilt this old")
    events_reload_s: float = Field(
        600.0, gt=0, description="the events kept in memory are read whole again this often (between, what changed)"
    )
