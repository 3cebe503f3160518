"""Photos of events: attached in one transaction with their files, read only through the event's scope.

Attaching is idempotent by content: the same bytes sent again for the same event answer the photo
already stored (``created`` False), which is what an offline phone retrying its queue needs. The
row is written first; the files are staged before the commit and published after it (see
``geoservice.media.store``), so a failed transaction leaves no file behind. Reading a photo goes
through the event: a photo exists for a caller exactly when its event does (``scope_sql``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyproj import Geod
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from geoservice.auth.scope import scope_of, scope_sql
from geoservice.auth.users import Principal
from geoservice.errors import NotFound
from geoservice.events.queries import fetch_event
from geoservice.media.images import PreparedPhoto
from geoservice.media.settings import MediaSettings
from geoservice.media.store import MediaStore

GEOD = Geod(ellps="WGS84")  # a phone's GNSS position and the stored point are both WGS84
PHOTO_COLUMNS = (
    "p.id, p.event_id, p.sha256, p.format, p.size_bytes, p.width, p.height, p.exif_orientation, p.original_key, "
    "p.display_key, p.thumb_key, p.gps_lon, p.gps_lat, p.gps_distance_m, p.gps_flagged, p.taken_at, p.caption, "
    "p.uploaded_by, p.uploaded_at"
)


@dataclass(frozen=True)
class Keys:
    """Where the three files of one upload live: named by the bytes' hash, so shared by equal uploads."""

    original: str
    display: str
    thumb: str

    @classmethod
    def of(cls, photo: PreparedPhoto) -> Keys:
        folder = f"{photo.sha256[:2]}/{photo.sha256}"
        return cls(
            original=f"original/{folder}.{photo.extension}",
            display=f"display/{folder}.{photo.extension}",
            thumb=f"thumb/{folder}.jpg",
        )

    def files(self, photo: PreparedPhoto) -> list[tuple[str, bytes]]:
        return [(self.original, photo.original), (self.display, photo.display), (self.thumb, photo.thumb)]


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Geodesic distance in metres on the WGS84 ellipsoid (never degrees)."""
    return float(GEOD.inv(lon1, lat1, lon2, lat2)[2])


def attach_photo(
    sessions: sessionmaker[Session],
    store: MediaStore,
    settings: MediaSettings,
    event_id: int,
    principal: Principal,
    photo: PreparedPhoto,
    caption: str = "",
) -> tuple[dict[str, Any], bool]:
    """Store ``photo`` for the event (in the caller's scope, else ``NotFound``); (the photo, whether it is new)."""
    keys = Keys.of(photo)
    staged: list[tuple[str, str]] = []
    try:
        with sessions() as session, session.begin():
            event = fetch_event(session, event_id, scope_of(principal))
            if event is None:
                raise NotFound(f"there is no event {event_id} that you may see", title="No such event")
            row = _insert(session, event, keys, photo, principal, caption, settings)
            created = row is not None
            if row is None:  # these bytes are already a photo of this event: a retry
                row = _by_hash(session, event_id, photo.sha256)
            # Files go to the store only for a new row, or to heal one whose files a crash lost.
            for key, data in keys.files(photo):
                if created or not store.exists(key):
                    staged.append((store.stage(data), key))
    except BaseException:
        for name, _ in staged:
            store.discard(name)
        raise
    for name, key in staged:  # committed: the files take their names
        store.publish(name, key)
    return photo_view(row), created


def _insert(
    session: Session,
    event: dict[str, Any],
    keys: Keys,
    photo: PreparedPhoto,
    principal: Principal,
    caption: str,
    settings: MediaSettings,
) -> dict[str, Any] | None:
    gps_distance = None
    if photo.gps is not None:
        gps_distance = distance_m(photo.gps[0], photo.gps[1], event["lon"], event["lat"])
    params = {
        "event_id": event["id"], "sha256": photo.sha256, "format": photo.format, "size": len(photo.original),
        "width": photo.width, "height": photo.height, "orientation": photo.exif_orientation,
        "original": keys.original, "display": keys.display, "thumb": keys.thumb,
        "gps_lon": photo.gps[0] if photo.gps else None, "gps_lat": photo.gps[1] if photo.gps else None,
        "distance": gps_distance, "flagged": gps_distance is not None and gps_distance > settings.photo_gps_flag_m,
        "taken_at": photo.taken_at, "caption": caption, "by": principal.username,
    }  # fmt: skip
    try:
        with session.begin_nested():
            found = session.execute(
                text(
                    "INSERT INTO photos (event_id, sha256, format, size_bytes, width, height, exif_orientation, "
                    "original_key, display_key, thumb_key, gps_lon, gps_lat, gps_distance_m, gps_flagged, taken_at, "
                    "caption, uploaded_by) VALUES (:event_id, :sha256, :format, :size, :width, :height, :orientation, "
                    ":original, :display, :thumb, :gps_lon, :gps_lat, :distance, :flagged, :taken_at, :caption, :by) "
                    f"ON CONFLICT (event_id, sha256) DO NOTHING RETURNING {PHOTO_COLUMNS.replace('p.', '')}"
                ),
                params,
            ).first()
    except IntegrityError as exc:  # the event was deleted meanwhile
        raise NotFound(f"there is no event {event['id']} that you may see", title="No such event") from exc
    return None if found is None else dict(found._mapping)


def _by_hash(session: Session, event_id: int, sha256: str) -> dict[str, Any]:
    row = session.execute(
        text(f"SELECT {PHOTO_COLUMNS} FROM photos p WHERE p.event_id = :event_id AND p.sha256 = :sha256"),
        {"event_id": event_id, "sha256": sha256},
    ).one()
    return dict(row._mapping)


def visible_photo(session: Session, photo_id: int, principal: Principal) -> dict[str, Any]:
    """The photo if its event is in the caller's scope; otherwise it does not exist for them."""
    where, params = scope_sql(scope_of(principal))
    row = session.execute(
        text(f"SELECT {PHOTO_COLUMNS} FROM photos p JOIN events e ON e.id = p.event_id WHERE p.id = :id AND {where}"),
        {"id": photo_id, **params},
    ).first()
    if row is None:
        raise NotFound(f"there is no photo {photo_id} that you may see", title="No such photo")
    return dict(row._mapping)


def event_photos(session: Session, event_id: int, principal: Principal) -> list[dict[str, Any]]:
    """The stored photos of an event in the caller's scope (``NotFound`` otherwise), oldest first."""
    if fetch_event(session, event_id, scope_of(principal)) is None:
        raise NotFound(f"there is no event {event_id} that you may see", title="No such event")
    rows = session.execute(
        text(f"SELECT {PHOTO_COLUMNS} FROM photos p WHERE p.event_id = :event_id ORDER BY p.id"),
        {"event_id": event_id},
    )
    return [photo_view(dict(r._mapping)) for r in rows]


def photo_view(row: dict[str, Any]) -> dict[str, Any]:
    """A photo as the API answers it: facts and links, never the store's keys."""
    gps = None
    if row["gps_lon"] is not None:
        gps = {"lon": row["gps_lon"], "lat": row["gps_lat"], "distance_m": _round(row["gps_distance_m"])}
    return {
        "id": row["id"],
        "event_id": row["event_id"],
        "sha256": row["sha256"],
        "content_type": {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}[row["format"]],
        "size_bytes": row["size_bytes"],
        "width": row["width"],
        "height": row["height"],
        "exif_orientation": row["exif_orientation"],
        "gps": gps,
        "gps_flagged": row["gps_flagged"],
        "taken_at": row["taken_at"],
        "caption": row["caption"],
        "uploaded_by": row["uploaded_by"],
        "uploaded_at": row["uploaded_at"],
        "url": f"/v1/photos/{row['id']}",
        "thumb_url": f"/v1/photos/{row['id']}/thumb",
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
