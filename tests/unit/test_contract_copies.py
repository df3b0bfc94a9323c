"""The event contract's copies outside Python (docs/event-contract.md's field and reason tables, the tracker's event
types) match pulse/core/contract.py: `make contract-copies` rewrites them."""

from __future__ import annotations

import re

import pytest

from pulse.cli import contract_copies
from pulse.core.contract import EVENT_TYPES, FIELDS, REASONS


def test_the_copies_match_the_declaration() -> None:
    assert contract_copies.stale_copies() == [], "run `make contract-copies`"


def test_a_changed_declaration_makes_its_copies_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(contract_copies, "EVENT_TYPES", (*EVENT_TYPES, "wishlist_add"))
    monkeypatch.setattr(contract_copies, "REASONS", REASONS[:-1])
    assert contract_copies.stale_copies() == [
        "docs/event-contract.md: reason table",
        "pulse/collector/static/pulse.js: event types",
    ]


def test_the_copies_say_what_the_declaration_says() -> None:
    tracker = contract_copies.TRACKER.read_text(encoding="utf-8")
    [types] = re.findall(r"var TYPES = '([^']*)'", tracker)
    assert tuple(types.split(" ")) == EVENT_TYPES
    doc = contract_copies.EVENT_CONTRACT_DOC.read_text(encoding="utf-8")
    fields = contract_copies.COPIES[0].current(doc)
    assert set(re.findall(r"`([a-z_]+)`", "\n".join(line.split(" | ")[0] for line in fields.splitlines()))) == {
        f.name for f in FIELDS
    }
    assert "| `price` | number ≥ 0 |" in fields and "| `scroll_depth_pct` | number 0–100 |" in fields
    reasons = contract_copies.COPIES[1].current(doc)
    assert len(reasons.splitlines()) == 2 + len(REASONS)
