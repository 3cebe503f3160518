"""``/tiles/{layer}/{z}/{x}/{y}.mvt`` and ``/tiles/{layer}.json`` (TileJSON 3.0.0) for signed-in staff.

The caller's scope goes into the tile query and the cache key: a dispatcher's tile never holds a
grid or an event outside their region (the event scope is ``geoservice.events.queries``'s, the
very fragment the event lists use). Answers carry a content ETag and ``Cache-Control: private,
no-cache`` (a browser keeps the tile and asks again with ``If-None-Match``; unchanged data is a
bodiless 304). A tile with nothing in it is a 204 with no body: cheap to send, and what map clients
expect. Zooms outside a layer's range are a 404 problem, so a client cannot ask PostGIS for a
whole-city tile of every grid at zoom 3.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from geoservice.api.compression import EncodedBodies
from geoservice.api.problems import ProblemError
from geoservice.auth.policy import STAFF, allow, policy
from geoservice.auth.scope import region_scope, scope_of, scope_sql
from geoservice.auth.users import Principal
from geoservice.events.deadlines import COLOURS, warning_sql
from geoservice.events.queries import EventFilters, filter_clauses
from geoservice.events.workflow import STATUSES
from geoservice.settings import EventSettings
from layers.crs import city_metric_epsg
from layers.models import PostLevel
from tiles.address import MAX_ZOOM, BadTileAddress, TileAddress, tile_at
from tiles.catalog import LAYERS, TileFilters, TileLayer, TileScope
from tiles.event_points import EventScope, Thresholds
from tiles.service import Rules, TileAnswer, TileService
from tiles.tilejson import tilejson

log = logging.getLogger(__name__)
MVT = "application/vnd.mapbox-vector-tile"
VIEWERS = allow(STAFF)
router = APIRouter(tags=["tiles"])
Viewer = Annotated[Principal, Depends(VIEWERS)]
LayerName = Annotated[str, Path(description=", ".join(LAYERS), examples=["grids"])]
# The tile route's text filters and their longest accepted values; the cache-hit path (tile_hits) checks the same.
FILTER_MAX_LENGTH = {"status": 300, "warning": 60, "category": 80, "level": 60, "owner": 70}
OWNER_KINDS = ("unit", "department")
OWNER_HELP = "events: who holds them now, unit:<region or grid code> or department:<code>"
TIME_FILTERS = ("from", "to")


def _text_filter(name: str, description: str) -> Any:
    return Query(max_length=FILTER_MAX_LENGTH[name], description=description)


@router.get(
    "/tiles/{layer}/{z}/{x}/{y}.mvt",
    responses={200: {"content": {MVT: {}}}, 204: {"description": "nothing to draw there"}, 304: {}},
    **policy(VIEWERS),
)
async def get_tile(
    request: Request,
    principal: Viewer,
    layer: LayerName,
    z: Annotated[int, Path(ge=0, le=MAX_ZOOM, examples=[12])],
    x: Annotated[int, Path(ge=0, examples=[3419])],
    y: Annotated[int, Path(ge=0, examples=[1661])],
    status: Annotated[str | None, _text_filter("status", "events: comma-separated states")] = None,
    warning: Annotated[str | None, _text_filter("warning", "events: none, blue, yellow, red")] = None,
    category: Annotated[str | None, _text_filter("category", "events: a class includes its subcategories")] = (
        None
    ),
    reported_from: Annotated[datetime | None, Query(alias="from", description="events: reported at or after")] = None,
    reported_to: Annotated[datetime | None, Query(alias="to", description="events: reported before")] = None,
    level: Annotated[str | None, _text_filter("level", "posts and rings: comma-separated levels")] = None,
    owner: Annotated[str | None, _text_filter("owner", OWNER_HELP)] = None,
) -> Response:
    """One Mapbox Vector Tile of the layer, holding only what the caller may see."""
    given = {"status": status, "warning": warning, "category": category, "from": reported_from,
             "to": reported_to, "level": level, "owner": owner}  # fmt: skip
    asked = TileRequest.check(request.app, principal, layer, (z, x, y), given)
    answer = asked.cached()  # a hit never leaves the event loop
    if answer is None:
        answer = await run_in_threadpool(asked.built, request.app)  # one hop off the loop, one round trip
    headers = request.headers
    return tile_response(answer, headers.get("if-none-match"), headers.get("accept-encoding"),
                         request.app.state.encoded_tiles)  # fmt: skip


@router.get("/tiles/{layer}.json", **policy(VIEWERS))
def get_tilejson(
    request: Request,
    principal: Viewer,
    layer: LayerName,
    status: Annotated[str | None, _text_filter("status", "events: comma-separated states")] = None,
    warning: Annotated[str | None, _text_filter("warning", "events: none, blue, yellow, red")] = None,
    category: Annotated[str | None, _text_filter("category", "events: a class includes its subcategories")] = (
        None
    ),
    reported_from: Annotated[datetime | None, Query(alias="from", description="events: reported at or after")] = None,
    reported_to: Annotated[datetime | None, Query(alias="to", description="events: reported before")] = None,
    level: Annotated[str | None, _text_filter("level", "posts and rings: comma-separated levels")] = None,
    owner: Annotated[str | None, _text_filter("owner", OWNER_HELP)] = None,
) -> JSONResponse:
    """TileJSON 3.0.0: the tile URL, bounds and centre of the data, zooms and the fields of each feature.

    It takes the tiles' filters and checks them as the tiles do; the ``tiles`` URL carries them, so a
    map client that only reads the TileJSON draws what was asked for.
    """
    found = _layer(layer)
    given = {"status": status, "warning": warning, "category": category, "from": reported_from,
             "to": reported_to, "level": level, "owner": owner}  # fmt: skip
    not_filters = {name: "" for name in request.query_params if name not in given}
    tile_filters(found, {**given, **not_filters}, event_settings(request.app))
    service, rules = service_and_rules(request.app)
    extent = service.extent(found, service.versions.current(), rules)
    base = str(request.base_url).rstrip("/")
    return JSONResponse(tilejson(found, base, extent, urlencode(request.query_params.multi_items(), safe=",:")))


@dataclass(frozen=True)
class TileRequest:
    """A checked tile request in the tile service's terms: which tile, for whom, filtered how."""

    service: TileService
    layer: str
    address: TileAddress
    scope: TileScope
    filters: TileFilters

    @classmethod
    def check(
        cls, app: FastAPI, principal: Principal, layer: str, zxy: tuple[int, int, int], given: dict[str, object]
    ) -> TileRequest:
        """The request, or a ProblemError saying what is wrong with it."""
        found = _layer(layer)
        try:
            address = TileAddress(*zxy)
        except BadTileAddress as exc:
            raise ProblemError(404, "No such tile", str(exc)) from exc
        if not found.minzoom <= address.z <= found.maxzoom:
            detail = (f"layer {layer!r} is served at zooms {found.minzoom}..{found.maxzoom}; "
                      f"ask for {address.z} there instead")  # fmt: skip
            raise ProblemError(404, "Zoom outside the layer's range", detail)
        filters = tile_filters(found, given, event_settings(app))
        return cls(tile_service(app), layer, address, tile_scope(principal), filters)

    def cached(self) -> TileAnswer | None:
        """The tile from the cache if it is there and still right; no I/O on the caller's thread."""
        if self.service.versions.refresh_ahead():
            asyncio.get_running_loop().run_in_executor(None, _read_versions, self.service)
        return self.service.cached_tile(self.layer, self.address, self.scope, self.filters)

    def built(self, app: FastAPI) -> TileAnswer:
        """The tile from the service, built when the cache cannot answer (blocking: run it in a thread).

        The rules and the tile in one thread hop, not two (a hop is about 30 µs on an idle loop, more
        when the workers are busy; measured with ``anyio.to_thread.run_sync`` under uvloop).
        """
        _, rules = service_and_rules(app)
        return self.service.tile(self.layer, self.address, self.scope, self.filters, rules)


def tile_response(
    answer: TileAnswer, if_none_match: str | None, accept_encoding: str | None, encoded: EncodedBodies
) -> Response:
    """The answer as HTTP: 304 for a client holding it, 204 for an empty tile, else the tile.

    A client accepting compression gets the tile compressed once per content and coding
    (``geoservice.api.compression``), with a weak ETag, as the compression middleware would send it.
    """
    headers = {"ETag": answer.etag, "Cache-Control": "private, no-cache", "Vary": "Authorization, Accept-Encoding",
               "X-Tile-Cache": "hit" if answer.cached else "miss"}  # fmt: skip
    if answer.etag in _etags(if_none_match):
        return Response(status_code=304, headers=headers)
    if not answer.body:
        return Response(status_code=204, headers=headers)
    coding = encoded.choose(answer.body, accept_encoding)
    if coding is None:
        return Response(answer.body, media_type=MVT, headers=headers)
    body = encoded.get(answer.etag, answer.body, coding)
    headers |= {"Content-Encoding": coding, "ETag": f"W/{answer.etag}"}
    return Response(body, media_type=MVT, headers=headers)


def tile_scope(principal: Principal) -> TileScope:
    """The caller's scope as SQL for the tiles: region-scoped staff by code prefix, events by the event rules."""
    events = scope_of(principal)
    where, params = scope_sql(events, "e")
    prefix = region_scope(principal)
    region = principal.region_code if prefix is not None else None
    key = f"{events.everything}:{events.region_prefix}:{events.department_code}:{events.reporter_username}:{prefix}"
    counted = EventScope(events.everything, events.region_prefix, events.department_code, events.reporter_username)
    return TileScope(key, prefix, region, where, tuple(sorted(params.items())), counted)


def tile_filters(layer: TileLayer, given: dict[str, object], settings: EventSettings) -> TileFilters:
    """Check the query string against the layer: filters it does not know are a 422, not silently ignored.

    ``given`` holds every filter of the route (None when not asked); any other name in it is refused too.

    The events filters go to the tile query as SQL written by the event lists' own builder.
    """
    asked = {name for name, value in given.items() if value is not None}
    unknown = asked - layer.filters
    if unknown:
        known = ", ".join(sorted(layer.filters)) or "none"
        raise ProblemError(422, "Invalid filter", f"layer {layer.name!r} takes no {', '.join(sorted(unknown))} "
                           f"filter; it takes: {known}")  # fmt: skip
    for name in ("from", "to"):
        moment = given[name]
        if isinstance(moment, datetime) and moment.tzinfo is None:
            raise ProblemError(422, "Invalid request", f"{name} needs a time zone, e.g. 2026-11-01T00:00:00+08:00")
    since, until = (_utc(given[name], name) for name in ("from", "to"))
    if isinstance(since, datetime) and isinstance(until, datetime) and since >= until:
        raise ProblemError(422, "Invalid request", "from must be before to")
    statuses, warnings = _listed(given["status"], STATUSES, "status"), _listed(given["warning"], COLOURS, "warning")
    category = given["category"] if isinstance(given["category"], str) else None
    since, until = (t if isinstance(t, datetime) else None for t in (since, until))
    owner = _owner(given.get("owner"))
    owner_kind, owner_code = owner.split(":", 1) if owner else (None, None)
    clauses, params = filter_clauses(EventFilters(statuses, warnings, category, reported_from=since, reported_to=until,
                                                  owner_kind=owner_kind, owner_code=owner_code), settings)  # fmt: skip
    return TileFilters(
        statuses=statuses,
        warnings=warnings,
        category=category,
        reported_from=since.isoformat() if since else None,
        reported_to=until.isoformat() if until else None,
        owner=owner,
        levels=_listed(given["level"], tuple(PostLevel), "level"),
        event_where=" AND ".join(clauses) or "TRUE",
        event_params=tuple(sorted(params.items())),
    )


def event_settings(app: FastAPI) -> EventSettings:
    """The app's warning thresholds and deadlines, built once with the app."""
    return app.state.event_settings


def tile_service(app: FastAPI) -> TileService:
    """The process's tile service (tests may set ``app.state.tile_service`` with their own settings)."""
    service = getattr(app.state, "tile_service", None)
    if service is None:
        service = app.state.tile_service = TileService(app.state.engine, app.state.tile_settings)
    return service


def metric_epsg(app: FastAPI, session: Session) -> int:
    """The city's metric CRS (the app's ``GEOSERVICE_METRIC_CRS``, else the dataset's); 503 while nothing is loaded."""
    try:
        return city_metric_epsg(session, app.state.routing_settings.metric_crs)
    except ValueError as exc:  # nothing loaded yet: no metric CRS to buffer rings or count cells in
        raise ProblemError(503, "No data loaded", str(exc)) from exc


def service_and_rules(app: FastAPI) -> tuple[TileService, Rules]:
    """The tile service and the rules its tiles follow, read from the data on first use."""
    service = tile_service(app)
    rules = getattr(app.state, "tile_rules", None)
    if rules is None:
        with app.state.sessions() as session:
            epsg = metric_epsg(app, session)
        settings = event_settings(app)
        thresholds = Thresholds(settings.warning_blue, settings.warning_yellow, settings.warning_red)
        rules = Rules(epsg, dict(app.state.routing_settings.rings_m), warning_sql(settings), thresholds)
        app.state.tile_rules = rules
    return service, rules


def prepare_tiles(app: FastAPI) -> None:
    """Ready everything a first tile would otherwise wait for, at start.

    The rules, the data versions, each layer's extent, the events in memory, and one tile of each
    layer (which readies its query on the connection at hand).

    With nothing loaded yet there is nothing to prepare: the first tile asked for does it.
    """
    try:
        service, rules = service_and_rules(app)
    except ProblemError:
        return
    current = service.versions.current()
    if service.settings.events_in_memory:
        service.event_points.columns(current["events"])
    for layer in LAYERS.values():
        extent = service.extent(layer, current, rules)
        if extent is not None:
            z = max(layer.minzoom, 12)
            x, y = tile_at((extent[0] + extent[2]) / 2, (extent[1] + extent[3]) / 2, z)
            service.build(layer, TileAddress(z, x, y), TileScope(), TileFilters(), rules, current)


def _read_versions(service: TileService) -> None:
    try:
        service.versions.read_ahead()
    except Exception:  # the next request reads them itself, and meets the error there
        log.exception("could not read the data versions ahead of time")


def _utc(moment: object, name: str) -> datetime | None:
    """In UTC: PostgreSQL refuses offsets beyond ±15:59 that Python accepts, and the cache key gets one spelling."""
    if not isinstance(moment, datetime):
        return None
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ProblemError(422, "Invalid request", f"{name} is outside the range of times this service keeps") from exc


def _layer(name: str) -> TileLayer:
    found = LAYERS.get(name)
    if found is None:
        raise ProblemError(404, "No such layer", f"there is no tile layer {name!r}; layers: {', '.join(LAYERS)}")
    return found


def _listed(value: object, known: tuple[str, ...], name: str) -> tuple[str, ...]:
    if not isinstance(value, str) or not value:
        return ()
    items = tuple(sorted({v.strip() for v in value.split(",") if v.strip()}))
    unknown = [v for v in items if v not in known]
    if unknown:
        raise ProblemError(422, "Invalid filter", f"unknown {name} {', '.join(unknown)}; known: {', '.join(known)}")
    return items


def _owner(value: object) -> str | None:
    """``unit:<code>`` or ``department:<code>`` (the keys of ``/v1/stats/counts?by=owner``), else a 422."""
    if not isinstance(value, str) or not value:
        return None
    kind, _, code = value.partition(":")
    if kind not in OWNER_KINDS or not code.strip():
        raise ProblemError(422, "Invalid filter", f"owner is unit:<region or grid code> or department:<code>, "
                           f"not {value!r}")  # fmt: skip
    return f"{kind}:{code.strip()}"


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}
