"""The dataset's own settings (``dataset_settings``): what a load fixed once and later commands read back.

The metric CRS chosen at the first load and the city's name, adcode and time zone from its pack live
here, as text by key; one writer and one reader so every caller upserts and reads them the same way.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session


def remember_dataset_settings(session: Session, values: dict[str, str]) -> None:
    """Upsert each ``key: value`` (in the session's transaction)."""
    session.execute(
        text(
            "INSERT INTO dataset_settings (key, value) VALUES (:k, :v) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        ),
        [{"k": key, "v": value} for key, value in values.items()],
    )


def dataset_setting(session: Session, key: str) -> str | None:
    """One stored value, None when nothing was stored under ``key``."""
    return session.execute(text("SELECT value FROM dataset_settings WHERE key = :k"), {"k": key}).scalar()


def dataset_settings(session: Session) -> dict[str, str]:
    """Every stored value by key."""
    return dict(session.execute(text("SELECT key, value FROM dataset_settings")).all())
