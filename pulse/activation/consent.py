"""How many profiled users publishing may export, and why the others are left out: the dbt model
``consent_coverage`` (dbt_project/models/activation/) read once here, for the published snapshot's manifest
(pulse/activation/publish.py), ``pulse summary`` and the closing lines of ``pulse materialize`` (from that manifest:
:func:`pulse.activation.publish.published_consent_lines`).

The rule itself (a user's own flag outranks a declared one, the latest holds, never sent = no consent) is in
dbt: dim_user_consent and consent_coverage. This module only reads the counts and words them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pulse.core.warehouse import Warehouse

COVERAGE_TABLE = "consent_coverage"
# What the user types to declare the basis of an imported history (docs/importers.md, "Consent").
FIX_COMMAND = (
    'pulse import --format <format> --consent personalization --consent-basis "<your lawful basis>" <file>'
    "   then   pulse materialize"
)


@dataclass(frozen=True)
class ConsentCounts:
    """The profiled users by personalization consent: granted (published) by basis, refused, no signal."""

    granted_own: int = 0  # the user's own flag
    granted_declared: dict[str, int] = field(default_factory=dict)  # declared basis -> users
    refused: int = 0
    no_signal: int = 0

    @property
    def published(self) -> int:
        return self.granted_own + sum(self.granted_declared.values())

    @property
    def left_out(self) -> int:
        return self.refused + self.no_signal

    @property
    def profiled(self) -> int:
        return self.published + self.left_out

    @classmethod
    def from_rows(cls, rows: list[tuple]) -> ConsentCounts:
        """From consent_coverage's rows (personalization_consent, consent_basis, user_count)."""
        own = refused = no_signal = 0
        declared: dict[str, int] = {}
        for status, basis, users in rows:
            users = int(users)
            if status == "granted" and basis is None:
                own += users
            elif status == "granted":
                declared[str(basis)] = declared.get(str(basis), 0) + users
            elif status == "refused":
                refused += users
            elif status == "no_signal":
                no_signal += users
            else:
                raise ValueError(f"{COVERAGE_TABLE}: unknown personalization_consent {status!r}")
        return cls(
            granted_own=own,
            granted_declared=dict(sorted(declared.items(), key=lambda kv: (-kv[1], kv[0]))),
            refused=refused,
            no_signal=no_signal,
        )

    def as_manifest(self) -> dict:
        return {
            "profiled_users": self.profiled,
            "published": self.published,
            "published_by_basis": {"own_flag": self.granted_own, "declared": dict(self.granted_declared)},
            "left_out": {"no_signal": self.no_signal, "refused": self.refused},
            "rule": "a user's own consent_personalization outranks one an import declared; the latest holds; "
            "never sent and never declared = no consent (no_signal)",
        }

    @classmethod
    def from_manifest(cls, doc: dict) -> ConsentCounts:
        by_basis = doc.get("published_by_basis") or {}
        left_out = doc.get("left_out") or {}
        return cls(
            granted_own=int(by_basis.get("own_flag", 0)),
            granted_declared={str(k): int(v) for k, v in (by_basis.get("declared") or {}).items()},
            refused=int(left_out.get("refused", 0)),
            no_signal=int(left_out.get("no_signal", 0)),
        )

    def lines(self) -> list[str]:
        """The consent lines of the summary and of `pulse materialize`'s end: who is published, who is left out
        and why, on what basis; when nobody is published, plainly so, with the command that fixes it."""
        if self.profiled == 0:
            return []
        bases = [f"their own flag {self.granted_own:,}"] if self.granted_own else []
        bases += [f"declared {basis!r} {n:,}" for basis, n in self.granted_declared.items()]
        published = f"consent                  {self.published:>12,} of {self.profiled:,} profiled users published"
        lines = [published + (f" ({', '.join(bases)})" if bases else "")]
        if self.left_out:
            lines.append(
                f"  left out (consent)     {self.left_out:>12,}   {self.no_signal:,} never sent a personalization "
                f"flag (no signal), {self.refused:,} refused"
            )
        if self.published == 0:
            lines.append(
                "  NOBODY IS PUBLISHED: every audience and the profiles export are empty: no profiled user has "
                "consent_personalization = true."
            )
        if self.no_signal and (self.published == 0 or self.no_signal >= self.published):
            lines.append(
                "  imported history carries no consent unless you declare it; if you hold a lawful basis for "
                f"these users: {FIX_COMMAND} (docs/importers.md, Consent)"
            )
        return lines


def read_consent_counts(warehouse: Warehouse) -> ConsentCounts | None:
    """The counts from ``consent_coverage``; None when the model has not been built yet."""
    if not warehouse.table_exists(COVERAGE_TABLE):
        return None
    return ConsentCounts.from_rows(
        warehouse.rows(f"select personalization_consent, consent_basis, user_count from {COVERAGE_TABLE}")
    )
