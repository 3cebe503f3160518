"""How often positions are kept, how long they are believed, and how much history is kept."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ForceSettings(BaseSettings):
    """``GEOSERVICE_FORCE_*``: throttle, staleness and history of reported positions."""

    model_config = SettingsConfigDict(env_prefix="GEOSERVICE_FORCE_", extra="ignore")

    min_interval_s: float = Field(10.0, ge=0, le=3600, description="positions closer in time are not stored")
    stale_after_s: float = Field(600.0, gt=0, le=86_400, description="older positions count as unknown")
    history_hours: float = Field(24.0, gt=0, le=24 * 30, description="positions kept per person")
    patrol_department: str = Field("police", description="handlers of this department report as patrols")
