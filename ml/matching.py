"""Keep segment ids (and names) stable across refits, and measure how much a refit moved users.

K-Means numbers its clusters arbitrarily; a refit on tomorrow's users must not turn yesterday's segment 3
into segment 1. :func:`match_segments` pairs the new segments with the previous champion's by the Hungarian
algorithm (``scipy.optimize.linear_sum_assignment``) on centroid distance.

Which space the centroids are compared in: the *new* fit's scaled space. The previous centroids are taken
back to the transformed space (log1p etc.) with the previous scaler (``c * scale_prev + mean_prev``) and
scaled with the new scaler. Why not the original units: there revenue (hundreds) would swamp rates (0-1)
and the distance would mean nothing. Why not the previous scaled space: the new segments were found in the
new space, and the new population's spread is the yardstick the new ids will be used with. Centroids are
means of transformed values in both fits, so they are comparable as long as a column's transform is the
same; only such columns are compared (same log1p flag and, for days_since_last_purchase, the same fill).
Distances are RMS per compared column, in new-population standard deviations, so thresholds do not depend
on how many features there are.

Policy for each new segment (in the new fit's order: largest first):
  * paired by the assignment with distance <= ``keep_id_within`` (default 0.5): it keeps the previous id;
    it also keeps the previous *name* if the distance <= ``keep_name_within`` (default 0.25), otherwise it
    is renamed from its new profile (ml.naming) - the profile changed meaningfully;
  * unpaired (more segments than before) or paired but further than ``keep_id_within``: a new id,
    ``next_id`` onwards. Ids are never reused: the model carries ``next_id`` from fit to fit;
  * previous ids left without a partner are retired.
Names are then made unique (ml.naming.unique_names): newcomers that share a base name with a kept one get
comparative qualifiers relative to it. A kept name is only kept while it still says what the new numbers
say (ml.naming.contradictions on the new segments' means); otherwise, or when it is not a name the current
naming derives (an older naming's "Buyers 2", a qualifier on a column the model no longer has), the segment
keeps its id and gets its fresh name.

Why those thresholds (measured on the demo's user_features and on the synthetic personas, refitting on a
bootstrap resample): a stable segment's centroid moves 0.004-0.06 between refits; segments that only exist
because k exceeds the data's structure move 0.15-0.8; two *different* segments at a sensible k are 0.6-1.5
apart (median ~1.3). 0.5 keeps every stable segment's id and refuses to hand an id to something as far from
it as a different segment typically is; 0.25 renames only a segment whose profile clearly moved.

Stability between two runs is measured on users present in both: :func:`adjusted_rand_on_common` (adjusted
Rand index of the two partitions: 1 identical, ~0 unrelated; it ignores ids, so it judges the partition,
not the matching) and :func:`id_agreement_on_common` (share of users whose segment id did not change: it
judges partition *and* matching).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score

from ml import naming

__all__ = ["MatchReport", "adjusted_rand_on_common", "id_agreement_on_common", "match_segments"]

LAST_PURCHASE = "days_since_last_purchase"


# What matching reads of a transform and of the previous model (ml.segmentation.FeatureTransform and
# SegmentModel have these attributes), declared here: ml.segmentation calls the matching, so it imports
# ml.matching and not the other way round (no import cycle).
class ComparedTransform(Protocol):
    @property
    def columns(self) -> tuple[str, ...]: ...

    @property
    def log1p(self) -> tuple[str, ...]: ...

    @property
    def never_purchased_days(self) -> float: ...


class PreviousModel(Protocol):
    @property
    def transform(self) -> ComparedTransform: ...

    @property
    def columns(self) -> tuple[str, ...]: ...

    @property
    def k(self) -> int: ...

    @property
    def mean(self) -> np.ndarray: ...

    @property
    def scale(self) -> np.ndarray: ...

    @property
    def centroids(self) -> np.ndarray: ...

    @property
    def segment_ids(self) -> tuple[int, ...]: ...

    @property
    def names(self) -> tuple[str, ...]: ...

    @property
    def next_id(self) -> int: ...


@dataclass(frozen=True)
class MatchReport:
    segment_ids: tuple[int, ...]  # per new segment, in the new fit's order
    names: tuple[str, ...]
    previous_ids: tuple[int | None, ...]  # the paired previous segment (None: no partner)
    distances: tuple[float, ...]  # RMS distance to that partner (NaN: none)
    name_kept: tuple[bool, ...]
    next_id: int
    kept_ids: tuple[int, ...]
    new_ids: tuple[int, ...]
    retired_ids: tuple[int, ...]
    columns_compared: tuple[str, ...]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "segment_id": self.segment_ids,
                "segment_name": self.names,
                "previous_id": pd.array(self.previous_ids, dtype="Int64"),
                "distance": self.distances,
                "kept_id": [sid in self.kept_ids for sid in self.segment_ids],
                "name_kept": self.name_kept,
            }
        )


def comparable_columns(previous: PreviousModel, transform: ComparedTransform) -> list[str]:
    """New-model columns whose values mean the same in the previous model (same transform)."""
    prev_cols = set(previous.columns)
    out = []
    for c in transform.columns:
        if c not in prev_cols:
            continue
        if (c in previous.transform.log1p) != (c in transform.log1p):
            continue
        if c == LAST_PURCHASE and previous.transform.never_purchased_days != transform.never_purchased_days:
            continue
        out.append(c)
    return out


def centroid_distances(
    previous: PreviousModel,
    centroids: np.ndarray,
    transform: ComparedTransform,
    mean: np.ndarray,
    scale: np.ndarray,
) -> tuple[np.ndarray, list[str]]:
    """RMS distances (new segments x previous segments) in the new scaled space, and the columns used."""
    cols = comparable_columns(previous, transform)
    if not cols:
        return np.full((centroids.shape[0], previous.k), np.inf), cols
    new_pos = [transform.columns.index(c) for c in cols]
    prev_pos = [previous.columns.index(c) for c in cols]
    prev_t = previous.centroids[:, prev_pos] * previous.scale[prev_pos] + previous.mean[prev_pos]
    prev_in_new = (prev_t - mean[new_pos]) / scale[new_pos]
    diff = centroids[:, None, new_pos] - prev_in_new[None, :, :]
    return np.sqrt((diff**2).mean(axis=2)), cols


def match_segments(
    previous: PreviousModel,
    centroids: np.ndarray,
    transform: ComparedTransform,
    mean: np.ndarray,
    scale: np.ndarray,
    *,
    keep_id_within: float = 0.5,
    keep_name_within: float = 0.25,
    stats: naming.SegmentStats | None = None,
) -> MatchReport:
    """Ids and names for the new segments (rows of ``centroids``, scaled space; ``stats`` their means, what
    the names are checked against) given the previous model."""
    k = centroids.shape[0]
    dist, cols = centroid_distances(previous, centroids, transform, mean, scale)
    partner: dict[int, int] = {}
    if cols:
        rows, pcols = linear_sum_assignment(dist)
        partner = {int(r): int(c) for r, c in zip(rows, pcols, strict=True)}

    columns = transform.columns
    fresh = naming.base_names(centroids, columns, stats)
    next_id = previous.next_id
    ids: list[int] = []
    names: list[str] = []
    locked: list[bool] = []
    prev_ids: list[int | None] = []
    distances: list[float] = []
    for i in range(k):
        j = partner.get(i)
        d = float(dist[i, j]) if j is not None else float("nan")
        prev_ids.append(previous.segment_ids[j] if j is not None else None)
        distances.append(d)
        if j is not None and d <= keep_id_within:
            ids.append(previous.segment_ids[j])
            keep_name = d <= keep_name_within
            names.append(previous.names[j] if keep_name else fresh[i])
            locked.append(keep_name)
        else:
            ids.append(next_id)
            next_id += 1
            names.append(fresh[i])
            locked.append(False)
    names, locked = truthful_names(names, fresh, locked, centroids, columns, stats)
    kept = tuple(sid for sid in ids if sid in previous.segment_ids)
    return MatchReport(
        segment_ids=tuple(ids),
        names=tuple(names),
        previous_ids=tuple(prev_ids),
        distances=tuple(distances),
        name_kept=tuple(locked),
        next_id=next_id,
        kept_ids=kept,
        new_ids=tuple(sid for sid in ids if sid not in previous.segment_ids),
        retired_ids=tuple(sid for sid in previous.segment_ids if sid not in kept),
        columns_compared=tuple(cols),
    )


def truthful_names(
    candidates: list[str],
    fresh: list[str],
    locked: list[bool],
    centroids: np.ndarray,
    columns: tuple[str, ...],
    stats: naming.SegmentStats | None,
) -> tuple[list[str], list[bool]]:
    """Unique names for the new segments, keeping the ``locked`` (previous) names only while the new numbers
    agree with them: a kept name that is not one naming derives for these columns (an older naming's, or a
    qualifier on a column the model no longer has) or that the numbers now contradict is replaced by the
    segment's fresh name, and the names are derived again. Returns (names, which were kept)."""
    candidates, locked = list(candidates), list(locked)
    for i, name in enumerate(candidates):
        if locked[i] and not naming.is_derived_name(name, columns):
            candidates[i], locked[i] = fresh[i], False
    z = stats.z() if stats is not None else np.asarray(centroids, dtype=np.float64)
    shares = stats.bought_share() if stats is not None else None
    while True:
        names = naming.unique_names(candidates, centroids, columns, locked, stats)
        problems = naming.contradictions(names, columns, z, shares)
        wrong = {i for segments, _ in problems for i in segments if locked[i]}
        if not wrong:
            return names, locked
        for i in wrong:
            candidates[i], locked[i] = fresh[i], False


def _as_series(assignment: pd.Series | pd.DataFrame) -> pd.Series:
    if isinstance(assignment, pd.DataFrame):
        return assignment.set_index("user_key")["segment_id"]
    return assignment


def _common(previous: pd.Series | pd.DataFrame, current: pd.Series | pd.DataFrame) -> pd.DataFrame:
    prev, cur = _as_series(previous), _as_series(current)
    for s, label in ((prev, "previous"), (cur, "current")):
        if not s.index.is_unique:
            raise ValueError(f"{label} assignment has repeated user keys")
    return pd.concat({"previous": prev, "current": cur}, axis=1, join="inner").dropna()


def adjusted_rand_on_common(previous: pd.Series | pd.DataFrame, current: pd.Series | pd.DataFrame) -> tuple[float, int]:
    """(ARI, users compared) over the users present in both assignments.

    Each assignment is a Series of segment ids indexed by user_key, or a frame with ``user_key`` and
    ``segment_id`` columns (e.g. ``SegmentationResult.assignments``). NaN when fewer than 2 users are shared.
    """
    both = _common(previous, current)
    if len(both) < 2:
        return float("nan"), len(both)
    return float(adjusted_rand_score(both["previous"], both["current"])), len(both)


def id_agreement_on_common(previous: pd.Series | pd.DataFrame, current: pd.Series | pd.DataFrame) -> tuple[float, int]:
    """(share of shared users whose segment id is unchanged, users compared); NaN when none are shared."""
    both = _common(previous, current)
    if both.empty:
        return float("nan"), 0
    return float((both["previous"] == both["current"]).mean()), len(both)
