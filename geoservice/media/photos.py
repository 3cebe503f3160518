"""Photos of events and visits: attached in one transaction with their files, read only through the event's scope.

Attaching is idempotent by content: the same bytes sent again for the same event answer the photo
already stored (``created`` False), which is what an offline phone retrying its queue needs. The
row is written first; the files are staged before the commit and published after it (see
``geoservice.media.store``), so a failed transaction leaves no file behind. Reading a photo goes
through its owner: a photo of an event exists for a caller exactly when its event does
(``scope_sql``); a photo of a visit when the visit does (``geoservice.field.visit_photos``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

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
    "p.id, p.event_id, p.visit_id, p.sha256, p.format, p.size_bytes, p.width, p.height, p.exif_orientation, "
    "p.original_key, p.display_key, p.thumb_key, p.gps_lon, p.gps_lat, p.gps_distance_m, p.gps_flagged, p.taken_at, "
    "p.caption, p.uploaded_by, p.uploaded_at"
)


@dataclass(frozen=True)
class Owner:
    """What a photo belongs to (an event or a visit) and the point its GPS is compared with."""

    column: Literal["event_id", "visit_id"]
    id: int
    point: tuple[float, float] | None  # (lon, lat) WGS84; None: nothing to compare with


OwnerFinder = Callable[[Session], Owner]  # raises NotFound when the caller may not see the owner


def event_owner(event_id: int, principal: Principal) -> OwnerFinder:
    """The event in the caller's scope, as a photo's owner."""

    def find(session: Session) -> Owner:
        event = fetch_event(session, event_id, scope_of(principal))
        if event is None:
            raise NotFound(f"there is no event {event_id} that you may see", title="No such event")
        return Owner("event_id", event["id"], (event["lon"], event["lat"]))

    return find


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
    owner_of: OwnerFinder,
    principal: Principal,
    photo: PreparedPhoto,
    caption: str = "",
) -> tuple[dict[str, Any], bool]:
    """Store ``photo`` for its owner (``owner_of`` raises ``NotFound`` outside the caller's view).

    Returns (the photo, whether it is new).
    """
    keys = Keys.of(photo)
    staged: list[tuple[str, str]] = []
    try:
        with sessions() as session, session.begin():
            owner = owner_of(session)
            row = _insert(session, owner, keys, photo, principal, caption, settings)
            created = row is not None
            if row is None:  # these bytes are already a photo of this owner: a retry
                row = _by_hash(session, owner, photo.sha256)
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
    owner: Owner,
    keys: Keys,
    photo: PreparedPhoto,
    principal: Principal,
    caption: str,
    settings: MediaSettings,
) -> dict[str, Any] | None:
    gps_distance = None
    if photo.gps is not None and owner.point is not None:
        gps_distance = distance_m(photo.gps[0], photo.gps[1], owner.point[0], owner.point[1])
    params = {
        "owner": owner.id, "sha256": photo.sha256, "format": photo.format, "size": len(photo.original),
        "width": photo.width, "height": photo.height, "orientation": photo.exif_orientation,
        "original": keys.original, "display": keys.display, "thumb": keys.thumb,
        "gps_lon": photo.gps[0] if photo.gps else None, "gps_lat": photo.gps[1] if photo.gps else None,
        "distance": gps_distance, "flagged": gps_distance is not None and gps_distance > settings.photo_gps_flag_m,
        "taken_at": photo.taken_at, "caption": caption, "by": principal.username,
    }  # fmt: skip
    column = owner.column  # one of two fixed names (``Owner``), never the caller's text
    try:
        with session.begin_nested():
            found = session.execute(
                text(
                    f"INSERT INTO photos ({column}, sha256, format, size_bytes, width, height, exif_orientation, "
                    "original_key, display_key, thumb_key, gps_lon, gps_lat, gps_distance_m, gps_flagged, taken_at, "
                    "caption, uploaded_by) VALUES (:owner, :sha256, :format, :size, :width, :height, :orientation, "
                    ":original, :display, :thumb, :gps_lon, :gps_lat, :distance, :flagged, :taken_at, :caption, :by) "
                    f"ON CONFLICT ({column}, sha256) DO NOTHING RETURNING {PHOTO_COLUMNS.replace('p.', '')}"
                ),
                params,
            ).first()
    except IntegrityError as exc:  # the owner was deleted meanwhile
        raise NotFound(f"{column.removesuffix('_id')} {owner.id} is gone", title="Not found") from exc
    return None if found is None else dict(found._mapping)


def _by_hash(session: Session, owner: Owner, sha256: str) -> dict[str, Any]:
    row = session.execute(
        text(f"SELECT {PHOTO_COLUMNS} FROM photos p WHERE p.{owner.column} = :owner AND p.sha256 = :sha256"),
        {"owner": owner.id, "sha256": sha256},
    ).one()
    return dict(row._mapping)


def photo_row(session: Session, photo_id: int) -> dict[str, Any] | None:
    """A photo's row whoever asks: the caller's view of its owner is checked by ``visible_photo``."""
    row = session.execute(text(f"SELECT {PHOTO_COLUMNS} FROM photos p WHERE p.id = :id"), {"id": photo_id}).first()
    return None if row is None else dict(row._mapping)


def event_photo_visible(session: Session, row: dict[str, Any], principal: Principal) -> bool:
    """Whether the photo's event is in the caller's scope (``scope_sql``, as every event read)."""
    where, params = scope_sql(scope_of(principal))
    found = session.execute(text(f"SELECT 1 FROM events e WHERE e.id = :id AND {where}"),
                            {"id": row["event_id"], **params}).first()  # fmt: skip
    return found is not None


def photos_of(session: Session, owner_of: OwnerFinder) -> list[dict[str, Any]]:
    """The stored photos of an owner the caller may see (``NotFound`` otherwise), oldest first."""
    owner = owner_of(session)
    rows = session.execute(
        text(f"SELECT {PHOTO_COLUMNS} FROM photos p WHERE p.{owner.column} = :owner ORDER BY p.id"),
        {"owner": owner.id},
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
        "visit_id": row["visit_id"],
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
