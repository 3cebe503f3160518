"""Where photos are kept and what a photo may be: ``GEOSERVICE_MEDIA_*`` and ``GEOSERVICE_PHOTO_*``.

The local directory store under ``GEOSERVICE_HOME`` is the default (nothing to run beside the
service); an S3-compatible store (MinIO, Ceph, a cloud bucket) is chosen with
``GEOSERVICE_MEDIA_STORE=s3`` and the ``GEOSERVICE_MEDIA_S3_*`` values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class MediaSettings(BaseSettings):
    """The media store and the limits on one photo."""

    model_config = SettingsConfigDict(env_prefix="GEOSERVICE_", extra="ignore")

    home: Path = Path(".geoservice")
    media_store: Literal["local", "s3"] = "local"
    media_dir: Path | None = Field(None, description="the local store's directory; default <GEOSERVICE_HOME>/media")
    media_s3_endpoint: str | None = Field(None, description="host:port of the S3-compatible service, e.g. minio:9000")
    media_s3_bucket: str = "geoservice-media"
    media_s3_access_key: str | None = None
    media_s3_secret_key: SecretStr | None = None
    media_s3_secure: bool = Field(True, description="https to the S3 endpoint")
    media_s3_region: str | None = None
    media_staged_max_age_s: float = Field(
        86400.0,
        ge=60,
        le=30 * 86400,
        description="staged files older than this are removed by the server's sweep and `geoservice media sweep`; "
        "at least a minute, since an upload in progress holds its files staged for one transaction",
    )
    photo_max_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024, description="largest photo file")
    photo_max_pixels: int = Field(
        50_000_000, ge=10_000, le=500_000_000, description="largest width × height (decompression bombs)"
    )
    photo_thumb_px: int = Field(320, ge=32, le=2048, description="longest side of a thumbnail")
    photo_gps_flag_m: float = Field(
        200.0, gt=0, le=100_000, description="photos whose EXIF position is farther from their event are flagged"
    )

    @model_validator(mode="after")
    def _s3_is_complete(self) -> MediaSettings:
        if self.media_store == "s3" and not (
            self.media_s3_endpoint and self.media_s3_access_key and self.media_s3_secret_key
        ):
            raise ValueError(
                "GEOSERVICE_MEDIA_STORE=s3 needs GEOSERVICE_MEDIA_S3_ENDPOINT, _ACCESS_KEY and _SECRET_KEY"
            )
        return self

    @property
    def local_dir(self) -> Path:
        return (self.media_dir or self.home / "media").absolute()
