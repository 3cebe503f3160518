"""Department routing rules: data, not code.

A rule says: events of this category (a class or a subcategory), optionally only inside this
region (a city/town/community subtree), optionally only within a distance of a key place of this
type, optionally only inside this zone, go to this department. Of the rules that match an event, the
most specific wins, then the highest priority, then the lowest id. Specificity counts the
conditions a rule sets: its category's depth (class 1, subcategory 2), plus one each for a region,
a place condition and a zone. Every decision carries a reason a person can read, and
``explain`` lists every candidate with why it won or lost.

Zones are written ``station_area:<station code>`` in ``zone_layer``: the event must lie in that
station's jurisdiction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rule:
    """One row of ``routing_rules``."""

    id: int
    category_code: str
    department_code: str
    priority: int = 0
    region_code: str | None = None
    place_type: str | None = None
    place_distance_m: float | None = None
    zone_layer: str | None = None
    description: str = ""

    @property
    def specificity(self) -> int:
        return (
            (2 if "." in self.category_code else 1)
            + (self.region_code is not None)
            + (self.place_type is not None)
            + (self.zone_layer is not None)
        )


@dataclass(frozen=True)
class EventFacts:
    """What the router knows about where an event happened."""

    category_code: str
    region_codes: frozenset[str]  # grid's community, town and city
    nearest_place: Mapping[str, tuple[str, float]] = field(default_factory=dict)  # type → (name, metres)
    station_area: str | None = None  # code of the station whose jurisdiction covers the point


@dataclass(frozen=True)
class Verdict:
    """One candidate rule, whether it matched, and the reasons."""

    rule: Rule
    matched: bool
    reasons: tuple[str, ...]
    won: bool = False


def category_chain(category_code: str) -> tuple[str, ...]:
    """The category and its ancestors: ``public_order.fight`` → (``public_order.fight``, ``public_order``)."""
    parts = category_code.split(".")
    return tuple(".".join(parts[:k]) for k in range(len(parts), 0, -1))


def explain(rules: Sequence[Rule], facts: EventFacts) -> list[Verdict]:
    """Every rule of the event's category chain, winner first, then the other matches, then misses."""
    chain = category_chain(facts.category_code)
    verdicts = [_judge(rule, facts) for rule in rules if rule.category_code in chain]
    verdicts.sort(key=lambda v: (not v.matched, -v.rule.specificity, -v.rule.priority, v.rule.id))
    if verdicts and verdicts[0].matched:
        verdicts[0] = Verdict(verdicts[0].rule, True, verdicts[0].reasons, won=True)
    return verdicts


def decide(rules: Sequence[Rule], facts: EventFacts) -> tuple[Rule | None, str]:
    """The winning rule and a one-sentence reason (None and why, when no rule matches)."""
    verdicts = explain(rules, facts)
    if not verdicts or not verdicts[0].won:
        return None, f"no routing rule matches category {facts.category_code}; the command centre decides"
    winner = verdicts[0]
    runners = [v for v in verdicts[1:] if v.matched]
    beaten = f"; it outranks {len(runners)} other matching rule(s)" if runners else ""
    return (
        winner.rule,
        f"rule {winner.rule.id} ({winner.rule.description}): {'; '.join(winner.reasons)}{beaten}",
    )


def _judge(rule: Rule, facts: EventFacts) -> Verdict:
    reasons = [f"category {facts.category_code} is in {rule.category_code}"]
    matched = True
    if rule.region_code is not None:
        inside = rule.region_code in facts.region_codes
        matched &= inside
        reasons.append(f"{'inside' if inside else 'outside'} region {rule.region_code}")
    if rule.place_type is not None:
        name, metres = facts.nearest_place.get(rule.place_type, ("", float("inf")))
        close = metres <= (rule.place_distance_m or 0)
        matched &= close
        where = f"nearest {rule.place_type} {name} is {metres:,.0f} m away" if name else f"no {rule.place_type} nearby"
        reasons.append(f"{where} ({'within' if close else 'beyond'} {rule.place_distance_m:,.0f} m)")
    if rule.zone_layer is not None:
        inside = rule.zone_layer == f"station_area:{facts.station_area}"
        matched &= inside
        reasons.append(f"{'inside' if inside else 'outside'} zone {rule.zone_layer}")
    reasons.append(f"specificity {rule.specificity}, priority {rule.priority}")
    return Verdict(rule, matched, tuple(reasons))
