"""Routing rules decide by specificity, then priority, then id, and say why."""

from geoservice.routing.rules import EventFacts, Rule, category_chain, decide, explain

RULES = [
    Rule(1, "public_order", "police", 10, description="治安"),
    Rule(2, "public_order.dispute", "civil_affairs", 20, description="纠纷"),
    Rule(3, "public_order", "police", 30, place_type="school", place_distance_m=200, description="校园"),
    Rule(4, "public_order.dispute", "town_office", 5, region_code="320682100000", description="镇"),
    Rule(5, "public_order.dispute", "station_desk", 1, zone_layer="station_area:PS001", description="所"),
    Rule(6, "environment", "ecology", 10, description="环保"),
]


def facts(category="public_order.dispute", regions=("320682001001", "320682001000", "320682000000"),
          school_m=1_000.0, station=None) -> EventFacts:  # fmt: skip
    return EventFacts(category, frozenset(regions), {"school": ("一中", school_m)}, station)


def test_category_chain():
    assert category_chain("public_order.dispute") == ("public_order.dispute", "public_order")
    assert category_chain("public_order") == ("public_order",)


def test_subcategory_beats_its_class():
    rule, reason = decide(RULES, facts())
    assert rule.id == 2
    assert reason.startswith("rule 2 (纠纷): category public_order.dispute is in public_order.dispute")
    assert "outranks 1 other matching rule(s)" in reason


def test_equal_specificity_goes_to_priority():
    # Near a school, rule 3 (class + place: 2 conditions) ties rule 2 (subcategory: 2) and has the higher priority.
    rule, reason = decide(RULES, facts(school_m=120))
    assert rule.id == 3 and "nearest school 一中 is 120 m away (within 200 m)" in reason


def test_region_and_zone_make_rules_more_specific():
    in_town = facts(regions=("320682100201", "320682100000", "320682000000"))
    assert decide(RULES, in_town)[0].id == 4
    assert decide(RULES, facts(station="PS001"))[0].id == 5


def test_explain_lists_every_candidate_of_the_chain_with_reasons():
    verdicts = explain(RULES, facts(school_m=450))
    assert [v.rule.id for v in verdicts] == [2, 1, 4, 5, 3]
    assert [v.won for v in verdicts] == [True, False, False, False, False]
    assert [v.matched for v in verdicts] == [True, True, False, False, False]
    by_id = {v.rule.id: v for v in verdicts}
    assert "outside region 320682100000" in by_id[4].reasons
    assert "outside zone station_area:PS001" in by_id[5].reasons
    assert "nearest school 一中 is 450 m away (beyond 200 m)" in by_id[3].reasons


def test_no_rule_for_a_category():
    rule, reason = decide(RULES, facts(category="livelihood.elderly"))
    assert rule is None and "no routing rule matches category livelihood.elderly" in reason
