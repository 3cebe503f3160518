"""Tolerances of boundary validation and the limits of a grid's outline (``GEOSERVICE_SLIVER_TOLERANCE_M2`` …)."""

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
    # An edit refuses an outline beyond these, so a draft can always be validated and published:
    # a city's grid is a few hundred metres to a few kilometres across and drawn with at most a few
    # hundred vertices; the limits are generous multiples of that, not a judgement of the drawing.
    max_grid_vertices: int = Field(
        10_000, ge=4, description="an edited outline (a grid's, or an area moved) has at most this many vertices"
    )
    max_grid_extent_m: float = Field(
        100_000.0, gt=0, description="an edited outline fits in a box this many metres wide and high (metric CRS)"
    )
