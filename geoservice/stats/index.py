"""The governance index (治理指数) that ranks towns and communities each month: a pure function.

    index = 100 × (0.40·T + 0.25·S + 0.20·(1 − R) + 0.15·(1 − D)) − 10 × O

* T — on-time rate (handled before the handling deadline, among handled events with a deadline);
* S — satisfaction mapped from 1–5 onto 0–1: (mean − 1) / 4;
* R — reopen rate (handled events reopened at least once, among handled events);
* D — incidence (events per 10,000 residents, or per km² where no population layer is loaded),
  min–max normalised over the units ranked together (all equal: 0.5);
* O — supervision overdue share (督办): orders answered late or unanswered past their deadline,
  among the orders on the unit's events. A penalty of up to 10 points, 0 for a unit without
  orders: being supervised is not itself a fault, leaving an order unanswered is.

A figure a unit has no data for (no handled event, no evaluation) takes the mean of that figure
over the other units, so a quiet unit is neither rewarded nor punished for it; with no data
anywhere it takes 0.5. Ties rank by code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WEIGHTS = {"on_time": 0.40, "satisfaction": 0.25, "no_reopen": 0.20, "low_incidence": 0.15}
SUPERVISION_PENALTY = 10.0  # index points taken for a unit whose every supervision order went overdue


@dataclass(frozen=True)
class UnitFigures:
    """One town's or community's figures for the month."""

    code: str
    name: str
    events: int
    on_time_rate: float | None
    mean_satisfaction: float | None
    reopen_rate: float | None
    incidence: float
    supervision_orders: int = 0
    supervision_overdue: int = 0


@dataclass(frozen=True)
class Ranked:
    """A unit's place in the ranking, its index and the four normalised components."""

    rank: int
    unit: UnitFigures
    index: float
    components: dict[str, float]


def rank_units(units: Sequence[UnitFigures]) -> list[Ranked]:
    """Index every unit and order them best first."""
    on_time = _filled([u.on_time_rate for u in units])
    satisfaction = _filled([None if u.mean_satisfaction is None else (u.mean_satisfaction - 1) / 4 for u in units])
    no_reopen = _filled([None if u.reopen_rate is None else 1 - u.reopen_rate for u in units])
    low_incidence = [1 - d for d in _min_max([u.incidence for u in units])]
    scored = []
    for i, unit in enumerate(units):
        parts = {"on_time": on_time[i], "satisfaction": satisfaction[i], "no_reopen": no_reopen[i],
                 "low_incidence": low_incidence[i]}  # fmt: skip
        overdue = unit.supervision_overdue / unit.supervision_orders if unit.supervision_orders else 0.0
        index = 100 * sum(WEIGHTS[k] * v for k, v in parts.items()) - SUPERVISION_PENALTY * overdue
        parts["supervision_overdue"] = overdue
        scored.append((unit, round(index, 2), {k: round(v, 4) for k, v in parts.items()}))
    scored.sort(key=lambda s: (-s[1], s[0].code))
    return [Ranked(rank, unit, index, parts) for rank, (unit, index, parts) in enumerate(scored, start=1)]


def _filled(values: list[float | None]) -> list[float]:
    known = [v for v in values if v is not None]
    mean = sum(known) / len(known) if known else 0.5
    return [mean if v is None else v for v in values]


def _min_max(values: list[float]) -> list[float]:
    if not values:
        return []
    low, high = min(values), max(values)
    if high == low:
        return [0.5] * len(values)
    return [(v - low) / (high - low) for v in values]
