"""Drafts of boundary versions and the edits planners make on them.

A draft starts as a copy of a version (the one in force by default) or from uploaded files read by
the import path; edits change its grids. Only drafts are editable: every edit first locks the
draft's row (``FOR UPDATE``, the same lock ``publish`` takes), so an edit and a publish never
interleave, and each edit runs inside the caller's single transaction. Geometry work is shapely on
lon/lat as stored; edits that put new vertices on edges shared with neighbours (a split, a moved
boundary) insert those vertices into the neighbours too, so the coverage stays vertex-matched.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from shapely.ops import split
from sqlalchemy import text
from sqlalchemy.orm import Session

from etl.codes import grid_serial_order
from etl.load import import_layer
from etl.topology import repair_slivers
from geoservice.boundaries.geometry import OutlineLimits, as_multipolygon, conform, outline_problem, polygonal, union_of
from geoservice.boundaries.publish import Published, Publisher, publish_version
from geoservice.boundaries.settings import BoundarySettings
from geoservice.boundaries.versions import VersionError, VersionNotFound, current_version_id, get_version
from geoservice.settings import RoutingSettings
from layers.crs import metric_area, metric_length

GRID_CODE = re.compile(r"\d{15}")
MAX_SERIAL = 999


class EditRejected(ValueError):
    """An edit that cannot be applied as asked (bad code, a line that cuts nothing…); nothing changed."""


@dataclass
class EditResult:
    """Grid codes the edit added, changed (geometry or attributes), removed, or conformed (vertices only)."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    conformed: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)  # what a ``repair`` edit moved, one sentence each


@dataclass
class GridRow:
    """A grid of a draft as edits see it."""

    code: str
    name: str
    community_code: str
    workers: list[str]
    officer: str | None
    geom: BaseGeometry


# --- drafts --------------------------------------------------------------------------------------
def create_draft(session: Session, name: str, *, based_on: int | None = None, note: str = "") -> int:
    """A new draft holding a copy of version ``based_on`` (default: the one in force; none: empty)."""
    name = name.strip()
    if not name:
        raise EditRejected("a draft needs a name, e.g. 2026-12 or 'split 320682102003001'")
    if session.execute(text("SELECT 1 FROM boundary_versions WHERE name = :n"), {"n": name}).first():
        raise VersionError(f"a boundary version called {name!r} exists already; choose another name")
    if based_on is None:
        based_on = current_version_id(session)
    elif session.execute(text("SELECT 1 FROM boundary_versions WHERE id = :v"), {"v": based_on}).first() is None:
        raise VersionNotFound(f"no boundary version with id {based_on}")
    draft_id = session.execute(
        text(
            "INSERT INTO boundary_versions (name, status, based_on_id, note) VALUES (:n, 'draft', :b, :note) "
            "RETURNING id"
        ),
        {"n": name, "b": based_on, "note": note},
    ).scalar_one()
    if based_on is not None:
        session.execute(
            text(
                "INSERT INTO regions (version_id, code, name, level, parent_code, geom, properties) "
                "SELECT :d, code, name, level, parent_code, geom, properties FROM regions WHERE version_id = :b"
            ),
            {"d": draft_id, "b": based_on},
        )
        session.execute(
            text(
                "INSERT INTO grids (version_id, code, name, community_code, workers, officer, geom, properties) "
                "SELECT :d, code, name, community_code, workers, officer, geom, properties "
                "FROM grids WHERE version_id = :b"
            ),
            {"d": draft_id, "b": based_on},
        )
    return draft_id


def create_draft_from_files(
    session: Session,
    name: str,
    grids: Path,
    *,
    regions: Path | None = None,
    crs: str | None = None,
    note: str = "",
) -> int:
    """A draft whose grids (and regions, if given) come from files, validated as any import is.

    Regions not given are copied from the version in force, so a planner can upload only grids.
    A file with errors raises ``etl.load.ImportRejected`` listing all of them; the caller's
    transaction then writes nothing, the draft row included.
    """
    draft_id = create_draft(session, name, note=note)
    session.execute(text("DELETE FROM grids WHERE version_id = :d"), {"d": draft_id})
    if regions is not None:
        import_layer(session, "regions", regions, crs=crs, version=name.strip())
    import_layer(session, "grids", grids, crs=crs, version=name.strip())
    return draft_id


def editable_draft(session: Session, version_id: int) -> str:
    """Lock draft ``version_id`` for an edit and return its name; 404 / 409 errors otherwise."""
    row = session.execute(
        text("SELECT name, status::text AS status FROM boundary_versions WHERE id = :v FOR UPDATE"),
        {"v": version_id},
    ).first()
    if row is None:
        raise VersionNotFound(f"no boundary version with id {version_id}")
    if row.status != "draft":
        raise VersionError(
            f"version {row.name!r} is {row.status}; only drafts are edited (create a draft from it instead)"
        )
    return row.name


def discard_draft(session: Session, version_id: int) -> None:
    """Delete a draft; published and retired versions are history and stay (refused)."""
    editable_draft(session, version_id)
    # Drafts copied from this one keep their grids; they just no longer name where they came from.
    session.execute(text("UPDATE boundary_versions SET based_on_id = NULL WHERE based_on_id = :v"), {"v": version_id})
    session.execute(text("DELETE FROM boundary_versions WHERE id = :v"), {"v": version_id})


def rollback(
    session: Session,
    version_id: int,
    name: str | None = None,
    effective_from: datetime | None = None,
    *,
    routing: RoutingSettings,
    boundaries: BoundarySettings,
    publisher: Publisher = Publisher(),
) -> Published:
    """Publish a copy of old version ``version_id`` as a new version; the old one stays as it was."""
    old = get_version(session, version_id)
    if old.status == "draft":
        raise VersionError(f"version {old.name!r} is a draft; publish it instead of rolling back to it")
    copies = session.execute(
        text("SELECT count(*) FROM boundary_versions WHERE based_on_id = :v AND note LIKE 'rollback%'"),
        {"v": version_id},
    ).scalar_one()
    name = name or f"{old.name} (rollback {copies + 1})"
    draft_id = create_draft(session, name, based_on=version_id, note=f"rollback to {old.name}")
    return publish_version(
        session, draft_id, effective_from, routing=routing, boundaries=boundaries, publisher=publisher
    )


# --- edits ---------------------------------------------------------------------------------------
def replace_geometry(
    session: Session, version_id: int, code: str, geom: BaseGeometry, limits: OutlineLimits
) -> EditResult:
    """Give grid ``code`` a new outline, as drawn (validation reports whatever it breaks with its neighbours).

    The outline itself must be one a grid can have (``outline_problem``), so the draft stays
    validatable; overlaps and gaps with neighbours are the validation's to report.
    """
    editable_draft(session, version_id)
    _grid(session, version_id, code)
    _require_outline(geom, f"the new outline of grid {code}", limits)
    _write_geom(session, version_id, code, geom)
    return EditResult(changed=[code])


def split_grid(
    session: Session, version_id: int, code: str, line: BaseGeometry, names: Sequence[str] = ()
) -> EditResult:
    """Cut grid ``code`` along ``line``: the largest piece keeps the code, the others get new codes.

    New pieces get the next free serials of the community and keep the grid's workers and officer
    (the same people served that ground yesterday) until a planner assigns others.
    """
    editable_draft(session, version_id)
    grid = _grid(session, version_id, code)
    if not isinstance(line, shapely.LineString | shapely.MultiLineString) or line.is_empty:
        raise EditRejected("a split needs a LineString (or MultiLineString) that crosses the grid")
    pieces = [p for p in shapely.get_parts(split(grid.geom, line)) if isinstance(p, shapely.Polygon)]
    if len(pieces) < 2:
        raise EditRejected(f"the line does not cut grid {code} in two: it must cross the grid from one edge to another")
    pieces.sort(key=lambda p: -p.area)
    kept, others = pieces[0], pieces[1:]
    order = grid_serial_order(np.array([shapely.point_on_surface(p).coords[0] for p in others]))
    others = [others[k] for k in order]
    new_codes = _next_codes(session, grid.community_code, len(others))
    if names and len(names) != len(others):
        raise EditRejected(f"the split makes {len(others)} new grid(s); give that many names, or none")
    _write_geom(session, version_id, code, kept)
    for k, (new_code, piece) in enumerate(zip(new_codes, others, strict=True)):
        name = names[k] if names else f"{grid.name}（分{new_code[-3:]}）"
        _insert_grid(session, version_id, new_code, name, grid.community_code, grid.workers, grid.officer, piece)
    conformed = _conform_neighbours(session, version_id, shapely.union_all(pieces), {code, *new_codes})
    return EditResult(added=new_codes, changed=[code], conformed=conformed)


def merge_grids(session: Session, version_id: int, codes: Sequence[str], name: str | None = None) -> EditResult:
    """Join neighbouring grids of one community into the one with the smallest code."""
    editable_draft(session, version_id)
    codes = sorted(set(codes))
    if len(codes) < 2:
        raise EditRejected("a merge needs at least two different grid codes")
    grids = [_grid(session, version_id, c) for c in codes]
    communities = {g.community_code for g in grids}
    if len(communities) > 1:
        raise EditRejected(
            f"grids {', '.join(codes)} belong to communities {', '.join(sorted(communities))}; "
            "a grid belongs to exactly one community, so only grids of one community can be merged"
        )
    merged = union_of([g.geom for g in grids])
    if len(_polygons(merged)) != 1:
        raise EditRejected(f"grids {', '.join(codes)} do not form one connected area; merge neighbours only")
    keeper, rest = grids[0], grids[1:]
    workers = list(dict.fromkeys(w for g in grids for w in g.workers))
    _write_geom(session, version_id, keeper.code, merged)
    session.execute(
        text("UPDATE grids SET name = :name, workers = :w WHERE version_id = :v AND code = :c"),
        {"name": name or keeper.name, "w": workers, "v": version_id, "c": keeper.code},
    )
    session.execute(
        text("DELETE FROM grids WHERE version_id = :v AND code = ANY(:codes)"),
        {"v": version_id, "codes": [g.code for g in rest]},
    )
    return EditResult(changed=[keeper.code], removed=[g.code for g in rest])


def move_boundary(
    session: Session, version_id: int, from_code: str, to_code: str, area: BaseGeometry, limits: OutlineLimits
) -> EditResult:
    """Give the part of ``area`` inside grid ``from_code`` to its neighbour ``to_code``; both change together."""
    editable_draft(session, version_id)
    if from_code == to_code:
        raise EditRejected("a boundary is moved between two different grids")
    _require_outline(area, "the area to move", limits)
    giver, taker = _grid(session, version_id, from_code), _grid(session, version_id, to_code)
    moved = shapely.intersection(giver.geom, area)
    if not polygonal(moved) or moved.area < 1e-14:
        raise EditRejected(f"the area does not overlap grid {from_code}, so nothing would move")
    rest = shapely.difference(giver.geom, area)
    if not polygonal(rest):
        raise EditRejected(f"the area covers all of grid {from_code}; merge the grids instead")
    if not shapely.intersects(moved, taker.geom) or shapely.length(shapely.intersection(moved, taker.geom)) <= 0:
        raise EditRejected(f"the part of the area inside grid {from_code} does not border grid {to_code}")
    grown = shapely.union(taker.geom, moved)
    _write_geom(session, version_id, from_code, rest)
    _write_geom(session, version_id, to_code, grown)
    conformed = _conform_neighbours(session, version_id, shapely.union(rest, grown), {from_code, to_code})
    return EditResult(changed=[from_code, to_code], conformed=conformed)


def update_grid(
    session: Session,
    version_id: int,
    code: str,
    *,
    new_code: str | None = None,
    name: str | None = None,
    workers: Sequence[str] | None = None,
    officer: str | None = None,
) -> EditResult:
    """Rename, recode (within a community of the draft), or change the team of grid ``code``."""
    editable_draft(session, version_id)
    grid = _grid(session, version_id, code)
    target = grid.code
    community = grid.community_code
    if new_code is not None and new_code != code:
        community = _check_new_code(session, version_id, new_code)
        target = new_code
    session.execute(
        text(
            "UPDATE grids SET code = :new, community_code = :community, name = :name, workers = :workers, "
            "officer = :officer WHERE version_id = :v AND code = :code"
        ),
        {
            "new": target, "community": community, "name": (name if name is not None else grid.name).strip(),
            "workers": list(workers) if workers is not None else grid.workers,
            "officer": officer if officer is not None else grid.officer, "v": version_id, "code": code,
        },
    )  # fmt: skip
    if target != code:
        return EditResult(added=[target], removed=[code])
    return EditResult(changed=[code])


def add_grid(
    session: Session,
    version_id: int,
    *,
    community_code: str,
    geom: BaseGeometry,
    limits: OutlineLimits,
    name: str,
    code: str | None = None,
    workers: Sequence[str] = (),
    officer: str | None = None,
) -> EditResult:
    """A new grid in a community of the draft (the next free serial unless ``code`` is given)."""
    editable_draft(session, version_id)
    _require_outline(geom, "the new grid's outline", limits)
    if code is None:
        _check_community(session, version_id, community_code)
        (code,) = _next_codes(session, community_code, 1)
    elif _check_new_code(session, version_id, code) != community_code:
        raise EditRejected(f"grid code {code} does not start with its community's code {community_code}")
    _insert_grid(session, version_id, code, name.strip() or code, community_code, list(workers), officer, geom)
    return EditResult(added=[code])


def remove_grid(session: Session, version_id: int, code: str) -> EditResult:
    """Delete grid ``code`` from the draft (its ground is a gap until a neighbour takes it)."""
    editable_draft(session, version_id)
    _grid(session, version_id, code)
    session.execute(text("DELETE FROM grids WHERE version_id = :v AND code = :c"), {"v": version_id, "c": code})
    return EditResult(removed=[code])


# --- helpers -------------------------------------------------------------------------------------
def repair_draft_slivers(
    session: Session, version_id: int, *, community_code: str | None, max_m2: float, tolerance_m2: float, epsg: int
) -> EditResult:
    """Give each sliver of a community's grids to the grid with the longest shared edge, as ``city load --fix`` does.

    Slivers are gaps (against the community) and overlaps from ``tolerance_m2`` up to ``max_m2``.
    """
    editable_draft(session, version_id)
    communities = session.execute(
        text(
            "SELECT code, ST_AsBinary(geom) AS wkb FROM regions WHERE version_id = :v AND level = 'community' "
            "AND (CAST(:c AS text) IS NULL OR code = :c) ORDER BY code"
        ),
        {"v": version_id, "c": community_code},
    ).all()
    if community_code is not None and not communities:
        raise EditRejected(f"the draft has no community {community_code}")
    area_m2, length_m = metric_area(epsg), metric_length(epsg)
    grids = session.execute(  # every grid concerned at once, not one query per community
        text(
            "SELECT community_code, code, ST_AsBinary(geom) AS wkb FROM grids WHERE version_id = :v "
            "AND (CAST(:c AS text) IS NULL OR community_code = :c) ORDER BY code FOR UPDATE"
        ),
        {"v": version_id, "c": community_code},
    ).all()
    by_community: dict[str, list] = {}
    for grid in grids:
        by_community.setdefault(grid.community_code, []).append(grid)
    result = EditResult()
    for community in communities:
        rows = by_community.get(community.code)
        if not rows:
            continue
        geoms = shapely.from_wkb([bytes(r.wkb) for r in rows])
        if not shapely.is_valid(geoms).all():
            continue  # validation reports invalid outlines; slivers are judged on valid ones only
        codes = [r.code for r in rows]
        parent = shapely.from_wkb(bytes(community.wkb))
        fixed, repairs = repair_slivers(geoms, codes, area_m2=area_m2, length_m=length_m, parent=parent,
                                        tolerance_m2=tolerance_m2, max_m2=max_m2)  # fmt: skip
        for code, before, after in zip(codes, geoms, fixed, strict=True):
            if not shapely.equals_exact(before, after, 0.0):
                _write_geom(session, version_id, code, after)
                result.changed.append(code)
        result.repairs += [str(r) for r in repairs]
    return result


def _grid(session: Session, version_id: int, code: str) -> GridRow:
    row = session.execute(
        text(
            "SELECT code, name, community_code, workers, officer, ST_AsBinary(geom) AS wkb "
            "FROM grids WHERE version_id = :v AND code = :c FOR UPDATE"
        ),
        {"v": version_id, "c": code},
    ).first()
    if row is None:
        raise EditRejected(f"the draft has no grid {code}")
    return GridRow(
        row.code, row.name, row.community_code, list(row.workers or ()), row.officer, shapely.from_wkb(bytes(row.wkb))
    )


def _require_outline(geom: BaseGeometry, what: str, limits: OutlineLimits) -> None:
    if (why := outline_problem(geom, limits)) is not None:
        raise EditRejected(f"{what} {why}")


def _polygons(geom: BaseGeometry) -> list[shapely.Polygon]:
    return [p for p in shapely.get_parts(geom) if isinstance(p, shapely.Polygon) and not p.is_empty]


def _write_geom(session: Session, version_id: int, code: str, geom: BaseGeometry) -> None:
    session.execute(
        text("UPDATE grids SET geom = ST_GeomFromWKB(:wkb, 4326) WHERE version_id = :v AND code = :c"),
        {"wkb": shapely.to_wkb(as_multipolygon(geom)), "v": version_id, "c": code},
    )


def _insert_grid(
    session: Session,
    version_id: int,
    code: str,
    name: str,
    community_code: str,
    workers: list[str],
    officer: str | None,
    geom: BaseGeometry,
) -> None:
    session.execute(
        text(
            "INSERT INTO grids (version_id, code, name, community_code, workers, officer, geom) "
            "VALUES (:v, :c, :n, :cc, :w, :o, ST_GeomFromWKB(:wkb, 4326))"
        ),
        {
            "v": version_id,
            "c": code,
            "n": name,
            "cc": community_code,
            "w": workers,
            "o": officer,
            "wkb": shapely.to_wkb(as_multipolygon(geom)),
        },  # fmt: skip
    )


def _check_community(session: Session, version_id: int, community_code: str) -> None:
    found = session.execute(
        text("SELECT 1 FROM regions WHERE version_id = :v AND code = :c AND level = 'community'"),
        {"v": version_id, "c": community_code},
    ).first()
    if found is None:
        raise EditRejected(f"{community_code} is not a community of this draft")


def _check_new_code(session: Session, version_id: int, code: str) -> str:
    """The community a new grid code belongs to; EditRejected when the code is malformed or taken."""
    if not GRID_CODE.fullmatch(code):
        raise EditRejected(f"grid code {code!r} must be 15 digits: its community's 12-digit code + a 3-digit serial")
    _check_community(session, version_id, code[:12])
    taken = session.execute(
        text("SELECT 1 FROM grids WHERE version_id = :v AND code = :c"), {"v": version_id, "c": code}
    ).first()
    if taken:
        raise EditRejected(f"grid code {code} is already used in this draft")
    return code[:12]


def _next_codes(session: Session, community_code: str, n: int) -> list[str]:
    """The next ``n`` serials after the highest one the community has used in any version.

    Never reusing a serial keeps a grid code meaning one piece of ground across history.
    """
    highest = session.execute(
        text("SELECT max(right(code, 3)::int) FROM grids WHERE community_code = :c"), {"c": community_code}
    ).scalar()
    first = (highest or 0) + 1
    if first + n - 1 > MAX_SERIAL:
        raise EditRejected(f"community {community_code} has no free grid serials left (at most {MAX_SERIAL})")
    return [f"{community_code}{serial:03d}" for serial in range(first, first + n)]


def _conform_neighbours(session: Session, version_id: int, changed: BaseGeometry, skip: set[str]) -> list[str]:
    rows = session.execute(
        text(
            "SELECT code, ST_AsBinary(geom) AS wkb FROM grids WHERE version_id = :v AND NOT (code = ANY(:skip)) "
            "AND geom && ST_Expand(ST_GeomFromWKB(:wkb, 4326), 1e-6) FOR UPDATE"
        ),
        {"v": version_id, "skip": sorted(skip), "wkb": shapely.to_wkb(shapely.envelope(changed))},
    ).all()
    conformed = []
    for row in rows:
        before = shapely.from_wkb(bytes(row.wkb))
        after = conform(before, changed)
        if not shapely.equals_exact(before, after, 0) and after.is_valid:
            _write_geom(session, version_id, row.code, after)
            conformed.append(row.code)
    return sorted(conformed)
