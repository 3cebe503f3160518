"""Photos of visits, through the media store of ``geoservice.media``; and which photo a caller may see.

A visit's photo is attached by the visit's own worker and compared with the visit's point when it
has one. A photo is visible exactly when its owner is: an event in the caller's scope, a visit
the caller may read (``visible_visit``) — a key-person visit only in full: a picture cannot be
masked, so those who read the person masked do not see it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.auth.users import Principal
from geoservice.errors import NotFound
from geoservice.field.duties import visible_visit
from geoservice.media.photos import Owner, OwnerFinder, event_photo_visible, photo_row


def visit_owner(visit_id: int, principal: Principal, police_department: str, *, writing: bool = False) -> OwnerFinder:
    """The visit as a photo's owner: readers as ``visible_visit`` says, writers only its own worker."""

    def find(session: Session) -> Owner:
        visit = _visit_in_full(session, visit_id, principal, police_department, f"photos of visit {visit_id}")
        if writing and visit["username"] != principal.username:
            raise NotFound(f"you have no visit {visit_id}", title="No such visit")
        point = session.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM visits WHERE id = :id AND geom IS NOT NULL"),
                                {"id": visit_id}).first()  # fmt: skip
        return Owner("visit_id", visit_id, None if point is None else (float(point[0]), float(point[1])))

    return find


def _visit_in_full(
    session: Session, visit_id: int, principal: Principal, police_department: str, what: str
) -> dict[str, Any]:
    visit = visible_visit(session, visit_id, principal, police_department, what)
    if visit["masked"]:
        raise NotFound(f"there is no visit {visit_id} whose photos you may see", title="No such visit")
    return visit


def visible_photo(session: Session, photo_id: int, principal: Principal, police_department: str) -> dict[str, Any]:
    """The photo if the caller may see its event or visit; otherwise it does not exist for them."""
    row = photo_row(session, photo_id)
    seen = False
    if row is not None and row["event_id"] is not None:
        seen = event_photo_visible(session, row, principal)
    elif row is not None and row["visit_id"] is not None:
        try:
            _visit_in_full(session, row["visit_id"], principal, police_department, f"photo {photo_id}")
            seen = True
        except NotFound:
            seen = False
    if row is None or not seen:
        raise NotFound(f"there is no photo {photo_id} that you may see", title="No such photo")
    return row
