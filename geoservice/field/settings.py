"""``GEOSERVICE_PATROL_*``: how far a patrol covers, which fixes count, how large a batch may be."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class PatrolSettings(BaseSettings):
    """The patrol rules; the coverage radius is the issue's 30 m."""

    model_config = SettingsConfigDict(env_prefix="GEOSERVICE_PATROL_", extra="ignore")

    cover_m: float = Field(30.0, gt=0, le=1_000, description="a grid's area within this of a track is covered")
    max_gap_s: float = Field(
        300.0, gt=0, le=86_400, description="fixes further apart in time are not joined: nobody saw what lay between"
    )
    max_accuracy_m: float = Field(100.0, gt=0, le=10_000, description="fixes less accurate than this are ignored")
    max_batch: int = Field(1_000, ge=1, le=100_000, description="fixes per POST /v1/patrols/{id}/points")
    clock_skew_s: float = Field(300.0, ge=0, le=86_400, description="how far in the future a fix's time may be")


class PlaceCodeSettings(BaseSettings):
    """``GEOSERVICE_PLACE_*``: where the printed codes point, and what the place page shows the public."""

    model_config = SettingsConfigDict(env_prefix="GEOSERVICE_PLACE_", extra="ignore")

    base_url: str | None = Field(
        None, pattern=r"^https?://[^\s]+$", description="the service's public address the codes hold; default: "
        "the address the sheet was asked from"
    )  # fmt: skip
    page_shows_team: bool = Field(True, description="the place page names the grid's workers and officer (网格公示)")
    inspection_duty: str = Field(
        "key_place_check", min_length=1, max_length=50,
        description="the duty (duties.csv code) an inspection of a key place is recorded against, from its page",
    )  # fmt: skip
