"""The coverage report as one self-contained HTML page that a person can read and print.

Nothing is fetched from anywhere: command centres work on closed intranets. The page opens with an
interactive Folium map of every level's gaps (``folium_map``: Leaflet inlined from the project's own
copy, no base map); each level's section then has a static SVG map and SVG bar charts drawn here,
because a static map prints to PDF exactly as seen, where a Leaflet map prints only the part on
screen. The stylesheet (``templates/report.css``) has a print section: A4, the interactive map left
out, one level per page, rows and figures never split.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from importlib import resources
from string import Template

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geoservice.coverage.folium_map import map_iframe
from geoservice.coverage.report import CoverageReport, LevelFigures, UnitFigures

LEVEL_NAMES = {
    "village_room": ("村级警务室", "village police rooms", "百米见村级警务室"),
    "central_room": ("中心警务室", "central police rooms", "千米见中心警务室"),
    "station": ("派出所", "police stations", "万米见派出所"),
}
UNIT_NAMES = {"city": "city", "town": "town / street", "community": "community / village", "grid": "grid"}
PLACE_TYPES = {"school": "学校 school", "hospital": "医院 hospital", "mall": "商场 mall", "market": "市场 market",
               "rental_housing": "出租屋 rental housing", "risk_source": "危险源 risk source",
               "construction_site": "工地 construction site", "internet_cafe": "网吧 internet café"}  # fmt: skip
MAP_WIDTH = 960
PLACES_LISTED = 20
LABELS_UP_TO = 40


def render_html(report: CoverageReport, generated: datetime | None = None) -> str:
    """The whole page."""
    generated = generated or datetime.now(UTC)
    region = report.region
    title = f"警务覆盖缺口报告 · Police-post coverage gaps — {region.name} ({region.code})"
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="lead">Boundary version {escape(report.version_name)}; events from '
        f"{report.since:%Y-%m-%d} to {report.as_of:%Y-%m-%d}; generated {generated:%Y-%m-%d %H:%M} UTC.</p>",
        _summary(report),
        _interactive_map(report),
        *(_level_section(report, level) for level in report.levels),
        _notes(report),
    ]
    page = Template(_template("report.html"))
    return page.substitute(title=escape(title), css=_template("report.css"), body="\n".join(body))


# --- sections ------------------------------------------------------------------------------------
def _interactive_map(report: CoverageReport) -> str:
    return (
        '<section class="interactive"><h2>Map of the gaps · 缺口地图</h2>'
        "<p class='note'>Pan and zoom; the layer list switches levels, gaps and posts on and off. "
        "Not printed: each level's page below has a printable map.</p>"
        f"{map_iframe(report, LEVEL_NAMES)}</section>"
    )


def _summary(report: CoverageReport) -> str:
    f = report.region.levels
    kpis = []
    for lv in report.levels:
        people = f", {_pct(f[lv].population_share)} of the people" if f[lv].population_share is not None else ""
        kpis.append(
            f'<div class="kpi">{escape(LEVEL_NAMES[lv][0])} {escape(_km(f[lv].radius_m))}'
            f"<b>{_pct(f[lv].area_share)}</b>of the area{people}</div>"
        )
    rows = [
        _tr(
            f"{LEVEL_NAMES[lv][0]} · {LEVEL_NAMES[lv][1]}",
            _km(f[lv].radius_m),
            _pct(f[lv].area_share),
            _pct(f[lv].population_share),
            f"{f[lv].places_outside:,} / {f[lv].places:,}",
            f"{f[lv].events_outside:,} / {f[lv].events:,}",
        )  # fmt: skip
        for lv in report.levels
    ]
    parts = UNIT_NAMES.get(report.child_level or "", "parts")
    people = (
        "(from the population layer)" if report.population_loaded else "(no population layer is loaded: left blank)"
    )
    head = _thead("Level", "Ring", "Area within", "People within", "Key places outside", "Events outside (12 months)")
    return f"""<section class="summary">
<h2>Summary 概要</h2>
<div class="kpis">{"".join(kpis)}</div>
<div class="explain"><dl>
<dt>What the rings are</dt>
<dd>Police posts stand at three levels: "百米见村级警务室、千米见中心警务室、万米见派出所" — a village police
room within 100 m, a central police room within 1 km, a police station within 10 km. A place is <em>within
the rule</em> of a level when a post of that level is no farther than that distance in a straight line.</dd>
<dt>What is measured</dt>
<dd>For {escape(region_label(report.region))} and each of its {len(report.children)} {escape(parts)} areas: the
share of the <b>area</b> within the rule; the share of the <b>people</b> within it {people}; the <b>key
places</b> (schools, hospitals, markets …) outside it, with the distance to the nearest post; and the
<b>events</b> reported in the last twelve months that happened outside it.</dd>
<dt>What a gap is</dt>
<dd>The part of the area farther than the distance from every post of the level: red on the maps.</dd>
</dl></div>
<table>{head}<tbody>{"".join(rows)}</tbody></table>
</section>"""


def _level_section(report: CoverageReport, level: str) -> str:
    zh, en, rule = LEVEL_NAMES[level]
    one = en[:-1]  # "central police room"
    f = report.region.levels[level]
    ring = _km(f.radius_m)
    gap_km2 = sum(g.area_km2 for g in report.gaps if g.level == level)
    parts = UNIT_NAMES.get(report.child_level or "", "part")
    out = [
        f'<section class="level" id="{escape(level)}">',
        f"<h2>{escape(zh)} · {escape(en)} — {escape(ring)} ring ({escape(rule)})</h2>",
        f"<p>{_pct(f.area_share)} of the area and {_pct(f.population_share)} of the people of "
        f"{escape(report.region.name)} are within {escape(ring)} of a {escape(one)}; the gaps add up to "
        f"{gap_km2:,.1f} km². {f.places_outside:,} of {f.places:,} key places and {f.events_outside:,} of "
        f"{f.events:,} events of the last twelve months lie outside the rule.</p>",
        f"<figure>{svg_map(report, level)}",
        _legend(
            ("var(--gap);opacity:.55", f"gap: farther than {ring} from every {one}"),
            ("#fff", "within the rule"),
            ("var(--post);border-radius:50%", one),
        ),  # fmt: skip
        f"<figcaption>Map of {escape(report.region.name)}: gaps of the {escape(ring)} rule and the outlines of "
        f"its {escape(parts)} areas. North is up.</figcaption></figure>",
    ]
    if report.children:
        rows = [(u.name, u.levels[level].area_share, u.levels[level].population_share) for u in report.children]
        out += [
            f"<h3>Share within the rule, by {escape(parts)}</h3>",
            f"<figure>{svg_bars(rows)}",
            _legend(("var(--covered)", "area"), ("var(--people)", "people")) + "</figure>",
        ]
    head = _thead("Area", "km²", "Area within", "People", "People within", "Key places outside", "Events outside")
    rows_html = "".join(_unit_row(u, u.levels[level], u is report.region) for u in [report.region, *report.children])
    out += ["<h3>Figures</h3>", f"<table>{head}<tbody>{rows_html}</tbody></table>"]
    places = [p for p in report.places_outside if p.level == level]
    out.append(f"<h3>Key places outside the rule{' (farthest first)' if places else ''}</h3>")
    if places:
        listed = "".join(
            _tr(
                p.name,
                PLACE_TYPES.get(p.type, p.type),
                _unit_name(report, p.unit_code),
                _dist(p.distance_m),
                p.post_name or "—",
                text=(0, 1, 2, 4),
            )  # fmt: skip
            for p in places[:PLACES_LISTED]
        )
        head = _thead("Place", "Type", "In", "Distance", f"Nearest {one}", text=(0, 1, 2, 4))
        out.append(f"<table>{head}<tbody>{listed}</tbody></table>")
        if len(places) > PLACES_LISTED:
            out.append(f"<p class='note'>{len(places) - PLACES_LISTED:,} more in the places CSV.</p>")
    else:
        out.append("<p>None: every key place is within the rule.</p>")
    out.append("</section>")
    return "\n".join(out)


def _notes(report: CoverageReport) -> str:
    rings = ", ".join(f"{LEVEL_NAMES[lv][0]} {_km(r)}" for lv, r in report.radii_m.items())
    return f"""<section class="notes">
<h2>How these figures were made</h2>
<ul>
<li>Distances are straight lines, measured in the city's projected coordinate system (EPSG:{report.epsg},
CGCS2000 Gauss-Krüger); a real walk or drive is longer. Rings: {escape(rings)}.</li>
<li>Areas use ring polygons of 128 sides, 0.04 % smaller than true circles; people, events and key places
are tested by exact distance.</li>
<li>A key place drawn as an outline is measured from its nearest edge, and counted in the area that holds a
point inside it.</li>
<li>Events: reported between {report.since:%Y-%m-%d %H:%M} and {report.as_of:%Y-%m-%d %H:%M} UTC.</li>
<li>Regions and grids: boundary version {escape(report.version_name)}, the one in force.</li>
<li>The same figures as CSV (one row per area and level), the places outside each rule as CSV, and the gap
polygons as GeoJSON (WGS84) are written beside this page by <code>geoservice coverage report</code>.</li>
</ul>
</section>"""


def _unit_row(u: UnitFigures, f: LevelFigures, is_region: bool) -> str:
    people = "—" if f.population is None else f"{f.population:,.0f}"
    name = f"{escape(u.name)} <span class='note'>{escape(u.code)}</span>"
    cells = [f"{f.area_km2:,.2f}", _pct(f.area_share), people, _pct(f.population_share),
             f"{f.places_outside:,} / {f.places:,}", f"{f.events_outside:,} / {f.events:,}"]  # fmt: skip
    css = ' class="region"' if is_region else ""
    return f"<tr{css}><td>{name}</td>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>"


def _tr(*cells: str, text: tuple[int, ...] = (0,)) -> str:
    return "<tr>" + "".join(f"<td{_cls(i, text)}>{escape(c)}</td>" for i, c in enumerate(cells)) + "</tr>"


def _thead(*cells: str, text: tuple[int, ...] = (0,)) -> str:
    return (
        "<thead><tr>" + "".join(f"<th{_cls(i, text)}>{escape(c)}</th>" for i, c in enumerate(cells)) + "</tr></thead>"
    )


def _cls(i: int, text: tuple[int, ...]) -> str:
    return ' class="text"' if i in text else ""


def _legend(*items: tuple[str, str]) -> str:
    spans = "".join(
        f'<span><i class="swatch" style="background:{colour}"></i>{escape(label)}</span>' for colour, label in items
    )
    return f'<div class="legend">{spans}</div>'


# --- SVG -----------------------------------------------------------------------------------------
def svg_map(report: CoverageReport, level: str, width: int = MAP_WIDTH) -> str:
    """The region with its children's outlines, the level's gaps in red and its posts as dots."""
    region = report.outlines[report.region.code]
    minx, miny, maxx, maxy = region.bounds
    pad = 0.02 * max(maxx - minx, maxy - miny, 1.0)
    minx, miny, maxx, maxy = minx - pad, miny - pad, maxx + pad, maxy + pad
    scale = width / (maxx - minx)
    height = max(1, round((maxy - miny) * scale))
    tolerance = 0.6 / scale  # under a pixel

    def path(geom: BaseGeometry) -> str:
        simple = shapely.simplify(geom, tolerance, preserve_topology=True)
        parts = []
        for ring in _rings(simple):
            xy = np.asarray(ring.coords)
            px = np.column_stack([(xy[:, 0] - minx) * scale, (maxy - xy[:, 1]) * scale]).round(1)
            parts.append("M" + "L".join(f"{x:g},{y:g}" for x, y in px) + "Z")
        return "".join(parts)

    gaps = "".join(
        f'<path d="{path(g.geom)}"><title>{escape(g.unit_name)}: gap {g.area_km2:,.2f} km²</title></path>'
        for g in report.gaps
        if g.level == level and not g.geom.is_empty
    )
    children = report.children
    outlines = "".join(f'<path d="{path(report.outlines[c.code])}"/>' for c in children)
    labels = ""
    if len(children) <= LABELS_UP_TO:
        for c in children:
            point = shapely.point_on_surface(report.outlines[c.code])
            labels += (
                f'<text x="{(point.x - minx) * scale:.0f}" y="{(maxy - point.y) * scale:.0f}">{escape(c.name)}</text>'
            )
    posts = report.posts_xy.get(level, np.empty((0, 2)))
    inside = (posts[:, 0] >= minx) & (posts[:, 0] <= maxx) & (posts[:, 1] >= miny) & (posts[:, 1] <= maxy)
    dots = "".join(
        f'<circle cx="{(x - minx) * scale:.1f}" cy="{(maxy - y) * scale:.1f}" r="2.2"/>' for x, y in posts[inside]
    )
    return (
        f'<svg class="map" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="map of coverage gaps">'
        f'<rect width="{width}" height="{height}" fill="#eef1f4"/>'
        f'<path d="{path(region)}" fill="#ffffff" stroke="none"/>'
        f'<g fill="#d7301f" fill-opacity="0.55" fill-rule="evenodd" stroke="none">{gaps}</g>'
        f'<g fill="none" stroke="#7b8794" stroke-width="0.7">{outlines}</g>'
        f'<path d="{path(region)}" fill="none" stroke="#1d2733" stroke-width="1.6"/>'
        f'<g fill="#1a1a1a">{dots}</g>'
        f'<g font-size="12" text-anchor="middle" fill="#1d2733" stroke="#ffffff" stroke-width="3" '
        f'paint-order="stroke">{labels}</g></svg>'
    )


def svg_bars(rows: list[tuple[str, float | None, float | None]], width: int = MAP_WIDTH) -> str:
    """Horizontal bars per child: the share of its area (blue) and of its people (orange) within the rule."""
    label_w, value_w, bar_h, gap = 190, 56, 9, 8
    plot_w = width - label_w - value_w
    row_h = 2 * bar_h + gap
    height = 24 + row_h * len(rows)
    ticks = "".join(
        f'<line x1="{x:.1f}" y1="18" x2="{x:.1f}" y2="{height}" stroke="#d5dbe1"/>'
        f'<text x="{x:.1f}" y="12" text-anchor="middle">{int(t * 100)}%</text>'
        for t in (0, 0.25, 0.5, 0.75, 1.0)
        for x in [label_w + plot_w * t]
    )
    bars = []
    for i, (name, area, people) in enumerate(rows):
        y = 24 + i * row_h
        bars.append(f'<text x="{label_w - 8}" y="{y + bar_h + 3}" text-anchor="end">{escape(name)}</text>')
        for j, (value, colour) in enumerate(((area, "#2b8cbe"), (people, "#f28e2b"))):
            if value is None:
                continue
            top, length = y + j * bar_h, plot_w * value
            bars.append(
                f'<rect x="{label_w}" y="{top}" width="{length:.1f}" height="{bar_h - 1}" fill="{colour}"/>'
                f'<text x="{label_w + length + 4:.1f}" y="{top + bar_h - 1}" fill="#5b6775">{value * 100:.1f}%</text>'
            )
    return (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="bar chart of shares within the rule" font-size="11" '
        f'fill="#1d2733">{ticks}{"".join(bars)}</svg>'
    )


# --- small helpers -------------------------------------------------------------------------------
def _rings(geom: BaseGeometry) -> list:
    rings = []
    for polygon in shapely.get_parts(geom):
        if isinstance(polygon, shapely.Polygon) and not polygon.is_empty:
            rings += [polygon.exterior, *polygon.interiors]
    return rings


def _template(name: str) -> str:
    return resources.files("geoservice.coverage").joinpath("templates", name).read_text(encoding="utf-8")


def region_label(u: UnitFigures) -> str:
    return f"{u.name} ({UNIT_NAMES.get(u.level, u.level)})"


def _unit_name(report: CoverageReport, code: str) -> str:
    return next((u.name for u in [report.region, *report.children] if u.code == code), code)


def _pct(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.1f}%"


def _km(metres: float) -> str:
    return f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"


def _dist(metres: float) -> str:
    return "no post" if not np.isfinite(metres) else _km(round(metres))
