"""The report's interactive map: a Folium (Leaflet) map of every level's gaps, posts and areas.

Self-contained like the rest of the page: Leaflet is inlined from the project's own copy
(``webmap.assets``) and there is no base map, so the file works on an intranet with no tile
server. The map sits in an ``iframe srcdoc`` so that Leaflet's styles cannot touch the report's.
Geometries are simplified in metres (to a fraction of a screen pixel at the region's scale)
before being turned back into WGS84.
"""

from __future__ import annotations

from html import escape

import folium
import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from geoservice.coverage.report import CoverageReport
from webmap.assets import LEAFLET, inline_assets, use_local_assets
from webmap.page import POST_COLOURS

GAP_COLOUR = "#d7301f"
GAP_STYLE = {"color": GAP_COLOUR, "weight": 0, "fillColor": GAP_COLOUR, "fillOpacity": 0.5}
SHOWN_FIRST = "central_room"
MAP_PIXELS = 900


def folium_map(report: CoverageReport, names: dict[str, tuple[str, str, str]]) -> folium.Map:
    """Gaps per level (one toggleable layer each), the posts of each level, and the areas' outlines."""
    to_wgs84 = Transformer.from_crs(report.epsg, 4326, always_xy=True)
    region = report.outlines[report.region.code]
    minx, miny, maxx, maxy = region.bounds
    tolerance = max(maxx - minx, maxy - miny) / MAP_PIXELS / 2

    def wgs84(geom: BaseGeometry) -> BaseGeometry:
        simple = shapely.simplify(geom, tolerance, preserve_topology=True)
        return shapely.transform(simple, lambda xy: np.column_stack(to_wgs84.transform(*xy.T)))

    fmap = folium.Map(tiles=None, control_scale=True, prefer_canvas=False)
    use_local_assets(fmap, LEAFLET)
    (x0, y0, x1, y1) = wgs84(region).bounds
    fmap.fit_bounds([[y0, x0], [y1, x1]])

    outlines = folium.FeatureGroup(name="Areas · 区域", show=True)
    for unit in [report.region, *report.children]:
        folium.GeoJson(
            shapely.geometry.mapping(wgs84(report.outlines[unit.code])),
            style_function=lambda _, main=unit is report.region: {
                "color": "#1d2733",
                "weight": 2 if main else 0.8,
                "fill": False,
            },  # fmt: skip
            tooltip=f"{unit.name} ({unit.code})",
        ).add_to(outlines)
    outlines.add_to(fmap)

    for level in report.levels:
        zh, en, _ = names[level]
        radius = report.radii_m[level]
        gaps = folium.FeatureGroup(name=f"Gaps · 缺口: {zh} {radius:,.0f} m", show=level == SHOWN_FIRST)
        for gap in report.gaps:
            if gap.level != level or gap.geom.is_empty:
                continue
            folium.GeoJson(
                shapely.geometry.mapping(wgs84(gap.geom)),
                style_function=lambda _: GAP_STYLE,
                tooltip=escape(f"{gap.unit_name}: {gap.area_km2:,.2f} km² beyond {radius:,.0f} m of any {en[:-1]}"),
            ).add_to(gaps)
        gaps.add_to(fmap)
        posts = folium.FeatureGroup(name=f"Posts · {zh}", show=level == SHOWN_FIRST)
        xy = report.posts_xy.get(level, np.empty((0, 2)))
        lon, lat = to_wgs84.transform(xy[:, 0], xy[:, 1]) if len(xy) else ([], [])
        for x, y in zip(lon, lat, strict=True):
            folium.CircleMarker([y, x], radius=3, color=POST_COLOURS[level], fill=True, fill_opacity=1).add_to(posts)
        posts.add_to(fmap)
    folium.LayerControl(collapsed=False).add_to(fmap)
    return fmap


def map_iframe(report: CoverageReport, names: dict[str, tuple[str, str, str]], height: int = 620) -> str:
    """The map as an ``iframe`` whose document is inlined in the page (no file, no request)."""
    document = inline_assets(folium_map(report, names).get_root().render())
    return (
        f'<iframe class="interactive-map" title="interactive map of the coverage gaps" '
        f'style="width:100%;height:{height}px;border:1px solid #d5dbe1" srcdoc="{escape(document, quote=True)}">'
        "</iframe>"
    )
