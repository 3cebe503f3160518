"""The risk one-map (风险一张图) page: a Folium (Leaflet) map whose layers load after sign-in.

Folium builds the page: the map, the optional base map, and the script and stylesheet links,
pointed at the copies under ``/static`` (``webmap.assets``), so nothing is fetched from a CDN.
The page itself holds no data: every layer is read by ``static/onemap.js`` with the signed-in
user's token (vector tiles, OGC API features, the event and stats APIs), so it shows each user
their own scope and the HTML can be served to anyone. The page's settings travel to the script
as one JSON document in the page.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import folium
from branca.element import Element

from webmap.assets import HEAT, LEAFLET, MARKER_CLUSTER, VECTOR_GRID, use_local_assets
from webmap.settings import MapSettings

TEMPLATES = Path(__file__).parent / "templates"
STATIC_URL = "/static"
WARNING_COLOURS = {"red": "#d7191c", "yellow": "#f5a800", "blue": "#2c7bb6", "none": "#7a7a7a"}
POST_COLOURS = {"village_room": "#6a3d9a", "central_room": "#1a1a1a", "station": "#1f78b4"}
POST_NAMES = {"village_room": "村级警务室 100 m", "central_room": "中心警务室 1 km", "station": "派出所 10 km"}
PLACE_SYMBOLS = {
    "school": ("校", "#1b9e77"), "hospital": ("医", "#e7298a"), "mall": ("商", "#7570b3"),
    "market": ("市", "#66a61e"), "rental_housing": ("租", "#a6761d"), "risk_source": ("危", "#d95f02"),
    "construction_site": ("工", "#666666"), "internet_cafe": ("网", "#e6ab02"),
}  # fmt: skip


def onemap_page(settings: MapSettings, tile_config: dict[str, Any]) -> str:
    """The page's HTML; ``tile_config`` names each layer's zooms (from the tile catalog)."""
    fmap = folium.Map(tiles=None, location=[0, 0], zoom_start=3, control_scale=True, prefer_canvas=True)
    use_local_assets(fmap, LEAFLET + MARKER_CLUSTER + HEAT + VECTOR_GRID, base_url=STATIC_URL)
    if settings.base_tiles:
        folium.TileLayer(settings.base_tiles, attr=settings.base_attribution or "base map", name="底图 base map",
                         max_zoom=settings.base_max_zoom).add_to(fmap)  # fmt: skip
    config = {
        "map": fmap.get_name(),
        "hasBaseMap": bool(settings.base_tiles),
        "refreshMs": int(settings.refresh_s * 1000),
        "forcesRefreshMs": int(settings.forces_refresh_s * 1000),
        "tiles": tile_config,
        "warningColours": WARNING_COLOURS,
        "postColours": POST_COLOURS,
        "postNames": POST_NAMES,
        "placeSymbols": PLACE_SYMBOLS,
    }
    root = fmap.get_root()
    root.title = "风险一张图 · risk one-map"  # type: ignore[attr-defined]
    root.header.add_child(Element('<link rel="icon" href="data:,"/>'))  # type: ignore[attr-defined]
    root.header.add_child(Element(f'<link rel="stylesheet" href="{STATIC_URL}/onemap.css"/>'))  # type: ignore[attr-defined]
    root.header.add_child(Element(f'<script defer src="{STATIC_URL}/onemap.js"></script>'))  # type: ignore[attr-defined]
    config_json = json.dumps(config, ensure_ascii=False).replace("</", "<\\/")
    root.html.add_child(Element(f'<script id="onemap-config" type="application/json">{config_json}</script>'))  # type: ignore[attr-defined]
    root.html.add_child(Element((TEMPLATES / "onemap_panel.html").read_text(encoding="utf-8")))  # type: ignore[attr-defined]
    return root.render()


def report_page() -> str:
    """The citizens' page (随手拍): plain HTML and its script, no map and no data in it."""
    return (TEMPLATES / "report.html").read_text(encoding="utf-8")
