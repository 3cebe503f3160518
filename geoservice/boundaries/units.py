"""Regions and grids looked up by code: the one query that answers "what is unit 320682001002?".

A code names a region (city, town, community: 12 digits) or a grid (15 digits) of a boundary
version. Coverage, statistics and scope checks all ask it, so a code unknown to one is unknown to
all, with the same message.
"""

from __future__ import annotations

from sqlalchemy import Row, text
from sqlalchemy.orm import Session

from geoservice.errors import NotFound

HINT = "a region code has 12 digits, a grid code 15"

UNIT_BY_CODE = text(
    "SELECT code, name, level::text AS level, ST_AsBinary(geom) AS wkb FROM regions "
    "WHERE version_id = :v AND code = :c "
    "UNION ALL SELECT code, name, 'grid', ST_AsBinary(geom) FROM grids WHERE version_id = :v AND code = :c"
)


class UnknownRegion(NotFound, LookupError):
    """A region or grid code that the boundary version asked about does not know."""

    title = "Unknown region"


def unit_by_code(session: Session, version_id: int | None, code: str) -> Row:
    """The region or grid ``code`` of the version (code, name, level — ``grid`` for a grid —, wkb)."""
    row = session.execute(UNIT_BY_CODE, {"v": version_id, "c": code}).first()
    if row is None:
        raise UnknownRegion(f"no region or grid has code {code!r} in the boundary version in force ({HINT})")
    return row
