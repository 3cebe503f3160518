"""``GEOSERVICE_MAP_*``: the one-map's base map and how often its live parts refresh."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class MapSettings(BaseSettings):
    """The base map is optional: a command centre's intranet often has none, and the page works without."""

    model_config = SettingsConfigDict(env_prefix="GEOSERVICE_MAP_", extra="ignore")

    base_tiles: str = Field("", description="XYZ URL template of a raster base map, e.g. an intranet tile server")
    base_attribution: str = Field("", description="attribution shown for the base map")
    base_max_zoom: int = Field(18, ge=1, le=22)
    refresh_s: float = Field(15.0, ge=1, description="newest events panel and heat map refresh")
    forces_refresh_s: float = Field(10.0, ge=1, description="forces' last known positions refresh")
