"""Tolerances of boundary validation (``GEOSERVICE_SLIVER_TOLERANCE_M2``, ``GEOSERVICE_TINY_GRID_M2``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BoundarySettings(BaseSettings):
    """What a digitising sliver is, and how small a grid may be before it is surely a mistake."""

    model_config = SettingsConfigDict(env_prefix="GEOSERVICE_", extra="ignore")

    sliver_tolerance_m2: float = Field(
        1.0, ge=0, description="overlaps and gaps smaller than this are digitising slivers and accepted"
    )
    sliver_fix_max_m2: float = Field(
        100.0,
        ge=0,
        description="--fix gives gaps and overlaps smaller than this to the neighbour with the longest shared edge",
    )
    tiny_grid_m2: float = Field(100.0, ge=0, description="a grid smaller than this is reported as tiny")
