"""A year of historic events: clustered in space, rhythmic in time, closed when old, open when new.

Everything is drawn for all events at once with numpy; the only Python loop builds the description
strings. Locations mix a uniform background with Gaussian hotspots, some of which sit on the key
places a category belongs to (占道经营 at markets, 危化品隐患 at hazard sources …).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from etl.demo.density import UrbanModel, gaussian_points, uniform_points
from etl.demo.hierarchy import Hierarchy, grid_at
from etl.demo.places import Places

CLASS_WEIGHTS = {
    "city_management": 0.35,
    "livelihood": 0.25,
    "public_order": 0.20,
    "environment": 0.12,
    "public_safety": 0.08,
}
BACKGROUND = 0.25
NEAR_PLACE = 0.45  # of events of a category with linked place types
PLACE_LINKS = {
    "public_order.dispute": ("rental_housing", "market"),
    "public_order.fight": ("internet_cafe", "mall"),
    "public_order.theft": ("mall", "market", "rental_housing"),
    "public_order.gambling": ("rental_housing", "internet_cafe"),
    "public_safety.fire": ("rental_housing", "market", "mall"),
    "public_safety.hazmat": ("risk_source",),
    "public_safety.traffic": ("school",),
    "public_safety.construction": ("construction_site",),
    "public_safety.food": ("market", "school"),
    "city_management.stall": ("market", "mall", "school"),
    "city_management.illegal_building": ("rental_housing",),
    "environment.water": ("risk_source",),
    "environment.air": ("risk_source", "construction_site"),
    "environment.noise": ("construction_site", "mall"),
    "environment.waste": ("construction_site",),
    "livelihood.housing": ("rental_housing",),
    "livelihood.health": ("hospital",),
}
NIGHT_CATEGORIES = ("public_order.fight", "public_order.gambling", "environment.noise")
URGENT = {"public_order.fight": 0.35, "public_safety.fire": 0.30, "public_safety.hazmat": 0.40,
          "public_safety.traffic": 0.15, "livelihood.water_power": 0.10}  # fmt: skip
SOURCES = ("public", "grid_worker", "hotline_12345", "video")
SOURCE_MIX = {
    "default": (0.25, 0.45, 0.20, 0.10),
    "city_management.stall": (0.15, 0.40, 0.10, 0.35),
    "city_management.garbage": (0.15, 0.45, 0.10, 0.30),
    "city_management.ad": (0.10, 0.50, 0.05, 0.35),
    "public_safety.traffic": (0.25, 0.25, 0.15, 0.35),
    "environment.noise": (0.45, 0.10, 0.43, 0.02),
    "livelihood": (0.30, 0.30, 0.38, 0.02),
}
# Reports through the day: quiet at night, peaks mid-morning and mid-afternoon.
DAY_HOURS = np.array([0.6, 0.4, 0.3, 0.25, 0.3, 0.6, 1.5, 3, 5, 6.5, 6.5, 5.5,
                      4.5, 5, 5.5, 5.5, 5, 4.5, 3.5, 3, 2.8, 2.2, 1.5, 1])  # fmt: skip
NIGHT_HOURS = np.array([3, 2.5, 2, 1.2, 0.8, 0.5, 0.5, 0.8, 1.2, 1.5, 1.8, 2,
                        2, 2, 2, 2.2, 2.5, 3, 3.5, 4.5, 5, 5, 4.5, 4])  # fmt: skip
WEEKDAY = np.array([1.0, 1.0, 1.0, 1.0, 1.05, 0.85, 0.8])  # Monday first
TZ = "Asia/Shanghai"


@dataclass(frozen=True)
class Events:
    """Columns of the events layer (metric points)."""

    category: np.ndarray
    occurred_at: pd.DatetimeIndex
    description: list[str]
    status: np.ndarray
    priority: np.ndarray
    source: np.ndarray
    xy: np.ndarray
    history: dict[str, np.ndarray]

    def history_columns(self) -> dict[str, object]:
        """The closed-loop columns (times as UTC ``DatetimeIndex``, NaT where a step was not reached)."""
        columns: dict[str, object] = {}
        for key, values in self.history.items():
            if values.dtype.kind == "M":
                columns[key] = pd.DatetimeIndex(values).tz_localize("UTC")
            elif key == "satisfaction":
                columns[key] = pd.array(np.where(values > 0, values, 0), dtype="Int64").astype("Int64")
                columns[key][values == 0] = pd.NA
            else:
                columns[key] = values
        return columns


def build_events(
    h: Hierarchy,
    model: UrbanModel,
    places: Places,
    categories: pd.DataFrame,
    n: int,
    end: pd.Timestamp,
    rng: np.random.Generator,
) -> Events:
    """``n`` events over the 365 days before ``end``, sorted by time."""
    subs = categories[categories["parent_code"].fillna("").astype(str).str.strip() != ""]
    codes = subs["code"].to_numpy(dtype=str)
    names = subs["name"].to_numpy(dtype=str)
    classes = subs["parent_code"].to_numpy(dtype=str)
    cat = rng.choice(len(codes), size=n, p=_category_weights(classes, rng))
    xy, near = _locations(h, model, places, codes, cat, rng)
    when = _times(codes, classes, cat, end, rng)
    order = np.argsort(when.asi8, kind="stable")
    cat, xy, near, when = cat[order], xy[order], near[order], when[order]
    age_h = (end - when).total_seconds().to_numpy() / 3600
    status = _status(age_h, rng)
    urgent = rng.random(n) < np.array([URGENT.get(c, 0.03) for c in codes])[cat]
    source = _sources(codes, classes, cat, rng)
    description = _descriptions(h, places, names[cat], source, near, xy)
    hours = subs.set_index("code").loc[codes[cat], ["accept_hours", "handle_hours"]].to_numpy(dtype=float)
    town = h.community_town[h.grid_community[grid_at(h, xy)]]
    history = _history(when, status, urgent, hours, town, end, rng)
    return Events(codes[cat], when, description, status, np.where(urgent, "urgent", "normal"), source, xy, history)


def _category_weights(classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Class shares as in county 12345/grid statistics; subcategories share their class unevenly."""
    weights = np.array([CLASS_WEIGHTS.get(c, 0.05) for c in classes])
    per_class = {c: (classes == c).sum() for c in np.unique(classes)}
    weights = weights / np.array([per_class[c] for c in classes]) * rng.uniform(0.6, 1.4, len(classes))
    return weights / weights.sum()


def _locations(
    h: Hierarchy,
    model: UrbanModel,
    places: Places,
    codes: np.ndarray,
    cat: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Event points, and the index of the key place each was drawn around (-1: none)."""
    n = len(cat)
    city = h.city_polygon
    xy = np.empty((n, 2))
    near = np.full(n, -1)
    mode = rng.random(n)
    place_types = np.array(places.types)
    linked = np.zeros(n, dtype=bool)
    for c, code in enumerate(codes.tolist()):
        pool = np.flatnonzero(np.isin(place_types, PLACE_LINKS.get(code, ())))
        events = np.flatnonzero((cat == c) & (mode >= BACKGROUND) & (mode < BACKGROUND + NEAR_PLACE))
        if len(pool) and len(events):
            near[events] = pool[rng.integers(len(pool), size=len(events))]
            linked[events] = True
    background = mode < BACKGROUND
    xy[background] = uniform_points(city, int(background.sum()), rng)
    place_sigma = rng.uniform(100.0, 400.0, len(places.codes))
    xy[linked] = gaussian_points(city, places.anchor[near[linked]], place_sigma[near[linked]], rng)
    rest = np.flatnonzero(~background & ~linked)
    n_hot = max(20, n // 150)
    hot_centres = model.sample(n_hot, rng, background=0.15)
    hot_sigma = rng.uniform(100.0, 600.0, n_hot)
    hot_weight = rng.lognormal(0.0, 0.8, n_hot)
    hot = rng.choice(n_hot, size=len(rest), p=hot_weight / hot_weight.sum())
    xy[rest] = gaussian_points(city, hot_centres[hot], hot_sigma[hot], rng)
    return xy, near


def _times(
    codes: np.ndarray, classes: np.ndarray, cat: np.ndarray, end: pd.Timestamp, rng: np.random.Generator
) -> pd.DatetimeIndex:
    """Local times: a seasonal swing (summer high), quieter weekends, a slow rise, hourly rhythm."""
    n = len(cat)
    last_day = end.tz_convert(TZ).normalize()
    days = pd.date_range(end=last_day, periods=366, freq="D")  # local midnights, the last one ≤ end
    doy = days.day_of_year.to_numpy()
    trend = np.linspace(0.9, 1.1, len(days))
    out = np.empty(n, dtype=np.int64)
    night = np.isin(codes, NIGHT_CATEGORIES)
    for key in np.unique(classes).tolist() + ["night"]:
        members = (
            np.flatnonzero(night[cat])
            if key == "night"
            else np.flatnonzero((classes[cat] == key) & ~night[cat])
        )
        if len(members) == 0:
            continue
        swing = 0.30 if key == "environment" else 0.12
        season = 1 + swing * np.cos(2 * np.pi * (doy - 200) / 365.25)
        w = season * WEEKDAY[days.day_of_week.to_numpy()] * trend
        hours = NIGHT_HOURS if key == "night" else DAY_HOURS
        out[members] = _draw_times(days, w, hours, len(members), end, rng)
    return pd.DatetimeIndex(pd.to_datetime(out, unit="ns", utc=True)).tz_convert(TZ)


def _draw_times(
    days: pd.DatetimeIndex,
    w: np.ndarray,
    hours: np.ndarray,
    n: int,
    end: pd.Timestamp,
    rng: np.random.Generator,
) -> np.ndarray:
    """Day by weight, hour by profile, second uniform; draws at or after ``end`` are drawn again."""
    end_ns = end.as_unit("ns").value
    start_ns = end_ns - 365 * 86_400 * 1_000_000_000
    midnights = days.as_unit("ns").asi8
    out = np.empty(n, dtype=np.int64)
    todo = np.arange(n)
    while len(todo):
        day = rng.choice(len(days), size=len(todo), p=w / w.sum())
        hour = rng.choice(24, size=len(todo), p=hours / hours.sum())
        second = rng.integers(0, 3600, len(todo))
        t = midnights[day] + (hour * 3600 + second).astype(np.int64) * 1_000_000_000
        ok = (t < end_ns) & (t >= start_ns)
        out[todo[ok]] = t[ok]
        todo = todo[~ok]
    return out


def _status(age_h: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Where an event is in its life by age: the last days still open, older ones closed."""
    stages = [  # (max age in hours, statuses, probabilities)
        (2, ("reported", "accepted"), (0.6, 0.4)),
        (24, ("accepted", "dispatched", "handling", "handled"), (0.15, 0.35, 0.4, 0.1)),
        (72, ("handling", "handled", "verified"), (0.3, 0.4, 0.3)),
        (336, ("handled", "verified", "evaluated", "archived"), (0.1, 0.3, 0.4, 0.2)),
        (np.inf, ("evaluated", "archived", "rejected"), (0.25, 0.74, 0.01)),
    ]
    out = np.empty(len(age_h), dtype=object)
    lower = -np.inf
    u = rng.random(len(age_h))
    for upper, statuses, probs in stages:
        mask = (age_h >= lower) & (age_h < upper)
        pick = np.searchsorted(np.cumsum(probs), u[mask] * sum(probs), side="right")
        out[mask] = np.array(statuses, dtype=object)[np.minimum(pick, len(statuses) - 1)]
        lower = upper
    return out.astype(str)


def _sources(codes: np.ndarray, classes: np.ndarray, cat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Who reports what: cameras see stalls and traffic, residents phone 12345 about livelihood."""
    default = SOURCE_MIX["default"]
    mix = np.array(
        [SOURCE_MIX.get(c, SOURCE_MIX.get(k, default)) for c, k in zip(codes, classes, strict=True)]
    )
    cum = np.cumsum(mix / mix.sum(axis=1, keepdims=True), axis=1)
    pick = (rng.random(len(cat))[:, None] > cum[cat]).sum(axis=1)
    return np.array(SOURCES)[np.minimum(pick, len(SOURCES) - 1)]


def _descriptions(
    h: Hierarchy, places: Places, names: np.ndarray, source: np.ndarray, near: np.ndarray, xy: np.ndarray
) -> list[str]:
    """Short texts as a dispatcher would log them, naming the place or the grid."""
    grid = grid_at(h, xy)
    where = [
        places.names[p] + "附近" if p >= 0 else h.grid_names[g]
        for p, g in zip(near.tolist(), grid.tolist(), strict=True)
    ]
    templates = {
        "grid_worker": "网格员巡查发现{w}存在{c}问题",
        "public": "群众反映{w}{c}，请求处理",
        "hotline_12345": "12345热线转办：{w}{c}",
        "video": "视频巡查发现{w}疑似{c}",
    }
    return [
        templates[s].format(w=w, c=c) for s, w, c in zip(source.tolist(), where, names.tolist(), strict=True)
    ]


STAGES = ("reported", "accepted", "dispatched", "handling", "handled", "verified", "archived", "evaluated")
STAMPS = ("accepted_at", "dispatched_at", "handling_at", "handled_at", "verified_at", "archived_at", "evaluated_at")
URGENT_FACTOR = 0.5  # the deadlines table's default factor row for urgent events


def _history(
    when: pd.DatetimeIndex,
    status: np.ndarray,
    urgent: np.ndarray,
    hours: np.ndarray,
    town: np.ndarray,
    end: pd.Timestamp,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """A plausible life for each event up to its status: step times, deadlines, reopenings, satisfaction.

    Each town works at its own pace (a lognormal factor), so rankings and on-time rates differ
    between towns; about one handled event in twelve misses its deadline. Steps an open event has
    not reached stay empty, and an event's steps are squeezed to end before ``end``.
    """
    n = len(status)
    factor = np.where(urgent, URGENT_FACTOR, 1.0)
    accept_h, handle_h = hours[:, 0] * factor, hours[:, 1] * factor
    pace = rng.lognormal(0.0, 0.35, int(town.max()) + 1 if n else 1)[town] if n else np.ones(0)
    steps_h = np.column_stack([
        accept_h * rng.lognormal(np.log(0.3), 0.6, n),  # accept, within the accept deadline mostly
        rng.lognormal(np.log(0.4), 0.7, n),  # dispatch
        rng.lognormal(np.log(1.0), 0.8, n),  # start handling
        handle_h * np.minimum(rng.lognormal(np.log(0.35), 0.55, n) * pace, 5.0),  # handle (feedback)
        rng.lognormal(np.log(6.0), 0.6, n),  # verify
        rng.lognormal(np.log(12.0), 0.5, n),  # archive
        rng.lognormal(np.log(30.0), 0.5, n),  # evaluate
    ])  # fmt: skip
    stage = np.array([STAGES.index(s) if s in STAGES else 0 for s in status])
    reached = np.arange(1, len(STAGES))[None, :] <= stage[:, None]
    offsets_h = np.cumsum(np.where(reached, steps_h, 0.0), axis=1)
    age_h = (end - when).total_seconds().to_numpy() / 3600
    last_h = offsets_h[np.arange(n), np.maximum(stage - 1, 0)] if n else np.zeros(0)
    squeeze = np.where(last_h > 0.95 * age_h, 0.95 * age_h / np.maximum(last_h, 1e-9) * rng.uniform(0.5, 1.0, n), 1.0)
    offsets_h *= squeeze[:, None]
    base = when.tz_convert("UTC").tz_localize(None).to_numpy()
    times = base[:, None] + (offsets_h * 3.6e12).astype("timedelta64[ns]")
    out: dict[str, np.ndarray] = {}
    for i, column in enumerate(STAMPS):
        out[column] = np.where(reached[:, i], times[:, i], np.datetime64("NaT"))
    dispatched = reached[:, 1]
    out["accept_due_at"] = base + (accept_h * 3.6e12).astype("timedelta64[ns]")
    out["handle_due_at"] = np.where(dispatched, times[:, 1] + (handle_h * 3.6e12).astype("timedelta64[ns]"),
                                    np.datetime64("NaT"))  # fmt: skip
    verified_or_later = stage >= STAGES.index("verified")
    reopen = np.where(verified_or_later | (stage == STAGES.index("handled")),
                      rng.choice(3, size=n, p=(0.92, 0.07, 0.01)), 0)  # fmt: skip
    out["reopen_count"] = reopen.astype(np.int64)
    late = out["handled_at"] > out["handle_due_at"]
    mood = rng.choice(5, size=n, p=(0.03, 0.05, 0.12, 0.35, 0.45)) + 1 - late - (reopen > 0)
    evaluated = stage == STAGES.index("evaluated")
    out["satisfaction"] = np.where(evaluated, np.clip(mood, 1, 5), 0).astype(np.int64)
    return out
