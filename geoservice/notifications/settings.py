"""How notifications are fanned out and delivered (``GEOSERVICE_NOTIFY_*``), built once at the edge.

The app and the CLI build one ``NotifySettings`` and pass it down; nothing below reads the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class NotifySettings(BaseSettings):
    """Loops, retries, channels. ``webhooks`` is a JSON list of URLs, e.g. ``["https://ops.example/hook"]``."""

    model_config = SettingsConfigDict(env_prefix="GEOSERVICE_NOTIFY_", extra="ignore")

    in_server: bool = Field(True, description="run the fan-out and delivery loops inside the API process")
    poll_s: float = Field(1.0, gt=0, le=3600, description="how often the loops look for work when idle")
    max_attempts: int = Field(8, ge=1, le=100, description="attempts of a delivery before it is a dead letter")
    backoff_s: float = Field(2.0, gt=0, description="wait after the first failure; doubles with each further one")
    backoff_max_s: float = Field(3600.0, gt=0, description="longest wait between two attempts")
    webhooks: list[str] = Field(default_factory=list, description="URLs every webhook notification is posted to")
    webhook_secret: SecretStr | None = Field(None, description="HMAC-SHA256 key of webhook signatures")
    webhook_timeout_s: float = Field(5.0, gt=0, le=60)
    sms_file: Path | None = Field(None, description="where the file SMS gateway appends; default HOME/sms.jsonl")
    live_max_s: float = Field(300.0, gt=0, description="longest a live stream stays open; clients reconnect")
    live_ping_s: float = Field(15.0, gt=0, description="keep-alive comment interval of live streams")
    home: Path = Field(default_factory=lambda: Path(os.environ.get("GEOSERVICE_HOME", ".geoservice")))

    @model_validator(mode="after")
    def _webhooks_are_signed(self) -> NotifySettings:
        if self.webhooks and (self.webhook_secret is None or len(self.webhook_secret.get_secret_value()) < 16):
            raise ValueError("GEOSERVICE_NOTIFY_WEBHOOK_SECRET (16+ characters) is needed when webhooks are set")
        return self

    @property
    def sms_path(self) -> Path:
        return self.sms_file or self.home / "sms.jsonl"
