"""What a model step decided, kept in the warehouse: one row per model step run in `model_decisions`.

A model step (the assets ``segment_model`` and ``purchase_intent_model``) ends in one of three ways:

``trained``    it fitted and registered a new version (for purchase intent, promoted to champion or not);
``unchanged``  its inputs (a digest of the input table computed by the engine, plus the training parameters
               and library versions: :func:`input_fingerprint`) equal those recorded on the latest registered
               version (MLflow version tag :data:`FINGERPRINT_TAG`): nothing is fitted or registered, the
               registry stays as it is ("inputs unchanged since version N: kept");
``refused``    the data cannot support the model (too few users, too few labelled snapshots ...): nothing is
               fitted or registered, and the reason is recorded. The existing champion, if any, stays in use.

Only Python knows these facts, so Python writes them, narrowly: one row each, appended (the history says when a
model last trained, and why it did not since). What the published fields make of them (current, carried from
an earlier champion, empty and why) is the dbt model ``model_status`` (models/profiles).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

import duckdb

from pulse.core.warehouse import Warehouse, as_warehouse, literal

MODEL_DECISIONS_TABLE = "model_decisions"
TRAINED, UNCHANGED, REFUSED = "trained", "unchanged", "refused"
STATUSES = (TRAINED, UNCHANGED, REFUSED)
FINGERPRINT_TAG = "input_fingerprint"  # MLflow model version tag: the inputs the version was fitted on

DECISION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("model", "string"),  # the asset: segment_model, purchase_intent_model
    ("status", "string"),  # trained, unchanged, refused
    ("reason", "string"),
    ("model_version", "string"),  # trained: the new version; unchanged: the version kept; refused: null
    ("champion_version", "string"),  # the champion after the decision; null: none
    ("input_fingerprint", "string"),
    ("run_id", "string"),  # the Dagster run, when there is one
    ("decided_at", "timestamp"),  # UTC
)


@dataclass(frozen=True)
class ModelDecision:
    model: str
    status: str
    reason: str
    model_version: str | None = None
    champion_version: str | None = None
    input_fingerprint: str | None = None
    decided_at: datetime | None = None  # None: now, when recorded

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"decision status {self.status!r} is not one of {STATUSES}")

    @property
    def refused(self) -> bool:
        return self.status == REFUSED

    def message(self) -> str:
        champion = f" (champion: version {self.champion_version})" if self.champion_version else " (no champion)"
        return f"{self.model} {self.status}: {self.reason}" + (champion if self.status != TRAINED else "")


def input_fingerprint(table_digest: str, params: Mapping[str, object], packages: tuple[str, ...] = ()) -> str:
    """One string for what a fit depends on: the input table's digest (Warehouse.table_digest), the training
    parameters and the versions of the fitting libraries (an upgrade may fit differently)."""
    doc = {
        "table": table_digest,
        "params": {str(k): str(v) for k, v in params.items()},
        "packages": {name: _package_version(name) for name in packages},
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


def ensure_decisions_table(warehouse: Warehouse | duckdb.DuckDBPyConnection) -> None:
    """`model_decisions`, empty, when it does not exist yet (readers need the table, decisions or not)."""
    warehouse = as_warehouse(warehouse)
    if not warehouse.table_exists(MODEL_DECISIONS_TABLE):
        warehouse.create_empty_table(MODEL_DECISIONS_TABLE, DECISION_COLUMNS)


def record_decision(
    warehouse: Warehouse | duckdb.DuckDBPyConnection, decision: ModelDecision, run_id: str | None = None
) -> None:
    """Append ``decision`` to `model_decisions` (created when missing)."""
    warehouse = as_warehouse(warehouse)
    ensure_decisions_table(warehouse)
    decided_at = (decision.decided_at or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    values = (
        decision.model,
        decision.status,
        decision.reason,
        decision.model_version,
        decision.champion_version,
        decision.input_fingerprint,
        run_id,
        decided_at,
    )
    columns = ", ".join(
        f"cast({literal(value)} as {kind}) as {name}"
        for value, (name, kind) in zip(values, DECISION_COLUMNS, strict=True)
    )
    warehouse.execute(f"insert into {MODEL_DECISIONS_TABLE} select {columns}")
