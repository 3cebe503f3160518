"""What changed between two boundary versions: grids and regions added, removed or changed.

A geometry counts as changed when the ground it covers changed (``shapely.equals``), not when only
vertices were added along its edges (which conforming to a neighbour's split does). Areas are
measured in the city's metric CRS, and only for what changed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.auth.scope import BoundaryView
from geoservice.boundaries.geometry import geojson_of
from geoservice.boundaries.versions import VersionInfo, get_version
from layers.crs import AreaFunction, city_metric_epsg, metric_area

COLUMNS = {"grids": "name, community_code, workers, officer", "regions": "name, level::text AS level, parent_code"}
PEOPLE = ("workers", "officer")  # a grid's team: shown only inside the reader's jurisdiction
ATTRIBUTES = {"grids": ("name", "community_code", "workers", "officer"), "regions": ("name", "level", "parent_code")}


@dataclass(frozen=True)
class Change:
    """One grid or region that differs; ``fields`` names what differs (``geometry`` among them)."""

    layer: str  # "grids" | "regions"
    code: str
    change: str  # "added" | "removed" | "changed"
    name: str
    fields: tuple[str, ...]
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    geom_before: BaseGeometry | None
    geom_after: BaseGeometry | None
    area_before_m2: float | None
    area_after_m2: float | None

    @property
    def area_change_m2(self) -> float:
        return (self.area_after_m2 or 0.0) - (self.area_before_m2 or 0.0)

    @property
    def area_change_pct(self) -> float | None:
        if not self.area_before_m2:
            return None
        return 100.0 * self.area_change_m2 / self.area_before_m2

    def as_json(self) -> dict[str, Any]:
        return {
            "code": self.code, "change": self.change, "name": self.name, "fields": list(self.fields),
            "before": self.before, "after": self.after,
            "area_before_m2": _round(self.area_before_m2), "area_after_m2": _round(self.area_after_m2),
            "area_change_m2": _round(self.area_change_m2), "area_change_pct": _round(self.area_change_pct, 3),
        }  # fmt: skip

    def feature(self) -> dict[str, Any]:
        """For the map: the new outline (the old one for a removed grid)."""
        geom = self.geom_after if self.geom_after is not None else self.geom_before
        properties = {k: v for k, v in self.as_json().items() if k not in ("before", "after")}
        return {"type": "Feature", "geometry": geojson_of(geom), "properties": {"layer": self.layer, **properties}}


@dataclass(frozen=True)
class VersionDiff:
    """Everything that differs from version ``a`` to version ``b``."""

    a: VersionInfo | None
    b: VersionInfo
    grids: list[Change]
    regions: list[Change]

    def as_json(self) -> dict[str, Any]:
        def named(v: VersionInfo | None) -> dict[str, Any] | None:
            return None if v is None else {"id": v.id, "name": v.name, "status": v.status}

        return {
            "from": named(self.a),
            "to": named(self.b),
            "summary": {
                layer: {kind: sum(c.change == kind for c in changes) for kind in ("added", "removed", "changed")}
                for layer, changes in (("grids", self.grids), ("regions", self.regions))
            },
            "grids": [c.as_json() for c in self.grids],
            "regions": [c.as_json() for c in self.regions],
        }

    def as_geojson(self) -> dict[str, Any]:
        return {"type": "FeatureCollection", "features": [c.feature() for c in (*self.grids, *self.regions)]}

    def seen_by(self, view: BoundaryView) -> VersionDiff:
        """The diff as ``view`` may see it: outside its subtree a grid's team is left out.

        A grid there whose only change is its team drops out of the diff, since that change is
        about people; regions carry no people and stay whole.
        """
        grids = []
        for change in self.grids:
            if view.sees(change.code):
                grids.append(change)
            elif fields := tuple(f for f in change.fields if f not in PEOPLE):
                grids.append(replace(change, fields=fields, before=_without_people(change.before),
                                     after=_without_people(change.after)))  # fmt: skip
        return replace(self, grids=grids)


def diff_versions(session: Session, a: int | None, b: int, *, metric_crs: str | None) -> VersionDiff:
    """Grids and regions of version ``b`` against version ``a`` (None: everything in ``b`` is added).

    ``metric_crs`` is the configured ``GEOSERVICE_METRIC_CRS`` (``RoutingSettings.metric_crs``) the
    caller passes in, so areas are in the CRS the router measures in; None: the dataset's.
    """
    area_m2 = metric_area(city_metric_epsg(session, metric_crs))
    return VersionDiff(
        a=None if a is None else get_version(session, a),
        b=get_version(session, b),
        grids=_layer_changes(session, "grids", a, b, area_m2),
        regions=_layer_changes(session, "regions", a, b, area_m2),
    )


def _layer_changes(session: Session, layer: str, a: int | None, b: int, area_m2: AreaFunction) -> list[Change]:
    before = _rows(session, layer, a) if a is not None else {}
    after = _rows(session, layer, b)
    changes = []
    for code in sorted(before.keys() | after.keys()):
        old, new = before.get(code), after.get(code)
        if old is None or new is None:
            row = new or old
            assert row is not None
            geom = shapely.from_wkb(row["wkb"])
            changes.append(Change(
                layer, code, "added" if old is None else "removed", row["name"], ("geometry", *ATTRIBUTES[layer]),
                None if old is None else _attributes(old, layer), None if new is None else _attributes(new, layer),
                None if old is None else geom, None if new is None else geom,
                None if old is None else area_m2(geom), None if new is None else area_m2(geom),
            ))  # fmt: skip
            continue
        fields = [f for f in ATTRIBUTES[layer] if old[f] != new[f]]
        geom_old = geom_new = None
        if old["wkb"] != new["wkb"]:
            geom_old, geom_new = shapely.from_wkb(old["wkb"]), shapely.from_wkb(new["wkb"])
            if not _same_ground(geom_old, geom_new):
                fields.insert(0, "geometry")
        if not fields:
            continue
        moved = "geometry" in fields
        changes.append(Change(
            layer, code, "changed", new["name"], tuple(fields), _attributes(old, layer), _attributes(new, layer),
            geom_old if moved else None, geom_new if moved else shapely.from_wkb(new["wkb"]),
            area_m2(geom_old) if moved else None, area_m2(geom_new) if moved else None,
        ))  # fmt: skip
    return changes


def _rows(session: Session, layer: str, version_id: int) -> dict[str, dict[str, Any]]:
    columns = COLUMNS[layer]
    rows = session.execute(
        text(f"SELECT code, {columns}, ST_AsBinary(geom) AS wkb FROM {layer} WHERE version_id = :v"),
        {"v": version_id},
    ).all()
    return {
        r.code: {**r._mapping, "wkb": bytes(r.wkb), **({"workers": list(r.workers or ())} if layer == "grids" else {})}
        for r in rows
    }


def _without_people(attributes: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if attributes is None else {k: v for k, v in attributes.items() if k not in PEOPLE}


def _attributes(row: dict[str, Any], layer: str) -> dict[str, Any]:
    return {f: row[f] for f in ATTRIBUTES[layer]}


def _same_ground(a: BaseGeometry, b: BaseGeometry) -> bool:
    if a.is_valid and b.is_valid:
        return bool(shapely.equals(a, b))
    return bool(shapely.equals_exact(a, b, 0))


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)
