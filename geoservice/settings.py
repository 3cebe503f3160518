"""Settings, one class per concern, all read from ``GEOSERVICE_*`` environment variables.

Kept apart so that each part of the service can be configured (and tested) alone; the values are
documented in the README's *Configuration* table.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class DatabaseSettings(BaseSettings):
    """Where the system of record lives.

    With no ``database_url`` the service runs its own embedded PostGIS cluster under ``home``.
    """

    model_config = SettingsConfigDict(env_prefix="GEOSERVICE_", extra="ignore")

    database_url: str | None = None
    home: Path = Path(".geoservice")
    # Connections kept open per process. Opening one costs a SCRAM handshake (milliseconds), so the pool
    # is sized for the request threads that use it at once: a pool that is too small opens and closes
    # overflow connections under load, which halved the report rate when measured.
    pool_size: int = Field(20, ge=1, le=100)
    pool_timeout_s: float = Field(10.0, gt=0)
    embedded_os_user: str = "geoservice"
    # Each new connection loads PostGIS and builds the PROJ transforms tiles and the metric CRS use
    # (``warm_up``), so no request pays them. A process whose connections mostly live for seconds
    # (the test suite: a database per test) turns it off: there it cost a tenth of the time.
    warm_connections: bool = True

    @field_validator("database_url")
    @classmethod
    def _use_psycopg3(cls, url: str | None) -> str | None:
        if url and url.startswith(("postgresql://", "postgres://")):
            return "postgresql+psycopg://" + url.split("://", 1)[1]
        return url


class RoutingSettings(BaseSettings):
    """How points are placed in grids, the coverage ring of each police-post level, and the metric CRS.

    ``metric_crs`` (``GEOSERVICE_METRIC_CRS``) is the CRS every distance, buffer and area is measured
    in, by the router as by coverage reports, boundary validation, diffs and tiles: they all take it
    from the settings built at the edge (the app, a CLI command) and ask ``layers.crs.city_metric_epsg``.
    """

    model_config = SettingsConfigDict(env_prefix="GEOSERVICE_", extra="ignore")

    metric_crs: str | None = Field(
        None, description="e.g. EPSG:4549; default: the CGCS2000 3-degree GK zone of the city's centroid"
    )
    snap_tolerance_m: float = Field(50.0, ge=0, le=10_000)
    ring_village_room_m: float = Field(100.0, gt=0)
    ring_central_room_m: float = Field(1_000.0, gt=0)
    ring_station_m: float = Field(10_000.0, gt=0)
    index_cell_m: float = Field(30.0, ge=5, le=500, description="cell size of the router's raster index")
    home: Path = Path(".geoservice")
    router_cache: bool = Field(
        True, description="keep built raster indexes on disk, keyed by the boundaries, for other workers and restarts"
    )
    router_cache_dir: Path | None = Field(
        None, description="where the router's built indexes are kept; default: GEOSERVICE_HOME/router-cache"
    )
    version_check_s: float = Field(
        2.0, gt=0, description="how often a worker checks the version in force, besides LISTEN/NOTIFY"
    )
    max_batch: int = Field(10_000, ge=1, le=1_000_000)

    @property
    def index_cache_dir(self) -> Path | None:
        """The raster index cache's directory (``geoservice.routing.index_cache``); None when switched off."""
        if not self.router_cache:
            return None
        return self.router_cache_dir if self.router_cache_dir is not None else self.home / "router-cache"

    @property
    def rings_m(self) -> dict[str, float]:
        return {
            "village_room": self.ring_village_room_m,
            "central_room": self.ring_central_room_m,
            "station": self.ring_station_m,
        }


class AuthSettings(BaseSettings):
    """Signing of API tokens, and the throttle on failed sign-ins.

    Outside development the secret must be set (``GEOSERVICE_SECRET_KEY``); in development, when it
    is not, one is generated once under ``GEOSERVICE_HOME`` so that every worker shares it.
    """

    model_config = SettingsConfigDict(env_prefix="GEOSERVICE_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    secret_key: SecretStr | None = None
    token_ttl_minutes: int = Field(8 * 60, ge=1, le=30 * 24 * 60)
    principal_cache_s: float = Field(
        60.0, ge=0, description="longest a worker answers from its cache of users (0: read them on every request)"
    )
    home: Path = Path(".geoservice")
    # The sign-in throttle (geoservice.auth.throttle): a growing delay, then a lock an admin can lift.
    signin_free_failures: int = Field(3, ge=0, description="failed sign-ins (per account, per address) before a delay")
    signin_delay_s: float = Field(1.0, ge=0, description="first delay after the free failures; doubles with each")
    signin_max_delay_s: float = Field(60.0, ge=0, description="longest delay between two sign-in attempts")
    signin_lock_after: int = Field(10, ge=1, description="failed sign-ins of one account before it is locked")
    signin_address_lock_after: int = Field(30, ge=1, description="failed sign-ins from one address before a lock")
    signin_lock_s: float = Field(15 * 60.0, gt=0, description="how long a lock lasts unless an admin lifts it")
    signin_window_s: float = Field(15 * 60.0, gt=0, description="failures older than this (since the last) restart")

    @model_validator(mode="after")
    def _secret_outside_development(self) -> AuthSettings:
        if self.environment == "production":
            secret = self.secret_key.get_secret_value() if self.secret_key else ""
            if len(secret) < 32:
                raise ValueError("GEOSERVICE_SECRET_KEY must be set (at least 32 characters) in production")
        return self

    def signing_key(self) -> str:
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return _generated_key(self.home.absolute())


@lru_cache
def _generated_key(home: Path) -> str:
    """The development key kept under ``home``: made once, then read once per process (not per request)."""
    path = home / "secret_key"
    if not path.exists():
        # Written whole under another name and linked into place: two processes starting together
        # (``serve --workers 2``, parallel tests) agree on one key and never read a half-written one.
        home.mkdir(parents=True, exist_ok=True)
        draft = home / f".secret_key.{os.getpid()}"
        draft.unlink(missing_ok=True)
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process got there first: its key is the key
        finally:
            draft.unlink()
    return path.read_text().strip()


class ServerSettings(BaseSettings):
    """Where the HTTP API listens."""

    model_config = SettingsConfigDict(env_prefix="GEOSERVICE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)


class EventSettings(BaseSettings):
    """Warning thresholds of the closed loop and how often the deadline sweep runs.

    Warnings are fractions of the running deadline (红黄蓝三色预警): blue from ``warning_blue``,
    yellow from ``warning_yellow``, red from ``warning_red`` (1.0: red means overdue).
    """

    model_config = SettingsConfigDict(env_prefix="GEOSERVICE_", extra="ignore")

    warning_blue: float = Field(0.5, gt=0, le=1)
    warning_yellow: float = Field(0.75, gt=0, le=1)
    warning_red: float = Field(1.0, gt=0, le=1)
    event_sweep_s: float = Field(60.0, ge=0, description="seconds between deadline sweeps in the server; 0: off")
    # Reports are stored in batches (``geoservice.events.intake``): whatever arrived while the last
    # batch was being committed goes in with one statement and one commit. One writer: on 2 cores,
    # 2 and 4 writers answered fewer reports (552, 553 vs 618/s) for more CPU per report (GIL
    # contention, smaller batches); see bench/RESULTS.md.
    intake_writers: int = Field(1, ge=1, le=16, description="threads storing batches of reports per process")
    intake_max_batch: int = Field(64, ge=1, le=1000, description="most reports stored in one transaction")

    @model_validator(mode="after")
    def _thresholds_rise(self) -> EventSettings:
        if not self.warning_blue < self.warning_yellow < self.warning_red:
            raise ValueError("warning thresholds must rise: GEOSERVICE_WARNING_BLUE < _YELLOW < _RED")
        return self


class OperationsSettings(BaseSettings):
    """Limits that protect the service, and how it reports on itself."""

    model_config = SettingsConfigDict(env_prefix="GEOSERVICE_", extra="ignore")

    max_body_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="largest request body; larger is a 413")
    public_rate: str = Field(
        "120/minute",
        description="requests (a locate batch: points) per address for the anonymous public, per account for "
        "signed-in citizens, and per address for sign-in (limits' notation)",
    )
    rate_limit_shared: bool | None = Field(
        None,
        description="keep the public rate limit's buckets in PostgreSQL, shared by every worker and server; "
        "unset: shared when `geoservice serve --workers` runs several, else per process",
    )
    public_max_batch: int = Field(
        100, ge=1, le=1_000_000, description="most points in one POST /v1/locate from the public (staff: max_batch)"
    )
    public_service_phone: str = Field(
        "12345", min_length=1, max_length=40, description="the phone number locate answers give the public"
    )
    log_format: str = Field("json", pattern="^(json|text)$", description="json: one JSON object per line")
    worker_threads: int = Field(
        default_factory=lambda: max(8, 4 * (os.cpu_count() or 2)),
        ge=1,
        le=200,
        description="threads serving sync handlers per process (measured: 8 beat 40 on 2 cores)",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="web origins (scheme://host[:port], comma-separated, or *) whose pages may call the API and "
        "tiles from the browser; none by default",
    )
    compress_min_bytes: int = Field(
        500, ge=0, le=1_000_000, description="answers shorter than this are sent as they are (not compressed)"
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """``GEOSERVICE_CORS_ORIGINS=https://a.example,https://b.example``: a plain list, not JSON."""
        if isinstance(value, str):
            return [v.strip().rstrip("/") for v in value.split(",") if v.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ValueError(f"GEOSERVICE_CORS_ORIGINS: {origin!r} is not an origin such as https://map.example.cn")
        return value
