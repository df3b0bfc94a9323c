"""The copies of the event contract outside Python, written from :mod:`pulse.core.contract` (``make contract-copies``):
the field table and the reason table of docs/event-contract.md, and the tracker's list of event types
(pulse/collector/static/pulse.js). Each copy sits between two markers; :func:`stale_copies` names the ones that
no longer match the declaration (tests/unit/test_contract_copies.py fails on them).

    python -m pulse.cli.contract_copies          # rewrite the copies
    python -m pulse.cli.contract_copies --check  # exit 1 naming the stale ones
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pulse.core.contract import EVENT_TYPES, FIELDS, IDENTITY_FIELDS, REASONS, Field

REPO = Path(__file__).resolve().parents[2]
EVENT_CONTRACT_DOC = REPO / "docs" / "event-contract.md"
TRACKER = REPO / "pulse" / "collector" / "static" / "pulse.js"
GENERATED = "generated from pulse/core/contract.py by `make contract-copies`: edit the declaration, not this copy"

_TYPE_TEXT = {
    "string": "string",
    "timestamp": "RFC 3339 timestamp",
    "double": "number",
    "bigint": "integer",
    "boolean": "boolean",
    "json": "JSON object",
}
_SET_BY_TEXT = {"sender": "", "collector": "the collector", "import": "`pulse import`"}


def type_text(f: Field) -> str:
    """``number ≥ 0``, ``number 0–100``, ``RFC 3339 timestamp``."""
    low, high = f.min_value, f.max_value
    bounds = f" {low:g}–{high:g}" if low is not None and high is not None else ""
    bounds = bounds or (f" ≥ {low:g}" if low is not None else f" ≤ {high:g}" if high is not None else "")
    return _TYPE_TEXT[f.type] + bounds


def required_text(f: Field) -> str:
    if f.required:
        return "yes"
    if f.name in IDENTITY_FIELDS:
        return "one of the two" if len(IDENTITY_FIELDS) == 2 else "one of " + ", ".join(IDENTITY_FIELDS)
    return ""


def _row(f: Field) -> tuple[str, ...]:
    note = f.doc + (f" (v{f.since})" if f.since != "1.0" else "")
    return type_text(f), required_text(f), _SET_BY_TEXT[f.set_by], note


def field_table() -> str:
    """docs/event-contract.md's field table: one row per field, consecutive fields alike in every column but
    the name sharing one."""
    groups: list[tuple[list[str], tuple[str, ...]]] = []
    for f in FIELDS:
        row = _row(f)
        if groups and groups[-1][1] == row and required_text(f) == "":
            groups[-1][0].append(f.name)
        else:
            groups.append(([f.name], row))
    lines = ["| field | type | required | set by | notes |", "|---|---|---|---|---|"]
    for names, (kind, required, set_by, note) in groups:
        lines.append(f"| {', '.join(f'`{n}`' for n in names)} | {kind} | {required} | {set_by} | {note} |")
    return "\n".join(lines)


def reason_table() -> str:
    """docs/event-contract.md's table of the reasons an event is refused for."""
    lines = ["| reason | when |", "|---|---|"]
    lines += [f"| `{reason.doc}` | {reason.when} |" for reason in REASONS]
    return "\n".join(lines)


def tracker_types() -> str:
    return f"  var TYPES = '{' '.join(EVENT_TYPES)}'.split(' ');"


@dataclass(frozen=True)
class Copy:
    """A block of a file between ``begin`` and ``end`` lines, whose content ``make`` writes."""

    path: Path
    name: str
    begin: str
    end: str
    make: Callable[[], str]

    def _pattern(self) -> re.Pattern[str]:
        return re.compile(f"(?s)({re.escape(self.begin)}\n)(.*?)(\n{re.escape(self.end)})")

    def current(self, text: str) -> str:
        found = self._pattern().search(text)
        if found is None:
            raise ValueError(f"{self.path}: the markers of the {self.name} copy are missing ({self.begin!r})")
        return found.group(2)

    def write(self, text: str) -> str:
        self.current(text)  # the markers are there
        return self._pattern().sub(lambda m: m.group(1) + self.make() + m.group(3), text, count=1)


def _md(name: str) -> tuple[str, str]:
    return f"<!-- {name}: {GENERATED} -->", f"<!-- end of {name} -->"


def _js(name: str) -> tuple[str, str]:
    return f"  // {name}: {GENERATED}", f"  // end of {name}"


COPIES = (
    Copy(EVENT_CONTRACT_DOC, "field table", *_md("field table"), field_table),
    Copy(EVENT_CONTRACT_DOC, "reason table", *_md("reason table"), reason_table),
    Copy(TRACKER, "event types", *_js("event types"), tracker_types),
)


def stale_copies() -> list[str]:
    """The copies that do not match the declaration, as ``<file>: <copy>``."""
    return [
        f"{c.path.relative_to(REPO)}: {c.name}"
        for c in COPIES
        if c.current(c.path.read_text(encoding="utf-8")) != c.make()
    ]


def write_copies() -> list[str]:
    """Rewrite every copy from the declaration; the ones that changed."""
    changed = stale_copies()
    for path in dict.fromkeys(c.path for c in COPIES):
        text = original = path.read_text(encoding="utf-8")
        for c in COPIES:
            if c.path == path:
                text = c.write(text)
        if text != original:
            path.write_text(text, encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the event contract's copies from pulse/core/contract.py.")
    parser.add_argument("--check", action="store_true", help="only name the stale copies (exit 1 if any)")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_copies()
        for name in stale:
            print(f"stale: {name} (run `make contract-copies`)", file=sys.stderr)
        return 1 if stale else 0
    for name in write_copies():
        print(f"rewrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
