"""The layers as OGC API - Features (Part 1: Core, GeoJSON): what QGIS, ArcGIS and OWSLib speak.

``/`` (landing page) and ``/conformance`` hold no data and are open; ``/collections…`` are for
signed-in staff (QGIS sends the bearer token as a connection header) and, like every list here,
hold only what the caller's scope allows. Parameter errors are 400 problems, as the standard
requires; a ``limit`` above the maximum is lowered to it, also as the standard requires. Paging
is by offset over a stable order, with ``next`` / ``prev`` links. Coordinates are CRS84 (WGS84
lon/lat) unless ``crs`` asks for another (Part 2, ``feature_crs``); ``bbox`` keeps the features whose
shape intersects the box (not merely their envelope); ``/queryables`` (Part 3) lists the properties
filtered by ``?name=value``. Grids and regions are those of the boundary version in force.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.api.deps import SessionDep
from geoservice.api.feature_collections import COLLECTIONS, Collection
from geoservice.api.feature_crs import CRS84, SERVED, STORAGE, FeatureCrs, crs_named
from geoservice.api.feature_queryables import SCHEMA, queryables_links, queryables_schema
from geoservice.api.feature_time import city_zone, time_window
from geoservice.api.problems import ProblemError
from geoservice.api.query_params import reads_own_query
from geoservice.auth.policy import EVERYONE, STAFF, allow, policy
from geoservice.auth.users import Principal
from geoservice.boundaries.versions import current_version_id
from geoservice.inputs import text_problem

GEOJSON = "application/geo+json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
]
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
BIGINT_MAX = 2**63 - 1
PAGING = {"limit", "offset", "bbox", "datetime", "f", "crs", "bbox-crs"}
ONE_FEATURE = {"f", "crs"}
OPEN = allow(EVERYONE)
VIEWERS = allow(STAFF)
Viewer = Annotated[Principal, Depends(VIEWERS)]
CollectionId = Annotated[str, Path(description=", ".join(COLLECTIONS), examples=["grids"])]

router = APIRouter(tags=["OGC API - Features"])


@router.get("/", **policy(OPEN))
def landing(request: Request) -> JSONResponse:
    """The landing page: links to the API definition, the conformance classes and the collections."""
    base = _base(request)
    return JSONResponse({
        "title": "geoservice",
        "description": "Grids, regions, police posts, key places, events and forces as OGC API - Features",
        "links": [
            {"href": f"{base}/", "rel": "self", "type": "application/json", "title": "this document"},
            {"href": f"{base}/openapi.json", "rel": "service-desc", "type": OPENAPI},
            {"href": f"{base}/docs", "rel": "service-doc", "type": "text/html", "title": "the API, for people"},
            {"href": f"{base}/conformance", "rel": "conformance", "type": "application/json"},
            {"href": f"{base}/collections", "rel": "data", "type": "application/json"},
            {"href": f"{base}/map", "rel": "alternate", "type": "text/html", "title": "the risk one-map"},
        ],
    })  # fmt: skip


@router.get("/conformance", **policy(OPEN))
def conformance() -> JSONResponse:
    """The conformance classes this API implements."""
    return JSONResponse({"conformsTo": CONFORMANCE})


@router.get("/collections", **policy(VIEWERS))
def collections(request: Request, session: SessionDep, principal: Viewer) -> JSONResponse:
    """Every collection with its extent and links."""
    base = _base(request)
    return JSONResponse({
        "links": [{"href": f"{base}/collections", "rel": "self", "type": "application/json"}],
        "collections": [_describe(c, base, session) for c in COLLECTIONS.values()],
    })  # fmt: skip


@router.get("/collections/{collection_id}", **policy(VIEWERS))
def collection(request: Request, session: SessionDep, principal: Viewer, collection_id: CollectionId) -> JSONResponse:
    """One collection: its extent, queryable properties and links to its items."""
    return JSONResponse(_describe(_collection(collection_id), _base(request), session))


@router.get("/collections/{collection_id}/queryables", responses={200: {"content": {SCHEMA: {}}}},
            **policy(VIEWERS))  # fmt: skip
def queryables(request: Request, principal: Viewer, collection_id: CollectionId) -> JSONResponse:
    """What the collection's items can be filtered on (Part 3): a JSON Schema of the queryable properties."""
    return JSONResponse(queryables_schema(_collection(collection_id), _base(request)), media_type=SCHEMA)


@router.get("/collections/{collection_id}/items", responses={200: {"content": {GEOJSON: {}}}}, **policy(VIEWERS))
@reads_own_query  # one parameter per queryable property; unknown ones are OGC's 400 here
def items(request: Request, session: SessionDep, principal: Viewer, collection_id: CollectionId) -> JSONResponse:
    """Features of the collection in the caller's scope: ``bbox``, ``datetime``, ``limit``, ``offset``, properties."""
    found = _collection(collection_id)
    params = dict(request.query_params)
    unknown = set(params) - PAGING - set(found.queryables)
    if unknown:
        known = ", ".join(sorted(PAGING | set(found.queryables)))
        raise ProblemError(400, "Unknown parameter", f"{', '.join(sorted(unknown))} is not a parameter of "
                           f"{collection_id!r} items; known: {known}")  # fmt: skip
    for name, value in params.items():
        if (why := text_problem(value)) is not None:
            raise ProblemError(400, "Invalid parameter", f"{name} {why}")
    output = _output(params)
    limit = min(_integer(params.get("limit"), "limit", DEFAULT_LIMIT, low=1), MAX_LIMIT)
    offset = _integer(params.get("offset"), "offset", 0, low=0)
    where, values = _conditions(session, found, principal, params)
    columns = ", ".join(f"{sql} AS {name}" for name, sql in found.properties.items())
    rows = session.execute(
        text(
            f"SELECT {found.id_sql} AS fid, {_geojson(output)} AS geometry, {columns} FROM {found.source} "
            f"WHERE {where} ORDER BY {found.order} LIMIT :limit OFFSET :offset"
        ),
        {**values, "limit": limit, "offset": offset},
    ).all()
    matched = session.execute(text(f"SELECT count(*) FROM {found.source} WHERE {where}"), values).scalar_one()
    body = {
        "type": "FeatureCollection",
        "features": [_feature(found, row) for row in rows],
        "numberMatched": matched,
        "numberReturned": len(rows),
        "timeStamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "links": _page_links(request, offset, limit, len(rows), matched),
    }
    return JSONResponse(jsonable_encoder(body), media_type=GEOJSON, headers={"Content-Crs": output.header})


@router.get("/collections/{collection_id}/items/{feature_id}", responses={200: {"content": {GEOJSON: {}}}},
            **policy(VIEWERS))  # fmt: skip
@reads_own_query
def item(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    collection_id: CollectionId,
    feature_id: Annotated[str, Path(max_length=100, examples=["1"])],
) -> JSONResponse:
    """One feature, if it is in your scope (otherwise it does not exist for you: 404)."""
    found = _collection(collection_id)
    params = dict(request.query_params)
    if unknown := set(params) - ONE_FEATURE:
        raise ProblemError(400, "Unknown parameter", f"{', '.join(sorted(unknown))} is not a parameter of one "
                           f"feature; known: {', '.join(sorted(ONE_FEATURE))}")  # fmt: skip
    output = _output(params)
    where, values = _conditions(session, found, principal, {})
    key: Any = feature_id
    if found.id_type is int:
        if not feature_id.isdigit() or int(feature_id) > 2**63 - 1:
            raise ProblemError(404, "No such feature", f"{collection_id} ids are whole numbers; {feature_id!r} is not")
        key = int(feature_id)
    columns = ", ".join(f"{sql} AS {name}" for name, sql in found.properties.items())
    row = session.execute(
        text(
            f"SELECT {found.id_sql} AS fid, {_geojson(output)} AS geometry, {columns} FROM {found.source} "
            f"WHERE {where} AND {found.id_sql} = :fid"
        ),
        {**values, "fid": key},
    ).first()
    if row is None:
        raise ProblemError(404, "No such feature", f"there is no {collection_id} feature {feature_id!r} you may see")
    base = _base(request)
    feature = _feature(found, row)
    feature["links"] = [
        {"href": f"{base}/collections/{found.id}/items/{feature_id}", "rel": "self", "type": GEOJSON},
        {"href": f"{base}/collections/{found.id}", "rel": "collection", "type": "application/json"},
    ]
    return JSONResponse(jsonable_encoder(feature), media_type=GEOJSON, headers={"Content-Crs": output.header})


def _conditions(
    session: Session, found: Collection, principal: Principal, params: dict[str, str]
) -> tuple[str, dict[str, Any]]:
    scope, values = found.scope(principal)
    clauses = [f"({scope})"]
    values = {**values, "version": current_version_id(session)}
    if found.versioned:
        clauses.append("t.version_id = :version")
    if "bbox" in params:
        # The shape, not its envelope, must meet the box; ST_Intersects still uses the GiST index first.
        given = crs_named(params.get("bbox-crs"), "bbox-crs")
        box = f"ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, {given.srid})"
        clauses.append(f"ST_Intersects(t.geom, {box if given.srid == STORAGE.srid else f'ST_Transform({box}, 4326)'})")
        values.update(zip(("minx", "miny", "maxx", "maxy"), _bbox(params["bbox"], given), strict=True))
    elif "bbox-crs" in params:
        crs_named(params["bbox-crs"], "bbox-crs")
    if "datetime" in params:
        if found.time_sql is None:
            raise ProblemError(400, "No time in this collection", f"{found.id!r} features have no time; "
                               "drop the datetime parameter")  # fmt: skip
        window = time_window(params["datetime"], city_zone(session))
        if window.start is not None:
            clauses.append(f"{found.time_sql} >= :dt_start")
            values["dt_start"] = window.start
        if window.end is not None:
            clauses.append(f"{found.time_sql} {'<=' if window.end_inclusive else '<'} :dt_end")
            values["dt_end"] = window.end
    for i, (name, sql) in enumerate(sorted(found.queryables.items())):
        if name in params:
            clauses.append(f"{sql} = :q{i}")
            values[f"q{i}"] = params[name]
    return " AND ".join(clauses), values


def _feature(found: Collection, row: Any) -> dict[str, Any]:
    mapping = row._mapping
    properties = {name: mapping[name] for name in found.properties}
    geometry = json.loads(mapping["geometry"]) if mapping["geometry"] else None
    return {"type": "Feature", "id": mapping["fid"], "geometry": geometry, "properties": properties}


def _describe(found: Collection, base: str, session: Session) -> dict[str, Any]:
    where = "t.version_id = :version" if found.versioned else "TRUE"
    extent_sql = f"SELECT ST_Extent(t.geom) AS e FROM {found.source} WHERE {where}"
    box = session.execute(
        text(f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM ({extent_sql}) s"),
        {"version": current_version_id(session)},
    ).one()
    extent: dict[str, Any] = {"spatial": {"bbox": [list(box)] if box[0] is not None else [], "crs": CRS84.uri}}
    if found.time_sql:
        span = session.execute(text(f"SELECT min({found.time_sql}), max({found.time_sql}) FROM {found.source}")).one()
        extent["temporal"] = {"interval": [[_iso(span[0]), _iso(span[1])]]}
    items_href = f"{base}/collections/{found.id}/items"
    links = [
        {"href": f"{base}/collections/{found.id}", "rel": "self", "type": "application/json"},
        {"href": items_href, "rel": "items", "type": GEOJSON, "title": found.title},
    ]
    links += queryables_links(found, base)
    if found.id != "forces":
        links.append({"href": f"{base}/tiles/{found.id}.json", "rel": "tiles", "type": "application/json"})
    return {"id": found.id, "title": found.title, "description": found.description, "itemType": "feature",
            "crs": list(SERVED), "storageCrs": STORAGE.uri, "extent": extent,
            "queryables": sorted(found.queryables), "links": links}  # fmt: skip


def _page_links(request: Request, offset: int, limit: int, returned: int, matched: int) -> list[dict[str, Any]]:
    links = [{"href": str(request.url), "rel": "self", "type": GEOJSON, "title": "this page"}]
    if offset + returned < matched:
        nxt = request.url.include_query_params(offset=offset + limit, limit=limit)
        links.append({"href": str(nxt), "rel": "next", "type": GEOJSON, "title": "next page"})
    if offset > 0:
        prev = request.url.include_query_params(offset=max(0, offset - limit), limit=limit)
        links.append({"href": str(prev), "rel": "prev", "type": GEOJSON, "title": "previous page"})
    return links


def _collection(collection_id: str) -> Collection:
    found = COLLECTIONS.get(collection_id)
    if found is None:
        known = ", ".join(COLLECTIONS)
        raise ProblemError(404, "No such collection", f"there is no collection {collection_id!r}; collections: {known}")
    return found


def _integer(value: str | None, name: str, default: int, low: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise ProblemError(400, "Invalid parameter", f"{name} must be a whole number, got {value!r}") from exc
    if number < low:
        raise ProblemError(400, "Invalid parameter", f"{name} must be at least {low}")
    if number > BIGINT_MAX:  # PostgreSQL counts rows in bigint; a larger offset could only be an error
        raise ProblemError(400, "Invalid parameter", f"{name} must be at most {BIGINT_MAX}")
    return number


def _bbox(value: str, given: FeatureCrs) -> list[float]:
    """The box as lon/lat bounds: four numbers (or six, with heights) in ``given``'s axis order."""
    order = "minlat,minlon,maxlat,maxlon" if given.latitude_first else "minlon,minlat,maxlon,maxlat"
    try:
        numbers = [float(v) for v in value.split(",")]
    except ValueError as exc:
        raise ProblemError(400, "Invalid bbox", f"bbox is {order} in {given.uri}") from exc
    if len(numbers) == 6:  # with heights: the two corners' first two axes
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4:
        raise ProblemError(400, "Invalid bbox", f"bbox is four numbers: {order} ({given.uri})")
    minx, miny, maxx, maxy = given.lon_lat(numbers)
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise ProblemError(400, "Invalid bbox", "bbox needs lon within ±180, lat within ±90 and min lat ≤ max lat")
    if minx > maxx:
        raise ProblemError(400, "Invalid bbox", "bbox across the antimeridian is not served; split it in two")
    return [minx, miny, maxx, maxy]


def _output(params: dict[str, str]) -> FeatureCrs:
    """The CRS of the answer's coordinates (``crs``); checks ``f`` too, the other output parameter."""
    if params.get("f", "json") not in ("json", "geojson"):
        raise ProblemError(400, "Unsupported format", "f: json or geojson")
    return crs_named(params.get("crs"), "crs")


def _geojson(output: FeatureCrs) -> str:
    """SQL of the GeoJSON geometry in ``output`` (options 0: no ``crs`` member, Content-Crs says it)."""
    return f"ST_AsGeoJSON({output.geometry_sql('t.geom')}, 7, 0)"


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None
