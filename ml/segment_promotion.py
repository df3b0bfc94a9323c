"""When a segment refit replaces the champion: the promotion rule, on the same users and the same sample.

A refit (:func:`ml.segmentation.fit_segments` with the champion as ``previous``, so its segment ids are already
matched to the champion's by :mod:`ml.matching`) is compared with the champion on the users it was fitted on:

* **silhouette**: the champion's segments and the refit's, each as a labelling of the *same* silhouette sample of
  users in the *same* space (the refit's scaled features: the points and distances the refit's own silhouette was
  computed on), so the two numbers differ only by the partition. The refit must not be worse than the champion
  by more than ``tolerance`` (the setting ``segment_promotion_tolerance``);
* **id agreement**: the share of those users whose segment id is the same under both (ids matched first), at
  least :data:`MIN_ID_AGREEMENT` (90 %): a refit that moves more users than that is a different segmentation,
  which audiences and triggers built on segment ids would silently follow.

Both must hold. With no champion the first fit becomes champion; with a champion that cannot assign the
current ``user_features`` (a column it reads is gone) the refit is promoted, since nothing else can assign.
The decision and its reason are MLflow tags on the version (ml.tracking.register_version) and Dagster metadata
on ``segment_model``. A refused refit stays registered (alias ``challenger``) and can be promoted by hand by
moving ``champion`` to it in the MLflow UI.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import silhouette_score

from ml.segmentation import SegmentationResult, SegmentModel, sample_indices

__all__ = [
    "MIN_ID_AGREEMENT",
    "ChampionComparison",
    "SegmentPromotion",
    "compare_with_champion",
    "decide_segment_promotion",
    "missing_features",
]

MIN_ID_AGREEMENT = 0.9  # the rule: at least 90 % of the users keep their segment id


@dataclass(frozen=True)
class ChampionComparison:
    """The refit and the champion on the same users: silhouettes on the same sample, and the id agreement."""

    challenger_silhouette: float
    champion_silhouette: float | None  # None: the champion cannot assign these users, or has a single segment
    id_agreement: float | None  # share of users with the same segment id under both; None as above
    users: int  # users compared (every user the refit was fitted on)
    sample_size: int  # users in the silhouette sample
    champion_cannot_assign: str | None = None  # why the champion cannot assign these users


@dataclass(frozen=True)
class SegmentPromotion:
    promote: bool
    reason: str
    champion_version: str | None  # the champion the refit was compared with; None: there was none
    comparison: ChampionComparison | None
    tolerance: float
    min_id_agreement: float = MIN_ID_AGREEMENT


def missing_features(model: SegmentModel, columns: object) -> list[str]:
    """The ``user_features`` columns ``model`` reads that ``columns`` lacks (empty: it can assign them)."""
    present = set(columns)  # type: ignore[call-overload]
    return [c for c in model.features if c not in present]


def _silhouette(x: np.ndarray, labels: np.ndarray) -> float | None:
    if len(np.unique(labels)) < 2:
        return None
    return float(silhouette_score(x, labels))


def compare_with_champion(result: SegmentationResult, df: pd.DataFrame, champion: SegmentModel) -> ChampionComparison:
    """Compare the refit ``result`` (fitted on ``df``) with ``champion`` on the same users: both labellings of the
    refit's silhouette sample (same positions, same seed as the fit) in the refit's scaled space, and the share
    of users whose segment id is the same under both."""
    n = len(df)
    sample = sample_indices(n, result.config.silhouette_sample, result.config.seed)
    missing = missing_features(champion, df.columns)
    if missing:
        why = f"it reads {', '.join(missing)}, which user_features no longer has"
        return ChampionComparison(result.silhouette, None, None, n, len(sample), champion_cannot_assign=why)
    x = result.model.scaled(df.iloc[sample])
    challenger_ids = result.assignments["segment_id"].to_numpy()
    champion_ids, _ = champion.assign(df)
    return ChampionComparison(
        challenger_silhouette=result.silhouette,
        champion_silhouette=_silhouette(x, champion_ids[sample]),
        id_agreement=float(np.mean(champion_ids == challenger_ids)),
        users=n,
        sample_size=len(sample),
    )


def decide_segment_promotion(
    comparison: ChampionComparison | None,
    champion_version: str | None,
    tolerance: float,
    min_id_agreement: float = MIN_ID_AGREEMENT,
) -> SegmentPromotion:
    """Promote the refit when there is no champion (``comparison`` None), when the champion cannot assign the
    users, or when its silhouette is at least the champion's minus ``tolerance`` *and* at least
    ``min_id_agreement`` of the users keep their segment id. The reason says which numbers decided."""

    def decided(promote: bool, reason: str) -> SegmentPromotion:
        return SegmentPromotion(promote, reason, champion_version, comparison, tolerance, min_id_agreement)

    if champion_version is None or comparison is None:
        return decided(True, "promoted: the first fit, no champion yet: it becomes the champion")
    if comparison.champion_cannot_assign:
        return decided(
            True,
            f"promoted: champion v{champion_version} cannot assign the current users "
            f"({comparison.champion_cannot_assign}); the refit replaces it",
        )
    new, old = comparison.challenger_silhouette, comparison.champion_silhouette
    agreement = comparison.id_agreement
    users = f"on the same {comparison.users:,} users"
    failed = []
    if old is not None and not new >= old - tolerance:
        failed.append(f"silhouette {new:.4f} < champion v{champion_version}'s {old:.4f} - tolerance {tolerance:g}")
    if agreement is None or not agreement >= min_id_agreement:
        kept = "no user" if agreement is None else f"{agreement:.1%} of the users"
        failed.append(f"{kept} keep their segment id (at least {min_id_agreement:.0%} must)")
    if failed:
        return decided(False, f"not promoted: {' and '.join(failed)} {users}; champion v{champion_version} stays")
    versus = "a single segment" if old is None else f"{old:.4f}"
    return decided(
        True,
        f"promoted: silhouette {new:.4f} >= champion v{champion_version}'s {versus} - tolerance {tolerance:g}, "
        f"and {agreement:.1%} of the users keep their segment id (at least {min_id_agreement:.0%}) {users}",
    )
