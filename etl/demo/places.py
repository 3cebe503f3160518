"""Key places (重点场所): schools, hospitals, markets, rental housing, hazard sources and more.

Each type has its own mix of the urban density model: malls and internet cafés crowd town centres,
hazardous-chemical sites sit mostly out in the countryside. Schools and malls are small rotated
rectangles kept inside one grid, the rest points. Codes are ``KP`` + 5 digits in reading order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from etl.codes import grid_serial_order
from etl.demo.density import UrbanModel
from etl.demo.hierarchy import Hierarchy, grid_at
from etl.demo.names import PLACE_FIRST, PLACE_SECOND, chinese_number, road_names, short_name


@dataclass(frozen=True)
class PlaceType:
    """How many of a type there are and how urban they are."""

    share: float
    background: float  # share drawn uniformly over the city instead of around town seats
    spread: float  # peak width relative to the people's
    polygon: bool = False


PLACE_TYPES: dict[str, PlaceType] = {
    "school": PlaceType(0.10, 0.30, 1.0, polygon=True),
    "hospital": PlaceType(0.04, 0.20, 0.8),
    "mall": PlaceType(0.04, 0.05, 0.6, polygon=True),
    "market": PlaceType(0.08, 0.30, 0.9),
    "rental_housing": PlaceType(0.33, 0.15, 1.0),
    "risk_source": PlaceType(0.12, 0.70, 1.5),
    "internet_cafe": PlaceType(0.10, 0.10, 0.7),
    "construction_site": PlaceType(0.19, 0.30, 1.6),
}
SIDE_M = (60.0, 200.0)


@dataclass(frozen=True)
class Places:
    """Key places, metric; ``anchor`` is a point inside each (events cluster around it)."""

    codes: list[str]
    names: list[str]
    types: list[str]
    geometries: np.ndarray
    anchor: np.ndarray  # (n, 2)


def build_places(h: Hierarchy, model: UrbanModel, n_places: int, rng: np.random.Generator) -> Places:
    """``n_places`` places split over the types by their shares (largest remainder)."""
    counts = _split(n_places, np.array([t.share for t in PLACE_TYPES.values()]))
    types: list[str] = []
    geoms: list[shapely.Geometry] = []
    anchors: list[np.ndarray] = []
    for (name, kind), count in zip(PLACE_TYPES.items(), counts.tolist(), strict=True):
        xy = model.sample(count, rng, background=kind.background, spread=kind.spread)
        if kind.polygon:
            shapes, xy = _rectangles(h, xy, model, kind, rng)
        else:
            shapes = list(shapely.points(xy))
        types += [name] * count
        geoms += shapes
        anchors.append(xy)
    anchor = np.vstack(anchors) if anchors else np.zeros((0, 2))
    names = _names(h, types, anchor, rng)
    order = grid_serial_order(anchor, float(np.sqrt(shapely.area(h.grid_polygons).mean())))
    return Places(
        codes=[f"KP{k + 1:05d}" for k in range(len(order))],
        names=[names[i] for i in order],
        types=[types[i] for i in order],
        geometries=np.array([geoms[i] for i in order], dtype=object),
        anchor=anchor[order],
    )


def _split(n: int, shares: np.ndarray) -> np.ndarray:
    raw = n * shares / shares.sum()
    counts = np.floor(raw).astype(int)
    counts[np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]] += 1
    return counts


def _rectangles(
    h: Hierarchy, xy: np.ndarray, model: UrbanModel, kind: PlaceType, rng: np.random.Generator
) -> tuple[list[shapely.Geometry], np.ndarray]:
    """A rotated rectangle 60–200 m a side around each point, inside the grid holding it.

    A rectangle that would cross its grid's edge is shrunk, and after a few shrinks its centre is
    redrawn, so every site belongs to exactly one grid (the way a school's campus is registered).
    """
    n = len(xy)
    out = np.empty(n, dtype=object)
    centre = xy.copy()
    sides = rng.uniform(*SIDE_M, (n, 2))
    angle = rng.uniform(0, np.pi, n)
    todo = np.arange(n)
    for attempt in range(40):
        if len(todo) == 0:
            break
        if attempt and attempt % 4 == 0:  # shrinking did not help: another spot
            centre[todo] = model.sample(len(todo), rng, background=kind.background, spread=kind.spread)
            sides[todo] = rng.uniform(*SIDE_M, (len(todo), 2))
        scale = 0.75 ** (attempt % 4)
        rect = _rectangle(centre[todo], sides[todo] * scale, angle[todo])
        fits = shapely.within(rect, h.grid_polygons[grid_at(h, centre[todo])])
        out[todo[fits]] = rect[fits]
        todo = todo[~fits]
    if len(todo):  # pathological boundary: a 10 m square at the centre still fits
        out[todo] = _rectangle(centre[todo], np.full((len(todo), 2), 10.0), angle[todo])
    return list(out), centre


def _rectangle(centre: np.ndarray, sides: np.ndarray, angle: np.ndarray) -> np.ndarray:
    corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5]])
    local = corners[None, :, :] * sides[:, None, :]
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x = centre[:, 0:1] + local[:, :, 0] * cos - local[:, :, 1] * sin
    y = centre[:, 1:2] + local[:, :, 0] * sin + local[:, :, 1] * cos
    coords = np.round(np.stack([x, y], axis=2), 2)
    return shapely.polygons(coords)


def _names(h: Hierarchy, types: list[str], anchor: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Names that say where a place is: 如城第三小学, 海阳农贸市场, 福寿路18号出租屋 …"""
    comm = h.grid_community[grid_at(h, anchor)]
    town = h.community_town[comm]
    town_stem = [short_name(h.town_names[t]) for t in town.tolist()]
    comm_stem = [short_name(h.community_names[c]) for c in comm.tolist()]
    roads = road_names(len(types), rng)
    numbers = rng.integers(1, 300, len(types)).tolist()
    firsts = rng.choice(list(PLACE_FIRST), len(types)).tolist()
    seconds = rng.choice(list(PLACE_SECOND), len(types)).tolist()
    brands = [a + b for a, b in zip(firsts, seconds, strict=True)]
    pick = rng.random(len(types)).tolist()
    serial: dict[tuple[str, str], int] = {}
    names = []
    for k, kind in enumerate(types):
        if kind == "school":  # 如城第三小学: schools are numbered per town and per level
            level = "小学" if pick[k] < 0.6 else "中学" if pick[k] < 0.85 else "幼儿园"
            key = (level, town_stem[k])
        else:
            key = (kind, town_stem[k] if kind == "hospital" else comm_stem[k])
        serial[key] = serial.get(key, 0) + 1
        nth = serial[key]
        names.append(_name(kind, nth, town_stem[k], comm_stem[k], roads[k], numbers[k], brands[k], pick[k]))
    return names


def _name(kind: str, nth: int, town: str, comm: str, road: str, number: int, brand: str, pick: float) -> str:
    if kind == "school":
        level = "小学" if pick < 0.6 else "中学" if pick < 0.85 else "幼儿园"
        return f"{town}第{chinese_number(nth)}{level}" if nth > 1 else f"{town}{level}"
    if kind == "hospital":
        if nth == 1:
            return f"{town}人民医院" if pick < 0.5 else f"{town}中心卫生院"
        return f"{comm}卫生室" if pick < 0.6 else f"{town}第{chinese_number(nth)}医院"
    if kind == "mall":
        return brand + (
            "购物中心" if pick < 0.3 else "商厦" if pick < 0.55 else "超市" if pick < 0.8 else "广场"
        )
    if kind == "market":
        return f"{comm}农贸市场" if nth == 1 else f"{comm}{chinese_number(nth)}号农贸市场"
    if kind == "rental_housing":
        return f"{road}{number}号出租屋" if pick < 0.7 else f"{comm}{road}{number}号群租房"
    if kind == "risk_source":
        options = ("化工有限公司", "加油站", "液化气站", "危化品仓库", "烟花爆竹仓库")
        return brand + options[int(pick * len(options))]
    if kind == "internet_cafe":
        return brand + ("网吧" if pick < 0.5 else "网咖" if pick < 0.85 else "电竞馆")
    if kind == "construction_site":
        options = ("安置房项目工地", "道路改造工程工地", "商住楼项目工地", "厂房扩建工程工地")
        return comm + options[int(pick * len(options))]
    return f"{comm}{kind}"
