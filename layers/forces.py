"""Models of governance forces (治理力量) on the move, and of the public clients that report through Open311.

Kept apart from ``layers.models`` (the layers of the map) because these rows are operational state,
written by mobile clients and apps, not imported layers; they share its declarative base.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, CheckConstraint, DateTime, Float, ForeignKey, Index, Integer, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from layers.models import SRID, Base


class ForcePosition(Base):
    """One reported position of a grid worker or patrol; a short history per person is kept."""

    __tablename__ = "force_positions"
    __table_args__ = (
        CheckConstraint("kind IN ('grid_worker', 'patrol')", name="kind_known"),
        Index("ix_force_positions_geom", "geom", postgresql_using="gist"),
        Index("ix_force_positions_user_at", "username", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("users.username", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    geom: Mapped[Any] = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    available: Mapped[bool] = mapped_column(server_default=text("true"))
    accuracy_m: Mapped[float | None] = mapped_column(Float)


class ApiClient(Base):
    """An Open311 client application; only a SHA-256 of its key is stored, so a dump leaks no working key."""

    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    api_key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    enabled: Mapped[bool] = mapped_column(server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


__all__ = ["ApiClient", "ForcePosition"]
