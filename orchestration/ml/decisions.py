"""A model step's decision (ml.decisions: trained / unchanged / refused) as the model assets report it: the same
metadata keys on `segment_model` and `purchase_intent_model`, a warning in the run log for a refusal, and the
reader `pulse materialize` uses to end with "done with warnings" (orchestration/materialize.py)."""

from __future__ import annotations

import dagster as dg

from ml.decisions import REFUSED, ModelDecision

STATUS_KEY = "model_status"  # trained, unchanged, refused
REASON_KEY = "model_status_reason"
CHAMPION_KEY = "champion_version"  # after the decision; "" without a champion


def decision_metadata(decision: ModelDecision) -> dict[str, dg.RawMetadataValue]:
    return {
        STATUS_KEY: decision.status,
        REASON_KEY: decision.reason,
        "model_version": decision.model_version or "",
        CHAMPION_KEY: decision.champion_version or "",
        "input_fingerprint": decision.input_fingerprint or "",
    }


def log_decision(context: dg.AssetExecutionContext, decision: ModelDecision) -> None:
    """A refusal is a warning (the run goes on; the champion, if any, stays in use); the rest is information."""
    if decision.status == REFUSED:
        context.log.warning(decision.message())
    else:
        context.log.info(decision.message())
