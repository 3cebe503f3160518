"""What publishing a draft would change, against the version in force: the planner's impact report.

Grids added, removed and changed (area change in m² and %, in the metric CRS); key places and
police posts whose grid (and so worker team and officer) would change; open events whose grid or
department would change, and whether publishing re-routes them or keeps their assignment; people
moved between grids where a population layer is loaded. Places, posts and population points are
placed by the routers of both versions (the same code that answers ``/v1/locate``); open events
are compared with where they are routed now. Nothing is written.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.auth.scope import BoundaryView, Scope, scope_sql
from geoservice.boundaries.diff import VersionDiff, diff_versions
from geoservice.boundaries.reroute import EventMove, event_moves
from geoservice.boundaries.versions import current_version_id
from geoservice.routing.loader import load_router
from geoservice.routing.router import Router
from geoservice.settings import RoutingSettings


@dataclass(frozen=True)
class PlaceMove:
    """A key place or police post that would be in another grid."""

    layer: str  # "places" | "posts"
    code: str
    name: str
    kind: str  # place type or post level
    lon: float
    lat: float
    old: dict[str, Any]
    new: dict[str, Any]


@dataclass
class Impact:
    """The impact report of one draft."""

    diff: VersionDiff
    places: list[PlaceMove] = field(default_factory=list)
    posts: list[PlaceMove] = field(default_factory=list)
    events: list[EventMove] = field(default_factory=list)
    population_layer: bool = False
    population_flows: dict[tuple[str, str], float] = field(default_factory=dict)

    def seen_by(self, session: Session, view: BoundaryView) -> Impact:
        """The report as ``view`` may see it.

        Grids outside the subtree keep their codes, names and outlines only; a place, post or
        population flow is listed when it leaves or enters the subtree, with the team of the grid on
        the far side left out; events are listed only when the reader may see them (``scope_sql``).
        """
        visible = _visible_events(session, [e.id for e in self.events], view.events)
        return Impact(
            diff=self.diff.seen_by(view),
            places=[_seen_move(m, view) for m in self.places if _touches(m, view)],
            posts=[_seen_move(m, view) for m in self.posts if _touches(m, view)],
            events=[e for e in self.events if e.id in visible],
            population_layer=self.population_layer,
            population_flows={k: n for k, n in self.population_flows.items() if view.sees(k[0]) or view.sees(k[1])},
        )

    @property
    def population_moved(self) -> float:
        return float(sum(self.population_flows.values()))

    def as_json(self) -> dict[str, Any]:
        diff = self.diff.as_json()
        return {
            "draft": diff["to"],
            "base": diff["from"],
            "summary": {
                "grids": diff["summary"]["grids"],
                "places": len(self.places),
                "posts": len(self.posts),
                "events": {
                    "reroute": sum(e.action == "reroute" for e in self.events),
                    "keep": sum(e.action == "keep" for e in self.events),
                },
                "population_moved": round(self.population_moved, 1) if self.population_layer else None,
            },
            "grids": {
                kind: [c.as_json() for c in self.diff.grids if c.change == kind]
                for kind in ("added", "removed", "changed")
            },
            "places": [_place_json(p) for p in self.places],
            "posts": [_place_json(p) for p in self.posts],
            "events": [_event_json(e) for e in self.events],
            "population": None
            if not self.population_layer
            else {
                "moved": round(self.population_moved, 1),
                "flows": [
                    {"from_grid": a or None, "to_grid": b or None, "people": round(n, 1)}
                    for (a, b), n in sorted(self.population_flows.items())
                ],
            },
        }

    def as_geojson(self) -> dict[str, Any]:
        """Changed grids as polygons, places, posts and events that move as points, for the map."""
        features = [c.feature() for c in self.diff.grids]
        for move in (*self.places, *self.posts):
            features.append(_point(move.lon, move.lat, {"layer": move.layer, **_place_json(move)}))
        for event in self.events:
            features.append(_point(event.lon, event.lat, {"layer": "events", **_event_json(event)}))
        return {"type": "FeatureCollection", "features": features}

    def as_csv(self) -> str:
        """One row per changed grid, moved place, post, event and population flow."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["item", "code", "name", "change", "from_grid", "to_grid", "area_before_m2",
                         "area_after_m2", "area_change_m2", "area_change_pct", "people", "lon", "lat"])  # fmt: skip
        for c in self.diff.grids:
            row = c.as_json()
            writer.writerow(["grid", c.code, c.name, c.change + (f" ({', '.join(c.fields)})" if c.change == "changed"
                             else ""), "", "", row["area_before_m2"], row["area_after_m2"], row["area_change_m2"],
                             row["area_change_pct"], "", "", ""])  # fmt: skip
        for p in (*self.places, *self.posts):
            writer.writerow([p.layer[:-1], p.code, p.name, p.kind, p.old["grid_code"], p.new["grid_code"],
                             "", "", "", "", "", p.lon, p.lat])  # fmt: skip
        for e in self.events:
            writer.writerow(["event", e.id, e.category_code, f"{e.action} ({e.status})", e.old["grid_code"],
                             e.new["grid_code"], "", "", "", "", "", e.lon, e.lat])  # fmt: skip
        for (a, b), people in sorted(self.population_flows.items()):
            writer.writerow(["population", "", "", "moved", a, b, "", "", "", "", round(people, 1), "", ""])
        return out.getvalue()


def impact_report(
    session: Session,
    draft_id: int,
    *,
    base_id: int | None = None,
    settings: RoutingSettings,
    base_router: Router | None = None,
) -> Impact:
    """The impact of putting ``draft_id`` in force instead of ``base_id`` (default: the version in force).

    ``settings`` are the caller's (the app's, a CLI command's): the routers and the areas of the diff
    are both measured in their ``metric_crs``.
    """
    base_id = base_id if base_id is not None else current_version_id(session)
    report = Impact(diff_versions(session, base_id, draft_id, metric_crs=settings.metric_crs))
    draft_router = load_router(session, draft_id, settings)
    if base_id is not None and (base_router is None or base_router.version_id != base_id):
        base_router = load_router(session, base_id, settings)
    elif base_id is None:
        base_router = None
    report.events = event_moves(session, draft_router)
    if base_router is None or not report.diff.grids:
        return report
    report.places = _moves(session, "places", base_router, draft_router)
    report.posts = _moves(session, "posts", base_router, draft_router)
    report.population_layer, report.population_flows = _population(session, report.diff, base_router, draft_router)
    return report


PLACE_QUERIES = {
    "places": "SELECT code, name, type AS kind, ST_X(p) AS lon, ST_Y(p) AS lat "
    "FROM (SELECT code, name, type, ST_PointOnSurface(geom) AS p FROM key_places) k ORDER BY code",
    "posts": "SELECT code, name, level::text AS kind, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM police_posts "
    "ORDER BY code",
}


def _moves(session: Session, layer: str, before: Router, after: Router) -> list[PlaceMove]:
    rows = session.execute(text(PLACE_QUERIES[layer])).all()
    if not rows:
        return []
    lon = np.array([r.lon for r in rows], dtype=float)
    lat = np.array([r.lat for r in rows], dtype=float)
    old, new = _grids_of(before, lon, lat), _grids_of(after, lon, lat)
    teams_before, teams_after = _teams(before), _teams(after)
    return [
        PlaceMove(layer, row.code, row.name, row.kind, row.lon, row.lat,
                  {"grid_code": old[k] or None, **teams_before.get(old[k], {})},
                  {"grid_code": new[k] or None, **teams_after.get(new[k], {})})
        for k, row in enumerate(rows)
        if old[k] != new[k]
    ]  # fmt: skip


def _touches(move: PlaceMove, view: BoundaryView) -> bool:
    return view.sees(move.old["grid_code"]) or view.sees(move.new["grid_code"])


def _seen_move(move: PlaceMove, view: BoundaryView) -> PlaceMove:
    def side(grid: dict[str, Any]) -> dict[str, Any]:
        return grid if view.sees(grid["grid_code"]) else {"grid_code": grid["grid_code"]}

    return replace(move, old=side(move.old), new=side(move.new))


def _visible_events(session: Session, ids: list[int], scope: Scope) -> set[int]:
    if not ids or scope.everything:
        return set(ids)
    where, params = scope_sql(scope)
    query = text(f"SELECT e.id FROM events e WHERE e.id = ANY(:ids) AND {where}")
    return {r.id for r in session.execute(query, {"ids": ids, **params})}


def _population(
    session: Session, diff: VersionDiff, before: Router, after: Router
) -> tuple[bool, dict[tuple[str, str], float]]:
    if session.execute(text("SELECT 1 FROM population LIMIT 1")).first() is None:
        return False, {}
    changed = [g for c in diff.grids for g in (c.geom_before, c.geom_after) if g is not None and "geometry" in c.fields]
    if not changed:
        return True, {}
    # Only points near changed ground can change grid: a bounding box query keeps the rest in PostGIS.
    minx, miny, maxx, maxy = shapely.total_bounds(changed)
    margin = 0.001  # about 100 m: more than the snap tolerance, so snapped points are included
    rows = session.execute(
        text(
            "SELECT count, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM population "
            "WHERE geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)"
        ),
        {"x0": minx - margin, "y0": miny - margin, "x1": maxx + margin, "y1": maxy + margin},
    ).all()
    if not rows:
        return True, {}
    lon = np.array([r.lon for r in rows], dtype=float)
    lat = np.array([r.lat for r in rows], dtype=float)
    old, new = _grids_of(before, lon, lat), _grids_of(after, lon, lat)
    flows: dict[tuple[str, str], float] = defaultdict(float)
    for k, row in enumerate(rows):
        if old[k] != new[k]:
            flows[(old[k], new[k])] += float(row.count)
    return True, dict(flows)


def _grids_of(router: Router, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return router.codes_of(router.locate_many(lon, lat))["grid_code"]


def _teams(router: Router) -> dict[str, dict[str, Any]]:
    return {g.code: {"workers": list(g.workers), "officer": g.officer} for g in router.grids}


def _place_json(move: PlaceMove) -> dict[str, Any]:
    return {
        "code": move.code, "name": move.name, "kind": move.kind, "lon": move.lon, "lat": move.lat,
        "from": move.old, "to": move.new,
    }  # fmt: skip


def _event_json(move: EventMove) -> dict[str, Any]:
    return {
        "id": move.id, "status": move.status, "category": move.category_code, "action": move.action,
        "lon": move.lon, "lat": move.lat, "from": move.old, "to": move.new,
    }  # fmt: skip


def _point(lon: float, lat: float, properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": properties}
