"""The consent an import declares for its events (``pulse import --consent ... --consent-basis TEXT``).

Imported history rarely carries consent flags, and activation publishes only users whose latest
``consent_personalization`` is true: without a declaration an imported history is never exported. A team
that holds a lawful basis for the people in its history (consent collected at sign-up, a contract, ...)
declares it per import:

- ``none`` (the default): nothing is added; the events keep whatever flags the source had.
- ``analytics`` / ``personalization`` / ``all``: ``consent_analytics`` / ``consent_personalization`` / both
  are set to true on every event that does not carry that flag itself, and such an event gets
  ``consent_basis`` = the declared basis (contract v1.3), so the warehouse can tell a declared flag from one
  the user sent. A flag the event carries (true or false: a Snowplow consent event, a mapped column) is never
  overwritten, nor is an event's own ``consent_basis``.

The warehouse's rule (dbt_project/models/marts/dim_user_consent.sql): a flag a user sent outranks a declared
one, whatever their times; among the same kind the latest holds. So an explicit refusal in the source stays a
refusal after a declaration. docs/importers.md ("Consent") is the user's description.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

CONSENT_CHOICES: tuple[str, ...] = ("none", "analytics", "personalization", "all")
FLAGS_OF: dict[str, tuple[str, ...]] = {
    "none": (),
    "analytics": ("consent_analytics",),
    "personalization": ("consent_personalization",),
    "all": ("consent_analytics", "consent_personalization"),
}
CONSENT_FLAGS: tuple[str, ...] = ("consent_analytics", "consent_personalization")
BASIS_FIELD = "consent_basis"
MAX_BASIS_CHARS = 200


# Consent scopes / categories of consent tools (Snowplow's enhanced consent plugin, Segment's consent
# categories, Cookiebot-style banners), matched word by word in lower case: a scope with one of these words
# stands for the contract's flag. "preferences" / "functional" (remembering settings) are neither.
ANALYTICS_SCOPE_WORDS = frozenset({"analytics", "statistics", "performance", "measurement"})
PERSONALIZATION_SCOPE_WORDS = frozenset({"personalization", "personalisation", "marketing", "advertising", "targeting"})


def _scope_words(scope: object) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", str(scope).lower()))


def flags_from_scopes(granted: Iterable[object]) -> dict[str, bool]:
    """The contract's flags from the complete list of scopes a user granted: a flag is true when a granted
    scope names it (see the word lists above), false otherwise (the user chose, and did not choose it)."""
    words: set[str] = set()
    for scope in granted:
        words |= _scope_words(scope)
    return {
        "consent_analytics": bool(words & ANALYTICS_SCOPE_WORDS),
        "consent_personalization": bool(words & PERSONALIZATION_SCOPE_WORDS),
    }


def flags_from_categories(categories: dict[str, object]) -> dict[str, bool]:
    """The contract's flags from per-category choices (``{"Advertising": false, "Analytics": true}``): a flag
    is true when a category that names it is true, false when such categories are all false, and absent when
    no category names it."""
    flags: dict[str, bool] = {}
    for flag, words in (
        ("consent_analytics", ANALYTICS_SCOPE_WORDS),
        ("consent_personalization", PERSONALIZATION_SCOPE_WORDS),
    ):
        values = [value for name, value in categories.items() if _scope_words(name) & words and isinstance(value, bool)]
        if values:
            flags[flag] = any(values)
    return flags


class ConsentError(ValueError):
    """An invalid consent declaration. The message names the option and the value."""


@dataclass(frozen=True)
class ConsentDeclaration:
    """What an import declares: which flags (``consent``) on which lawful basis (``basis``)."""

    consent: str = "none"
    basis: str | None = None

    @classmethod
    def parse(cls, consent: str | None, basis: str | None) -> ConsentDeclaration:
        """Validate ``--consent`` and ``--consent-basis``: a known choice; a basis (one line, at most
        :data:`MAX_BASIS_CHARS` characters) whenever consent is declared, and none without a declaration."""
        consent = "none" if consent is None else consent.strip().lower()
        if consent not in CONSENT_CHOICES:
            raise ConsentError(f"--consent {consent!r} is not one of {', '.join(CONSENT_CHOICES)}")
        text = None if basis is None else " ".join(basis.split())
        if consent == "none":
            if basis is not None:
                raise ConsentError(
                    f"--consent-basis {basis!r} without --consent: say which consent the basis covers "
                    "(--consent analytics|personalization|all)"
                )
            return cls()
        if not text:
            raise ConsentError(
                f'--consent {consent} needs --consent-basis "<the lawful basis>" (e.g. "consent collected at '
                'sign-up (form v3)", "contract"): it is recorded with every event the declaration covers'
            )
        if len(text) > MAX_BASIS_CHARS:
            raise ConsentError(f"--consent-basis is {len(text)} characters long; at most {MAX_BASIS_CHARS}")
        return cls(consent=consent, basis=text)

    @property
    def flags(self) -> tuple[str, ...]:
        return FLAGS_OF[self.consent]

    @property
    def declared(self) -> bool:
        return bool(self.flags)

    def describe(self) -> str:
        if not self.declared:
            return "none declared (the default): imported events carry only the consent flags the source has"
        names = " and ".join(self.flags)
        return (
            f"{self.consent} declared ({names} = true where the event has no value of its own), basis: {self.basis!r}"
        )

    def as_record(self) -> dict[str, Any]:
        return {"consent": self.consent, "basis": self.basis, "flags": list(self.flags)}


@dataclass
class ConsentTally:
    """Per import: events given declared flags, events that carried consent flags of their own, and among
    those the ones whose own consent_personalization is false (refusals, kept)."""

    declared: int = 0
    own: int = 0
    own_refusals: int = 0

    def add(self, other: ConsentTally) -> None:
        self.declared += other.declared
        self.own += other.own
        self.own_refusals += other.own_refusals

    def as_record(self) -> dict[str, int]:
        return {"events_declared": self.declared, "events_with_own_flags": self.own, "own_refusals": self.own_refusals}


def _has_key(line: str, name: str) -> bool:
    return f'"{name}"' in line


def apply_declaration(line: str, declaration: ConsentDeclaration, tally: ConsentTally) -> str:
    """The event line (a contract JSON object) with the declaration applied, counting into ``tally``.

    Fast path: a line that does not mention a consent field at all (the usual imported event) gets the declared
    flags and basis appended as text; a line that mentions one is parsed, so a flag the event carries (or a key
    of that name nested in ``properties``) is told apart exactly."""
    mentions = any(_has_key(line, name) for name in (*CONSENT_FLAGS, BASIS_FIELD))
    if not mentions:
        if not declaration.declared:
            return line
        stripped = line.rstrip()
        if stripped.endswith("}") and stripped != "{}":
            tally.declared += 1
            extra = "".join(f',"{flag}":true' for flag in declaration.flags)
            return (
                stripped[:-1] + extra + f',"{BASIS_FIELD}":' + json.dumps(declaration.basis, ensure_ascii=False) + "}"
            )
    try:
        event = json.loads(line)
    except ValueError:
        return line  # not ours to judge: ingestion quarantines it with the reason
    if not isinstance(event, dict):
        return line
    own = [flag for flag in CONSENT_FLAGS if event.get(flag) not in (None, "")]
    if own:
        tally.own += 1
    if event.get("consent_personalization") in (False, "false", "False", "FALSE"):
        tally.own_refusals += 1
    missing = [flag for flag in declaration.flags if event.get(flag) in (None, "")]
    if not missing:
        return line
    for flag in missing:
        event[flag] = True
    if event.get(BASIS_FIELD) in (None, ""):
        event[BASIS_FIELD] = declaration.basis
    tally.declared += 1
    text = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a "\ud800" escape in the line parsed into a lone surrogate: kept escaped
            text = json.dumps(event, separators=(",", ":"))
    return text


def consent_lines(declaration: ConsentDeclaration, tally: ConsentTally, events_written: int) -> list[str]:
    """What `pulse import` prints about consent: the declaration (or that there is none, the default), what it
    covered, and what that means for the exports."""
    own = f"{tally.own:,} carried consent flags of their own, kept as they are"
    if tally.own_refusals:
        own += f" ({tally.own_refusals:,} refusing personalization)"
    lines = [f"consent: {declaration.describe()}"]
    if declaration.declared:
        lines.append(
            f"        {tally.declared:,} of {events_written:,} events got the declared flags and consent_basis; {own}"
        )
    else:
        lines.append(
            f"        of {events_written:,} events {own}; users without a consent_personalization flag are never "
            "exported (profiles, audiences)"
        )
        lines.append(
            "        if you hold a lawful basis for them, import again with --consent personalization --consent-basis "
            '"<the basis>" (docs/importers.md, Consent)'
        )
    return lines
