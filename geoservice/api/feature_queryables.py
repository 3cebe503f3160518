"""``/collections/{id}/queryables``: OGC API - Features Part 3's JSON Schema of what a client may filter on.

OWSLib's ``collection_queryables()`` and GDAL's OAPIF driver (QGIS) read it to learn which
properties they can send as query parameters (``?name=…``, an exact match) instead of fetching
everything and filtering on their side. The list is the collection's own (``feature_collections``):
the schema is derived from it, so a property cannot be filterable without being listed, nor the
reverse. The geometry is listed as Part 3 describes spatial queryables; it is filtered by ``bbox``.
"""

from __future__ import annotations

from typing import Any

from geoservice.api.feature_collections import Collection

SCHEMA = "application/schema+json"
JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"
REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"


def queryables_schema(found: Collection, base: str) -> dict[str, Any]:
    """The collection's queryables as a JSON Schema object (draft 2020-12, as Part 3 requires)."""
    properties: dict[str, Any] = {
        name: {"title": name.replace("_", " "), "type": found.types.get(name, "string")}
        for name in sorted(found.queryables)
    }
    properties["geometry"] = {"title": "geometry (filter with bbox)", "format": f"geometry-{found.geometry.lower()}"}
    if found.geometry == "Geometry":
        properties["geometry"]["format"] = "geometry-any"
    return {
        "$schema": JSON_SCHEMA,
        "$id": f"{base}/collections/{found.id}/queryables",
        "type": "object",
        "title": found.title,
        "description": f"What {found.id} items can be filtered on: ?name=value, an exact match; several are ANDed",
        "properties": properties,
        "additionalProperties": False,
    }


def queryables_links(found: Collection, base: str) -> list[dict[str, str]]:
    """The collection's links to its queryables: the Part 3 relation, and the short name clients also look for."""
    href = f"{base}/collections/{found.id}/queryables"
    return [
        {"href": href, "rel": REL, "type": SCHEMA, "title": "what items can be filtered on"},
        {"href": href, "rel": "queryables", "type": SCHEMA, "title": "what items can be filtered on"},
    ]
