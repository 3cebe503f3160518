"""TileJSON 3.0.0 of a layer: what MapLibre, Leaflet.VectorGrid or QGIS need to draw it."""

from __future__ import annotations

from typing import Any

from tiles.catalog import TileLayer
from tiles.versions import Box

WORLD: Box = (-180.0, -85.0511287798066, 180.0, 85.0511287798066)


def tilejson(layer: TileLayer, base_url: str, extent: Box | None, query: str = "") -> dict[str, Any]:
    """The layer's TileJSON; ``bounds`` are those of its data now (the world when it holds nothing).

    ``query`` (the filters it was asked with, URL-encoded) goes on the tile URL, so that a client
    given this document asks for the filtered tiles.
    """
    bounds = extent or WORLD
    centre_zoom = max(layer.minzoom, min(layer.maxzoom, 12))
    return {
        "tilejson": "3.0.0",
        "name": layer.name,
        "description": layer.description,
        "scheme": "xyz",
        "tiles": [f"{base_url}/tiles/{layer.name}/{{z}}/{{x}}/{{y}}.mvt" + (f"?{query}" if query else "")],
        "minzoom": layer.minzoom,
        "maxzoom": layer.maxzoom,
        "bounds": [round(v, 6) for v in bounds],
        "center": [round((bounds[0] + bounds[2]) / 2, 6), round((bounds[1] + bounds[3]) / 2, 6), centre_zoom],
        "vector_layers": [
            {
                "id": layer.name,
                "description": layer.description,
                "minzoom": layer.minzoom,
                "maxzoom": layer.maxzoom,
                "fields": dict(layer.fields),
            }
        ],
        "filters": sorted(layer.filters),
    }
