"""Content decisions as declared data: which banner, offer, message or product slot a visitor sees.

The rules live in a YAML file (``decision_rules.yaml`` beside this module by default; docs/decisions.md is the
marketers' guide). The file is checked completely when it is loaded: a rule that names an unknown field, an
unknown operator, a value of the wrong kind, a dbt var that does not exist or a placeholder that is not a
field is an error that names the rule and the field (:class:`DecisionRulesError`, every problem at once).

Evaluation: the rules are tried in file order, the first whose conditions all hold wins, else the default.
A condition on a field that is empty (``None``: not scored, not seen live, no snapshot) is false, except
``is_set`` / ``is_not_set``, which ask exactly that. A rule whose content text needs a field that is empty
(a ``{top_category}`` placeholder without a top category) does not apply either: the next rule is tried.

This module is plain Python over plain dicts: the inputs are built by the read API from the published
profile merged with the live state (:mod:`pulse.activation.live_profile`), so the same evaluator can run
anywhere a profile dict exists.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import math
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

log = logging.getLogger(__name__)

DEFAULT_RULES_FILE = Path(__file__).with_name("decision_rules.yaml")

Kind = Literal["number", "text", "list", "flag"]

# The fields a rule may read. Where each comes from (published snapshot, live state or both) is the read
# API's business (pulse/activation/live_profile.py: decision_inputs); the response says it for every value.
INPUT_FIELDS: dict[str, tuple[Kind, str]] = {
    # merged: the live value when the live state is newer than the snapshot, else the published one
    "active_triggers": (
        "list",
        "triggers active now: the snapshot's (7 days) plus live firings, a purchase cancels cart_abandonment",
    ),
    "intent_probability": ("number", "P(purchase in the horizon): the live score if newer, else the published one"),
    "top_category": ("text", "the category viewed most today (live), else the first of top_categories"),
    # published (the nightly snapshot)
    "user_type": ("text", "Active, Intent-driven or Passive"),
    "segment_name": ("text", "the segment's name"),
    "intent_decile": ("number", "1..10 in the snapshot, 1 = the top 10 % most likely to buy"),
    "engagement_score": ("number", "0..100"),
    "top_categories": ("list", "the user's categories by affinity, best first"),
    "purchases": ("number", "purchases up to the snapshot"),
    "days_since_last_visit": ("number", "days from the last visit to the snapshot"),
    "consent_personalization": ("flag", "consent to personalization (live events' flag if newer, else published)"),
    # live (today's UTC day in the stream's state)
    "seen_live": ("flag", "the stream has state for this visitor"),
    "sessions_today": ("number", "sessions started today"),
    "page_views_today": ("number", "page views today"),
    "product_views_today": ("number", "product views today"),
    "cart_adds_today": ("number", "cart adds today"),
    "purchases_today": ("number", "purchases today"),
    "revenue_today": ("number", "revenue today"),
    "engaged_seconds_today": ("number", "engaged seconds today"),
    "cart_open": ("flag", "items in the cart and no purchase since"),
    "cart_items": ("number", "items in the open cart"),
    "minutes_since_last_event": ("number", "minutes since the visitor's last event"),
    "profile_source": ("text", "published, live, merged or none"),
}

# operator -> the field kinds it applies to, and what its value must be
OPERATORS: dict[str, tuple[frozenset[str], str]] = {
    "equals": (frozenset({"number", "text", "flag"}), "scalar"),
    "not_equals": (frozenset({"number", "text", "flag"}), "scalar"),
    "at_least": (frozenset({"number"}), "number"),
    "at_most": (frozenset({"number"}), "number"),
    "more_than": (frozenset({"number"}), "number"),
    "less_than": (frozenset({"number"}), "number"),
    "one_of": (frozenset({"number", "text"}), "list"),
    "contains": (frozenset({"list"}), "text"),
    "not_contains": (frozenset({"list"}), "text"),
    "is_set": (frozenset({"number", "text", "list", "flag"}), "none"),
    "is_not_set": (frozenset({"number", "text", "list", "flag"}), "none"),
}

SLOTS = ("banner", "offer", "message", "product_slot", "none")
RULE_NAME = re.compile(r"^[a-z0-9_]{1,64}$")
RULE_KEYS = frozenset({"name", "description", "when", "show"})
CONDITION_KEYS = frozenset({"field", "op", "value", "var"})


class DecisionRulesError(ValueError):
    """A rules file that cannot be used; ``problems`` lists each one (rule, field, what is wrong)."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s)\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any = None
    var: str | None = None  # the dbt var the value was read from (said in the decision's inputs)

    def holds(self, inputs: Mapping[str, Any]) -> bool:
        actual = inputs.get(self.field)
        if self.op == "is_set":
            return not _empty(actual)
        if self.op == "is_not_set":
            return _empty(actual)
        if _empty(actual):
            return False
        match self.op:
            case "equals":
                return actual == self.value
            case "not_equals":
                return actual != self.value
            case "at_least":
                return actual >= self.value
            case "at_most":
                return actual <= self.value
            case "more_than":
                return actual > self.value
            case "less_than":
                return actual < self.value
            case "one_of":
                return actual in self.value
            case "contains":
                return self.value in actual
            case "not_contains":
                return self.value not in actual
        raise AssertionError(f"operator {self.op!r} passed validation but has no meaning")  # pragma: no cover


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    conditions: tuple[Condition, ...]
    show: dict[str, str]
    placeholders: tuple[str, ...] = ()

    @property
    def fields(self) -> tuple[str, ...]:
        """The input fields the rule reads (conditions, then content placeholders), each once, in order."""
        return tuple(dict.fromkeys([c.field for c in self.conditions] + list(self.placeholders)))

    def applies(self, inputs: Mapping[str, Any]) -> bool:
        return all(c.holds(inputs) for c in self.conditions) and all(
            not _empty(inputs.get(p)) for p in self.placeholders
        )

    def content(self, inputs: Mapping[str, Any]) -> dict[str, str]:
        return {
            key: text.format_map({p: _text(inputs.get(p)) for p in self.placeholders})
            for key, text in self.show.items()
        }


@dataclass(frozen=True)
class Decision:
    rule: str  # the rule's name, or "default"
    position: int | None  # 1-based place of the rule in the file; None for the default
    show: dict[str, str]
    fields: tuple[str, ...]  # the inputs it used: the chosen rule's fields (the default: every rule's)


@dataclass(frozen=True)
class DecisionRules:
    rules: tuple[Rule, ...]
    default: dict[str, str]
    source: str
    digest: str = field(default="", compare=False)  # sha256 of the file: which version decided

    def decide(self, inputs: Mapping[str, Any]) -> Decision:
        for position, rule in enumerate(self.rules, start=1):
            if rule.applies(inputs):
                return Decision(rule=rule.name, position=position, show=rule.content(inputs), fields=rule.fields)
        every = tuple(dict.fromkeys(f for rule in self.rules for f in rule.fields))
        return Decision(rule="default", position=None, show=dict(self.default), fields=every)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _close(name: str, names: Any) -> str:
    matches = difflib.get_close_matches(name, list(names), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(matches)}?)" if matches else ""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _value_problem(kind: str, op: str, value: Any) -> str | None:
    """Why ``value`` cannot be compared with a field of ``kind`` by ``op`` (None: it can)."""
    expected = OPERATORS[op][1]
    if expected == "none":
        return None if value is None else f"{op} takes no value"
    if expected == "number":
        return None if _is_number(value) else f"{op} needs a number, got {value!r}"
    if expected == "text":
        return None if isinstance(value, str) else f"{op} needs a text, got {value!r}"
    if expected == "list":
        if not isinstance(value, list) or not value:
            return f"{op} needs a non-empty list, got {value!r}"
        bad = [v for v in value if _value_problem(kind, "equals", v)]
        return f"{op}: {bad[0]!r} is not a {kind}" if bad else None
    checks = {"number": _is_number, "text": lambda v: isinstance(v, str), "flag": lambda v: isinstance(v, bool)}
    return None if checks[kind](value) else f"{op} on a {kind} field needs a {kind}, got {value!r}"


def _show(where: str, show: Any, problems: list[str]) -> tuple[dict[str, str], tuple[str, ...]]:
    if not isinstance(show, dict):
        problems.append(f"{where}: show must be a mapping (slot, content, ...), got {show!r}")
        return {}, ()
    content = {str(k): v for k, v in show.items()}
    for key in ("slot", "content"):
        if not isinstance(content.get(key), str) or not content[key]:
            problems.append(f"{where}: show.{key} is required (a text)")
    if isinstance(content.get("slot"), str) and content["slot"] and content["slot"] not in SLOTS:
        problems.append(f"{where}: show.slot {content['slot']!r} is not one of {', '.join(SLOTS)}")
    placeholders: list[str] = []
    for key, text in content.items():
        if not isinstance(text, str):
            problems.append(f"{where}: show.{key} must be a text, got {text!r}")
            continue
        try:
            names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
        except ValueError as exc:
            problems.append(f"{where}: show.{key}: {exc} (write {{{{ and }}}} for a literal brace)")
            continue
        for name in names:
            if name not in INPUT_FIELDS:
                problems.append(f"{where}: show.{key}: unknown field {{{name}}}{_close(name, INPUT_FIELDS)}")
            elif name not in placeholders:
                placeholders.append(name)
    return {k: v for k, v in content.items() if isinstance(v, str)}, tuple(placeholders)


def _condition(where: str, raw: Any, dbt_vars: Mapping[str, Any], problems: list[str]) -> Condition | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: a condition is a mapping {{field, op, value}}, got {raw!r}")
        return None
    unknown_keys = sorted(set(raw) - CONDITION_KEYS)
    if unknown_keys:
        problems.append(
            f"{where}: unknown key(s) {', '.join(map(str, unknown_keys))} (a condition has field, op, value or var)"
        )
    name, op = raw.get("field"), raw.get("op")
    where = f"{where}, field {name!r}"
    if name not in INPUT_FIELDS:
        problems.append(f"{where}: unknown field{_close(str(name), INPUT_FIELDS)}")
        return None
    if op not in OPERATORS:
        problems.append(f"{where}: unknown operator {op!r}{_close(str(op), OPERATORS)}; one of {', '.join(OPERATORS)}")
        return None
    kind = INPUT_FIELDS[name][0]
    kinds = OPERATORS[op][0]
    if kind not in kinds:
        problems.append(
            f"{where}: operator {op} does not apply to a {kind} field (it applies to {', '.join(sorted(kinds))})"
        )
        return None
    var = raw.get("var")
    if var is not None and "value" in raw:
        problems.append(f"{where}: give value or var, not both")
        return None
    value = raw.get("value")
    if var is not None:
        if var not in dbt_vars:
            problems.append(f"{where}: unknown dbt var {var!r}{_close(str(var), dbt_vars)}")
            return None
        value = dbt_vars[var]
    problem = _value_problem(kind, op, value)
    if problem:
        problems.append(f"{where}: {problem}" + (f" (dbt var {var})" if var is not None else ""))
        return None
    return Condition(field=name, op=op, value=value, var=var)


def parse_rules(document: Any, source: str, dbt_vars: Mapping[str, Any] | None = None) -> DecisionRules:
    """Check a parsed rules document and build the rules. Raises DecisionRulesError listing every problem."""
    dbt_vars = dbt_vars or {}
    problems: list[str] = []
    if not isinstance(document, dict):
        raise DecisionRulesError(source, ["the file must be a mapping with `rules:` and `default:`"])
    for key in sorted(set(document) - {"version", "rules", "default"}):
        problems.append(f"unknown top-level key {key!r}{_close(str(key), ['version', 'rules', 'default'])}")
    if document.get("version", 1) != 1:
        problems.append(f"version {document.get('version')!r}: this pulse reads version 1")
    raw_rules = document.get("rules")
    if not isinstance(raw_rules, list):
        problems.append("rules: must be a list of rules (it may be empty)")
        raw_rules = []
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_rules, start=1):
        label = f"rule {i}"
        if not isinstance(raw, dict):
            problems.append(f"{label}: a rule is a mapping (name, when, show), got {raw!r}")
            continue
        name = raw.get("name")
        if isinstance(name, str) and RULE_NAME.match(name):
            label = f"rule {name!r}"
            if name in seen or name == "default":
                problems.append(f"{label}: the name is used twice (or is the reserved name default)")
            seen.add(name)
        else:
            problems.append(f"{label}: name {name!r} must be [a-z0-9_]{{1,64}}")
        for key in sorted(set(raw) - RULE_KEYS):
            problems.append(f"{label}: unknown key {key!r}{_close(str(key), RULE_KEYS)}")
        when = raw.get("when")
        if not isinstance(when, list) or not when:
            problems.append(f"{label}: when must be a non-empty list of conditions (all must hold)")
            when = []
        conditions = [_condition(label, c, dbt_vars, problems) for c in when]
        show, placeholders = _show(label, raw.get("show"), problems)
        if isinstance(name, str) and all(c is not None for c in conditions):
            rules.append(
                Rule(
                    name=name,
                    description=str(raw.get("description") or ""),
                    conditions=tuple(c for c in conditions if c is not None),
                    show=show,
                    placeholders=placeholders,
                )
            )
    default, default_placeholders = _show("default", document.get("default"), problems)
    if default_placeholders:
        problems.append(
            f"default: show must not use fields ({', '.join(default_placeholders)}): "
            "the default applies when they may be empty"
        )
    if problems:
        raise DecisionRulesError(source, problems)
    return DecisionRules(rules=tuple(rules), default=default, source=source)


def load_rules(path: Path = DEFAULT_RULES_FILE, dbt_vars: Mapping[str, Any] | None = None) -> DecisionRules:
    """Read and check a rules file. Raises DecisionRulesError (it names the file, the rule and the field)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DecisionRulesError(str(path), [f"cannot read the file: {exc}"]) from exc
    try:
        document = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise DecisionRulesError(str(path), [f"not valid YAML: {exc}"]) from exc
    rules = parse_rules(document, str(path), dbt_vars)
    return DecisionRules(
        rules=rules.rules, default=rules.default, source=rules.source, digest=hashlib.sha256(data).hexdigest()
    )


class RulesFile:
    """A rules file watched for changes: ``current()`` stats it (cheap) and reloads it when it changed. A
    changed file that does not pass the checks is logged and not used: the rules loaded before stay in force
    (``problem`` says why), as the read API keeps serving an old snapshot when a new one cannot be read."""

    def __init__(self, path: Path = DEFAULT_RULES_FILE, dbt_vars: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.dbt_vars = dict(dbt_vars or {})
        self.problem: str | None = None
        self._signature = self._stat()
        self.rules = load_rules(self.path, self.dbt_vars)  # the first load must pass: a clear error at start

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def current(self) -> DecisionRules:
        signature = self._stat()
        if signature != self._signature:
            self._signature = signature
            try:
                self.rules, self.problem = load_rules(self.path, self.dbt_vars), None
                log.info("decision rules reloaded from %s (%d rules)", self.path, len(self.rules.rules))
            except DecisionRulesError as exc:
                self.problem = f"{exc} (still deciding with the rules loaded before, sha256 {self.rules.digest[:12]})"
                log.warning("%s", self.problem)
        return self.rules
