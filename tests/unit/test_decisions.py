"""The content decision rules: the file's checks (each mistake named with its rule and field) and evaluation
(first match wins, empty fields, placeholders, dbt vars). The shipped rules file is checked too."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from pulse.activation.decisions import (
    DEFAULT_RULES_FILE,
    INPUT_FIELDS,
    OPERATORS,
    DecisionRulesError,
    RulesFile,
    load_rules,
    parse_rules,
)
from pulse.core.settings import dbt_project_vars

DEFAULT = {"slot": "banner", "content": "welcome"}


def rules_of(*rules: dict, default: dict = DEFAULT, dbt_vars: dict | None = None):
    return parse_rules({"version": 1, "rules": list(rules), "default": default}, "test.yaml", dbt_vars)


def rule(name: str, *conditions: dict, **show: str) -> dict:
    return {"name": name, "when": list(conditions), "show": {"slot": "banner", "content": name, **show}}


def problems_of(*rules: dict, document: dict | None = None, dbt_vars: dict | None = None) -> list[str]:
    doc = document if document is not None else {"rules": list(rules), "default": DEFAULT}
    with pytest.raises(DecisionRulesError) as err:
        parse_rules(doc, "test.yaml", dbt_vars)
    assert str(err.value).startswith("test.yaml: ")
    return err.value.problems


# ------------------------------------------------------------------------------------------------ evaluation


def test_first_matching_rule_wins_in_file_order() -> None:
    rules = rules_of(
        rule("cart", {"field": "active_triggers", "op": "contains", "value": "cart_abandonment"}),
        rule("buyer", {"field": "purchases", "op": "at_least", "value": 1}),
    )
    both = {"active_triggers": ["cart_abandonment"], "purchases": 3}
    assert rules.decide(both).rule == "cart" and rules.decide(both).position == 1
    assert rules.decide({"active_triggers": [], "purchases": 3}).rule == "buyer"
    default = rules.decide({"active_triggers": ["high_intent"], "purchases": 0})
    assert (default.rule, default.position, default.show) == ("default", None, DEFAULT)
    assert default.fields == ("active_triggers", "purchases")  # the default used every rule's fields


def test_all_conditions_of_a_rule_must_hold() -> None:
    rules = rules_of(
        rule(
            "loyal",
            {"field": "user_type", "op": "equals", "value": "Active"},
            {"field": "purchases", "op": "at_least", "value": 1},
        )
    )
    assert rules.decide({"user_type": "Active", "purchases": 1}).rule == "loyal"
    assert rules.decide({"user_type": "Active", "purchases": 0}).rule == "default"
    assert rules.decide({"user_type": "Passive", "purchases": 5}).rule == "default"


@pytest.mark.parametrize(
    ("op", "value", "actual", "holds"),
    [
        ("equals", 3, 3, True),
        ("equals", 3, 4, False),
        ("not_equals", 3, 4, True),
        ("at_least", 5, 5, True),
        ("at_least", 5, 4.99, False),
        ("at_most", 5, 5, True),
        ("at_most", 5, 6, False),
        ("more_than", 5, 5, False),
        ("more_than", 5, 6, True),
        ("less_than", 5, 4, True),
        ("less_than", 5, 5, False),
        ("one_of", [1, 2], 2, True),
        ("one_of", [1, 2], 3, False),
        ("is_set", None, 0, True),
        ("is_set", None, None, False),
        ("is_set", None, float("nan"), False),
        ("is_not_set", None, None, True),
        ("is_not_set", None, 0, False),
    ],
)
def test_number_operators(op: str, value, actual, holds: bool) -> None:
    condition = {"field": "sessions_today", "op": op} | ({} if value is None else {"value": value})
    rules = rules_of(rule("r", condition))
    assert (rules.decide({"sessions_today": actual}).rule == "r") is holds


def test_an_empty_field_makes_every_comparison_false() -> None:
    """Not scored, not seen live, no snapshot: a rule on the field does not apply, whatever its operator."""
    for op, value in (("less_than", 0.5), ("at_most", 1.0), ("not_equals", 0.2), ("more_than", 0.0)):
        rules = rules_of(rule("r", {"field": "intent_probability", "op": op, "value": value}))
        assert rules.decide({"intent_probability": None}).rule == "default", op
        assert rules.decide({}).rule == "default", op
    rules = rules_of(rule("r", {"field": "active_triggers", "op": "not_contains", "value": "x"}))
    assert rules.decide({"active_triggers": None}).rule == "default"
    assert rules.decide({"active_triggers": []}).rule == "r"


def test_list_and_flag_operators() -> None:
    rules = rules_of(
        rule("no", {"field": "consent_personalization", "op": "equals", "value": False}),
        rule("cart", {"field": "active_triggers", "op": "contains", "value": "cart_abandonment"}),
    )
    assert rules.decide({"consent_personalization": False, "active_triggers": ["cart_abandonment"]}).rule == "no"
    assert rules.decide({"consent_personalization": None, "active_triggers": ["cart_abandonment"]}).rule == "cart"
    assert rules.decide({"consent_personalization": True, "active_triggers": ["high_intent"]}).rule == "default"


def test_placeholders_fill_the_content_and_an_empty_one_skips_the_rule() -> None:
    rules = rules_of(
        rule(
            "top",
            {"field": "seen_live", "op": "equals", "value": True},
            category="{top_category}",
            message="Picked for you: {top_category} ({sessions_today} visits)",
        ),
    )
    decision = rules.decide({"seen_live": True, "top_category": "shoes", "sessions_today": 3.0})
    assert decision.show == {
        "slot": "banner",
        "content": "top",
        "category": "shoes",
        "message": "Picked for you: shoes (3 visits)",
    }
    assert decision.fields == ("seen_live", "top_category", "sessions_today")
    assert rules.decide({"seen_live": True, "top_category": None, "sessions_today": 3}).rule == "default"


def test_a_condition_can_read_a_dbt_var() -> None:
    r = rule("frequent", {"field": "sessions_today", "op": "more_than", "var": "frequent_visitor_sessions_per_day"})
    rules = rules_of(r, dbt_vars={"frequent_visitor_sessions_per_day": 5})
    assert (
        rules.rules[0].conditions[0].value == 5
        and rules.rules[0].conditions[0].var == "frequent_visitor_sessions_per_day"
    )
    assert rules.decide({"sessions_today": 5}).rule == "default"
    assert rules.decide({"sessions_today": 6}).rule == "frequent"
    assert (
        rules_of(r, dbt_vars={"frequent_visitor_sessions_per_day": 2}).decide({"sessions_today": 3}).rule == "frequent"
    )


# ------------------------------------------------------------------------------------------------ validation


def test_an_unknown_field_names_the_rule_and_the_field_with_a_suggestion() -> None:
    problems = problems_of(rule("cart", {"field": "active_trigger", "op": "contains", "value": "x"}))
    assert problems == ["rule 'cart', field 'active_trigger': unknown field (did you mean active_triggers?)"]


def test_an_unknown_operator_names_the_rule_the_field_and_the_operators() -> None:
    (problem,) = problems_of(rule("offer", {"field": "intent_probability", "op": ">=", "value": 0.5}))
    assert problem.startswith("rule 'offer', field 'intent_probability': unknown operator '>='")
    assert "at_least" in problem


def test_an_operator_that_does_not_fit_the_field() -> None:
    (problem,) = problems_of(rule("r", {"field": "sessions_today", "op": "contains", "value": "x"}))
    assert problem == (
        "rule 'r', field 'sessions_today': operator contains does not apply to a number field (it applies to list)"
    )


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"field": "sessions_today", "op": "at_least", "value": "5"}, "at_least needs a number, got '5'"),
        ({"field": "sessions_today", "op": "at_least", "value": True}, "at_least needs a number, got True"),
        ({"field": "user_type", "op": "equals", "value": 3}, "equals on a text field needs a text, got 3"),
        ({"field": "seen_live", "op": "equals", "value": "yes"}, "equals on a flag field needs a flag, got 'yes'"),
        ({"field": "user_type", "op": "one_of", "value": "Active"}, "one_of needs a non-empty list, got 'Active'"),
        ({"field": "user_type", "op": "one_of", "value": ["Active", 1]}, "one_of: 1 is not a text"),
        ({"field": "top_category", "op": "is_set", "value": "x"}, "is_set takes no value"),
        ({"field": "active_triggers", "op": "contains", "value": ["a"]}, "contains needs a text, got ['a']"),
    ],
)
def test_a_value_of_the_wrong_kind(condition: dict, expected: str) -> None:
    assert problems_of(rule("r", condition)) == [f"rule 'r', field {condition['field']!r}: {expected}"]


def test_an_unknown_dbt_var() -> None:
    problems = problems_of(
        rule("f", {"field": "sessions_today", "op": "more_than", "var": "frequent_visitor_session_per_day"}),
        dbt_vars={"frequent_visitor_sessions_per_day": 5},
    )
    assert problems == [
        "rule 'f', field 'sessions_today': unknown dbt var 'frequent_visitor_session_per_day' "
        "(did you mean frequent_visitor_sessions_per_day?)"
    ]
    both = {"field": "sessions_today", "op": "more_than", "var": "frequent_visitor_sessions_per_day", "value": 3}
    assert problems_of(rule("f", both), dbt_vars={"frequent_visitor_sessions_per_day": 5}) == [
        "rule 'f', field 'sessions_today': give value or var, not both"
    ]


def test_rule_structure_problems_are_all_reported_at_once() -> None:
    problems = problems_of(
        document={
            "rules": [
                {"name": "Bad Name", "when": [{"field": "seen_live", "op": "is_set"}], "show": DEFAULT},
                {"name": "a", "when": [], "show": {"slot": "popup", "content": "x"}},
                {"name": "a", "when": [{"field": "seen_live", "op": "is_set", "valeu": 1}], "show": DEFAULT, "whne": 1},
                {
                    "name": "b",
                    "when": [{"field": "seen_live", "op": "is_set"}],
                    "show": {"slot": "banner", "message": "{nope}"},
                },
                "not a rule",
            ],
            "default": {"slot": "banner", "content": "hi {top_category}"},
            "rulez": [],
        }
    )
    assert problems == [
        "unknown top-level key 'rulez' (did you mean rules?)",
        "rule 1: name 'Bad Name' must be [a-z0-9_]{1,64}",
        "rule 'a': when must be a non-empty list of conditions (all must hold)",
        "rule 'a': show.slot 'popup' is not one of banner, offer, message, product_slot, none",
        "rule 'a': the name is used twice (or is the reserved name default)",
        "rule 'a': unknown key 'whne' (did you mean when?)",
        "rule 'a': unknown key(s) valeu (a condition has field, op, value or var)",
        "rule 'b': show.content is required (a text)",
        "rule 'b': show.message: unknown field {nope}",
        "rule 5: a rule is a mapping (name, when, show), got 'not a rule'",
        "default: show must not use fields (top_category): the default applies when they may be empty",
    ]


def test_the_file_must_be_a_mapping_with_a_default(tmp_path: Path) -> None:
    assert problems_of(document={"rules": []}) == ["default: show must be a mapping (slot, content, ...), got None"]
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules: [\n")
    with pytest.raises(DecisionRulesError, match=r"(?s)rules.yaml: 1 problem.*not valid YAML"):
        load_rules(bad)
    with pytest.raises(DecisionRulesError, match="cannot read the file"):
        load_rules(tmp_path / "missing.yaml")


def test_every_field_and_operator_is_documented_for_marketers() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "decisions.md").read_text()
    for name in INPUT_FIELDS:
        assert f"`{name}`" in guide, name
    for op in OPERATORS:
        assert f"`{op}`" in guide, op


# ------------------------------------------------------------------------------------------------ the shipped file


def test_the_shipped_rules_pass_their_checks_with_the_project_dbt_vars() -> None:
    rules = load_rules(DEFAULT_RULES_FILE, dbt_project_vars())
    names = [r.name for r in rules.rules]
    assert names[:2] == ["no_personalization", "cart_reminder"]
    assert len(rules.digest) == 64
    cart = {
        "active_triggers": ["cart_abandonment", "frequent_visitor"],
        "sessions_today": 9,
        "consent_personalization": True,
    }
    assert rules.decide(cart).show["content"] == "cart_reminder"
    assert rules.decide(cart | {"consent_personalization": False}).rule == "no_personalization"
    threshold = dbt_project_vars()["frequent_visitor_sessions_per_day"]
    assert rules.decide({"sessions_today": threshold + 1}).rule == "frequent_visitor_loyalty"
    assert rules.decide({"sessions_today": threshold}).rule == "default"
    browse = rules.decide({"top_category": "bags"})
    assert (browse.rule, browse.show["category"]) == ("browser_top_category", "bags")
    assert rules.decide({}).show == yaml.safe_load(DEFAULT_RULES_FILE.read_text())["default"]


def test_a_changed_rules_file_is_reloaded_and_a_broken_one_keeps_the_old_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    first = {"rules": [rule("one", {"field": "seen_live", "op": "equals", "value": True})], "default": DEFAULT}
    path.write_text(yaml.safe_dump(first))
    watched = RulesFile(path)
    assert watched.current().decide({"seen_live": True}).rule == "one"

    second = {"rules": [rule("two", {"field": "seen_live", "op": "equals", "value": True})], "default": DEFAULT}
    path.write_text(yaml.safe_dump(second))
    os.utime(path, ns=(1, 1))  # a different mtime even on a coarse clock
    assert watched.current().decide({"seen_live": True}).rule == "two" and watched.problem is None

    broken = {"rules": [rule("three", {"field": "seen_lives", "op": "equals", "value": True})], "default": DEFAULT}
    path.write_text(yaml.safe_dump(broken))
    os.utime(path, ns=(2, 2))
    assert watched.current().decide({"seen_live": True}).rule == "two"
    assert watched.problem is not None and "rule 'three', field 'seen_lives': unknown field" in watched.problem

    with pytest.raises(DecisionRulesError, match="seen_lives"):
        RulesFile(path)  # at start, a broken file stops the API with the same message
