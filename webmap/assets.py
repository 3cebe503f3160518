"""Leaflet and its plugins from copies inside the project, never from a CDN.

Command centres run on closed intranets, and this machine has no internet: a map that loads
Leaflet from jsdelivr shows a blank page there. Folium's maps name their scripts and stylesheets by
URL, so we swap Folium's CDN defaults for our own names. Served pages (the one-map) get
``/static/vendor/…`` URLs; a report written to a file gets everything inlined, so the single file
opens anywhere.

The copies in ``static/vendor`` are the release files from the npm registry, each with its licence:
Leaflet 1.9.4 (BSD-2-Clause), Leaflet.markercluster 1.5.3 (MIT), Leaflet.heat 0.2.0 (BSD-2-Clause),
Leaflet.VectorGrid 1.3.0 (Beerware; its bundle includes pbf and @mapbox/vector-tile, BSD-3-Clause).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path

STATIC = Path(__file__).parent / "static"
VENDOR = STATIC / "vendor"
INLINE_PREFIX = "geoservice-asset:"
QUOTES = "'\""


@dataclass(frozen=True)
class Asset:
    """One script or stylesheet: the name Folium knows it by and its path under ``static/``."""

    name: str
    path: str

    @property
    def is_css(self) -> bool:
        return self.path.endswith(".css")


LEAFLET = (
    Asset("leaflet", "vendor/leaflet-1.9.4/leaflet.js"),
    Asset("leaflet_css", "vendor/leaflet-1.9.4/leaflet.css"),
)
MARKER_CLUSTER = (
    Asset("markerclusterjs", "vendor/leaflet.markercluster-1.5.3/leaflet.markercluster.js"),
    Asset("markerclustercss", "vendor/leaflet.markercluster-1.5.3/MarkerCluster.css"),
    Asset("markerclusterdefaultcss", "vendor/leaflet.markercluster-1.5.3/MarkerCluster.Default.css"),
)
HEAT = (Asset("leaflet-heat.js", "vendor/leaflet.heat-0.2.0/leaflet-heat.js"),)
VECTOR_GRID = (Asset("vectorgrid", "vendor/leaflet.vectorgrid-1.3.0/Leaflet.VectorGrid.bundled.min.js"),)


def use_local_assets(element: object, assets: tuple[Asset, ...], base_url: str | None = None) -> None:
    """Point a Folium element (a Map, a plugin) at our copies instead of its CDN defaults.

    With ``base_url`` (e.g. ``/static``) the page links the files; without it they are marked for
    ``inline_assets`` to embed. jQuery, Bootstrap and Font Awesome, which Folium also lists by
    default, are dropped: nothing we draw uses them.
    """

    def url(asset: Asset) -> str:
        return f"{base_url.rstrip('/')}/{asset.path}" if base_url else f"{INLINE_PREFIX}{asset.path}"

    element.default_js = [(a.name, url(a)) for a in assets if not a.is_css]  # type: ignore[attr-defined]
    element.default_css = [(a.name, url(a)) for a in assets if a.is_css]  # type: ignore[attr-defined]


_SCRIPT = re.compile(rf'<script src="{INLINE_PREFIX}([^"]+)"></script>')
_STYLESHEET = re.compile(rf'<link rel="stylesheet" href="{INLINE_PREFIX}([^"]+)"\s*/?>')
_CSS_URL = re.compile(r"url\((?!data:|#)([^)]+)\)")  # files only: not data URIs, not IE's url(#default#VML)


def inline_assets(html: str) -> str:
    """Replace every marked script and stylesheet link by the file's content (images as data URIs)."""

    def script(match: re.Match[str]) -> str:
        code = (STATIC / match.group(1)).read_text(encoding="utf-8")
        return "<script>" + code.replace("</script", "<\\/script") + "</script>"

    def stylesheet(match: re.Match[str]) -> str:
        path = STATIC / match.group(1)
        css = _CSS_URL.sub(lambda m: f"url({_data_uri(path.parent / m.group(1).strip(QUOTES))})", path.read_text())
        return f"<style>{css}</style>"

    html = _SCRIPT.sub(script, html)
    html = _STYLESHEET.sub(stylesheet, html)
    if INLINE_PREFIX in html:
        raise ValueError("a marked asset was left un-inlined; its tag has a form inline_assets does not know")
    return html


def _data_uri(path: Path) -> str:
    mime = {".png": "image/png", ".svg": "image/svg+xml"}.get(path.suffix, "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
