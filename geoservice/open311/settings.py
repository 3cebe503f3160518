"""Which jurisdiction the Open311 endpoint serves."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Open311Settings(BaseSettings):
    """``GEOSERVICE_OPEN311_*``: the endpoint's ``jurisdiction_id``."""

    model_config = SettingsConfigDict(env_prefix="GEOSERVICE_OPEN311_", extra="ignore")

    jurisdiction_id: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="the one jurisdiction_id clients may send; unset: the loaded city's adcode (city.toml)",
    )
