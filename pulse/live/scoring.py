"""The live intent score: the purchase intent champion scoring a user's live feature vector
(pulse/live/features.py) whenever it changes, into rows of the live state's ``live_scores`` table.

:meth:`LiveIntentScorer.from_tracking` loads ``purchase_intent_model@champion`` once (the booster, its version
and the feature list it was trained on: ml/intent_tracking.py ``load_intent_champion``); :meth:`score` runs
the batch's own ``predict_proba`` (ml/purchase_intent.py) on the vectors, so a live score equals the batch
score (``purchase_intent_scores``) of the same vector with the same model (the parity test proves it). A
champion promoted later is picked up by building a new scorer (:meth:`reload_if_promoted`).

Who is scored is the rule of the dbt model ``intent_scoring_population``: at least
``intent_scoring_min_sessions_30d`` sessions in the 30 days before the as-of date (the dbt var, read through
the settings door); :func:`in_scoring_population` is that rule for one live vector, and the parity test
checks it selects the same users as the dbt model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

from ml.intent_tracking import REGISTERED_MODEL, IntentChampion, load_intent_champion
from ml.purchase_intent import predict_proba
from pulse.live.features import iso

# live_scores (the live state store; docs/realtime.md), in column order
LIVE_SCORES_COLUMNS = ("user_key", "probability", "model_version", "features", "features_as_of", "scored_at")


def in_scoring_population(features: Mapping[str, Any] | None, min_sessions_30d: int) -> bool:
    """intent_scoring_population's rule for one vector: ``sessions_30d >= intent_scoring_min_sessions_30d``
    (None: no session over yet, no row, not scored)."""
    return features is not None and features["sessions_30d"] >= min_sessions_30d


@dataclass(frozen=True)
class LiveScore:
    user_key: str
    probability: float
    model_version: str
    features: dict[str, Any]  # the champion's inputs, as scored
    features_as_of: datetime  # the instant the vector describes
    scored_at: datetime

    def row(self) -> dict[str, Any]:
        """The ``live_scores`` row: features as JSON (null for a missing value), times as ISO-8601 UTC."""
        return {
            "user_key": self.user_key,
            "probability": self.probability,
            "model_version": self.model_version,
            "features": json.dumps(self.features, sort_keys=True, default=_json_value),
            "features_as_of": iso(self.features_as_of),
            "scored_at": iso(self.scored_at),
        }


def _json_value(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"not JSON-serializable: {value!r}")


class LiveIntentScorer:
    """Scores live feature vectors with one champion, loaded once."""

    def __init__(self, champion: IntentChampion) -> None:
        self.champion = champion

    @classmethod
    def from_tracking(cls, tracking_uri: str, registered_model: str = REGISTERED_MODEL) -> LiveIntentScorer | None:
        """The scorer of the registry's champion; None when there is none yet (nobody is scored, as in batch)."""
        champion = load_intent_champion(tracking_uri, registered_model)
        return None if champion is None else cls(champion)

    @property
    def model_version(self) -> str:
        return str(self.champion.version)

    def reload_if_promoted(self, tracking_uri: str, registered_model: str = REGISTERED_MODEL) -> LiveIntentScorer:
        """This scorer, or one of the champion promoted since it was loaded."""
        champion = load_intent_champion(tracking_uri, registered_model)
        if champion is None or str(champion.version) == self.model_version:
            return self
        return LiveIntentScorer(champion)

    def score(
        self,
        vectors: Sequence[tuple[str, Mapping[str, Any], datetime]],
        scored_at: datetime | None = None,
    ) -> list[LiveScore]:
        """One :class:`LiveScore` per ``(user_key, features, features_as_of)``, in one call of the model.
        ``features`` are :func:`pulse.live.features.features_as_of`'s columns; each must hold every feature
        the champion was trained on (a missing one is an error naming it and the user)."""
        if not vectors:
            return []
        scored_at = scored_at or datetime.now(UTC)
        names = list(self.champion.features)
        rows = []
        for user_key, features, _ in vectors:
            missing = [name for name in names if name not in features]
            if missing:
                raise KeyError(f"live features of user {user_key!r} lack {missing} (model v{self.model_version})")
            rows.append({name: _number(features[name], name, user_key) for name in names})
        probabilities = predict_proba(self.champion.model, pd.DataFrame(rows, columns=names), names)
        return [
            LiveScore(
                user_key=user_key,
                probability=float(p),
                model_version=self.model_version,
                features={name: row[name] for name in names},
                features_as_of=as_of,
                scored_at=scored_at,
            )
            for (user_key, _, as_of), row, p in zip(vectors, rows, probabilities, strict=True)
        ]


def _number(value: Any, name: str, user_key: str) -> float | None:
    if value is None:
        return None  # XGBoost's missing value (days_since_last_purchase of a user who never bought)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"live feature {name} of user {user_key!r} is not a number: {value!r}")
    return None if math.isnan(value) else float(value)
