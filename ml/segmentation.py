"""Behavioural segments of users: K-Means on the ``user_features`` table, k chosen by silhouette.

Input is a pandas frame with one row per user and the columns of the dbt ``user_features`` mart
(:data:`FEATURE_COLUMNS`, plus ``user_key``/``as_of_date`` which are carried along but never clustered on).
:func:`fit_segments` returns a :class:`SegmentationResult` holding a small, JSON-serializable
:class:`SegmentModel` that assigns any later frame to the fitted segments.

Transform (:class:`FeatureTransform`, stored in the model so assignment repeats it exactly)
  1. Derived columns (:data:`DERIVED_FEATURES`) are computed from ``user_features`` columns, so the mart
     stays as it is and a model still assigns a plain ``user_features`` frame: the per-session rates
     (:data:`PER_SESSION_FEATURES`, e.g. ``cart_adds_per_session = cart_adds / max(sessions_total, 1)``)
     and, on its own, ``has_purchased`` (``days_since_last_purchase`` is not null).
  2. ``days_since_last_purchase`` is null for users who never bought. It becomes two columns: a
     ``has_purchased`` 0/1 flag, and the days filled with ``never_purchased_days`` (default 365: "longer ago
     than any window we keep") and clipped to it, so a non-buyer sits just beyond the oldest buyer.
  3. Any other null is 0: in ``user_features`` nulls only come from empty denominators (no scroll recorded,
     no active day), where 0 is the neutral value. Negative values are clipped to 0.
  4. ``log1p`` on the heavy-tailed non-negative columns (:data:`LOG1P_FEATURES`: counts, seconds, money,
     days, per-session rates). Shares (scroll depth %, bounce / engaged / abandonment rates,
     ``has_purchased``) stay linear.
  5. Standardisation (mean 0, unit variance; a constant column keeps scale 1). After the log, a plain
     standard scaler is robust enough: the log already tames the tails that would dominate a z-score.

Features that do not vary (:func:`screen_features`): before fitting, every configured feature on which one
value (to 6 significant digits) is held by at least ``near_constant_share`` (99 %) of the users is dropped,
with its reason (``SegmentationResult.features_dropped`` / ``.warnings``, the model's info, and the caller's
log and MLflow). Fewer than ``min_features`` (1) left: :class:`TooFewFeaturesError`, naming the dropped
features and the columns that do vary (an order log: :data:`PURCHASE_HISTORY_FEATURES`).

The default features (:data:`DEFAULT_FEATURES`) describe what a visit consists of, one column per step of
the shop's funnel: ``page_views_per_session`` (browsing depth), ``searches_per_session``,
``cart_adds_per_session`` and ``purchases_per_session``. Raw counts (page views, cart adds, ...) grow with
how often a user comes, and users of the same kind differ a lot in that (the demo draws a lognormal activity
level per user), so counts mix "how active" with "what kind of visitor" and the activity level drowns the
behavioural mix. Per-session rates divide it out. Left out by default, each measured on the demo (see
docs/segmentation.md): activity and time columns (sessions, recency, tenure); ``cart_abandonment_rate``
(0 both for users who never add to cart and for users who buy every cart, and 1 for a browser with a single
stray cart add: it splits browsers instead of finding abandoners); ``has_purchased`` (a 0/1 duplicate of
``purchases_per_session > 0``); engagement time and scroll depth (a second copy of the passive / non-passive
gap that pages per visit already carries, which can tip the silhouette to k = 2 or 3). Any mart column or
derived column can be configured (``SegmentationConfig.features``).

Choosing k
  K-Means (scikit-learn ``KMeans``, Lloyd, k-means++ init, ``n_init`` restarts, seeded) is fitted on *all*
  users for every k in ``[k_min, k_max]``. The silhouette of each k is computed on one fixed random sample
  of at most ``silhouette_sample`` users (the same sample for every k), so its cost is bounded
  (O(sample^2) per k) whatever the number of users. The chosen k is the *smallest* k whose silhouette is
  within ``k_tolerance`` (default 0.005) of the best one: differences that small are within the sampling
  noise of a 5 000-user silhouette, and fewer segments are easier to act on and more stable between refits.
  Measured here (2 cores, benchmarks/segmentation.py --minibatch): exact ``KMeans`` on 500 k users x the 4
  default columns, k = 2..10, n_init = 3, takes 3.3 s; ``MiniBatchKMeans`` 2.1 s but with up to 13 % worse
  inertia (k = 2; 7-9 % at k = 8, 9). (With the earlier 15 count-based columns: 5.3 s vs 3.9 s; on all 23
  columns of demo-like, more overlapping data: 17 s vs 10 s.) The whole range is cheap, so exact K-Means is
  used.

Ward comparison
  Ward hierarchical clustering (``AgglomerativeClustering(linkage="ward")``, O(n^2) memory, hence on the
  silhouette sample only) is fitted with the chosen k; its silhouette and its agreement with K-Means
  (adjusted Rand index on the sample) are reported. They are a sanity check on the K-Means partition,
  not an alternative model.

Segment ids and names: clusters are ordered by size (largest first), named by :mod:`ml.naming` from their
centroids with every claim checked against their means in original units, and, when a previous model is
given, matched to its segments by :mod:`ml.matching` so ids and names carry over (names only while the new
numbers agree with them).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score

from ml import matching, naming
from ml.features import USER_FEATURE_COLUMNS

__all__ = [
    "DEFAULT_FEATURES",
    "NEAR_CONSTANT_SHARE",
    "PURCHASE_HISTORY_FEATURES",
    "DERIVED_FEATURES",
    "FEATURE_COLUMNS",
    "HAS_PURCHASED",
    "LOG1P_FEATURES",
    "PER_SESSION_FEATURES",
    "FeatureScreen",
    "FeatureTransform",
    "SegmentModel",
    "SegmentationConfig",
    "SegmentationRefused",
    "SegmentationResult",
    "TooFewFeaturesError",
    "fit_segments",
    "screen_features",
    "varying_columns",
]

MODEL_FORMAT = "pulse-segments/1"

# Every feature column of the dbt user_features mart (user_key and as_of_date are the key).
FEATURE_COLUMNS: tuple[str, ...] = USER_FEATURE_COLUMNS

LAST_PURCHASE = "days_since_last_purchase"
HAS_PURCHASED = "has_purchased"
NEVER_PURCHASED_DAYS = 365.0
SESSIONS_TOTAL = "sessions_total"

# Derived per-session rates: name -> the user_features count it divides by max(sessions_total, 1). They take
# the user's activity level out of the count, leaving *what* a visit consists of (see the module docstring).
PER_SESSION_FEATURES: dict[str, str] = {
    "page_views_per_session": "page_views",
    "product_views_per_session": "product_views",
    "searches_per_session": "searches",
    "cart_adds_per_session": "cart_adds",
    "purchases_per_session": "purchases",
    "revenue_per_session": "revenue",
}

# Columns the transform derives from user_features columns; any of them can be a configured feature.
DERIVED_FEATURES: tuple[str, ...] = (*PER_SESSION_FEATURES, HAS_PURCHASED)

DEFAULT_FEATURES: tuple[str, ...] = (
    "page_views_per_session",  # browsing depth
    "searches_per_session",  # search
    "cart_adds_per_session",  # cart
    "purchases_per_session",  # purchase
)

# A feature set for histories that hold orders only (no page views, searches or carts), where every per-visit
# default is constant: how many orders, how much money, how large a basket, how recent the last order.
PURCHASE_HISTORY_FEATURES: tuple[str, ...] = ("purchases", "revenue", "avg_order_value", "days_since_last_purchase")

# Heavy-tailed, non-negative columns that are clustered on log1p(x). Everything else stays linear.
LOG1P_FEATURES: frozenset[str] = frozenset(
    {
        "days_since_last_visit",
        "days_since_first_visit",
        "sessions_7d",
        "sessions_30d",
        "sessions_total",
        "active_days_30d",
        "sessions_per_active_day",
        "avg_session_seconds",
        "avg_engaged_seconds",
        "page_views",
        "product_views",
        "categories_viewed",
        "searches",
        "cart_adds",
        "purchases",
        "revenue",
        "avg_order_value",
        "days_since_last_purchase",
        *PER_SESSION_FEATURES,
    }
)


NEAR_CONSTANT_SHARE = 0.99  # share of users at a feature's most common value from which it is dropped
SIGNIFICANT_DIGITS = 6  # values are compared to this many significant digits when finding the most common one


class SegmentationRefused(ValueError):
    """The data cannot support a segmentation (too few users, or nothing that varies between them): nothing
    is fitted. The message says why; the pipeline records it and keeps the previous champion, if any."""


@dataclass(frozen=True)
class SegmentationConfig:
    """Everything :func:`fit_segments` needs besides the data. Defaults are the production settings."""

    features: tuple[str, ...] = DEFAULT_FEATURES
    k_min: int = 2
    k_max: int = 10
    seed: int = 0
    n_init: int = 3  # K-Means restarts per k (k-means++ seeding); the best inertia wins
    max_iter: int = 300
    min_users: int = 20  # fewer users than this: segmentation refuses (SegmentationRefused)
    silhouette_sample: int = 5000  # users in the silhouette / Ward sample (cost O(sample^2) per k)
    k_tolerance: float = 0.005  # the smallest k within this of the best silhouette is chosen
    never_purchased_days: float = NEVER_PURCHASED_DAYS  # fill (and cap) for days_since_last_purchase
    log1p_features: frozenset[str] = LOG1P_FEATURES
    # Matching to the previous model (ml.matching): distances are RMS differences per feature, in population
    # standard deviations of the new fit.
    keep_id_within: float = 0.5  # a matched segment further than this from its partner gets a new id
    keep_name_within: float = 0.25  # ... and keeps its previous name only when at most this far
    # Feature screening (screen_features): a feature whose most common value (to 6 significant digits) is held
    # by at least this share of users is dropped; fewer than min_features left and fit_segments refuses.
    near_constant_share: float = NEAR_CONSTANT_SHARE
    min_features: int = 1

    def __post_init__(self) -> None:
        if not self.features:
            raise ValueError("SegmentationConfig.features is empty")
        if not 0.5 < self.near_constant_share <= 1.0:
            raise ValueError(f"near_constant_share must be in (0.5, 1], got {self.near_constant_share}")
        if not 1 <= self.min_features <= len(self.features):
            raise ValueError(f"min_features must be in 1..{len(self.features)} (the features), got {self.min_features}")
        if len(set(self.features)) != len(self.features):
            raise ValueError(f"duplicate features: {self.features}")
        if not 2 <= self.k_min <= self.k_max:
            raise ValueError(f"need 2 <= k_min <= k_max, got {self.k_min}..{self.k_max}")
        if self.silhouette_sample < 3:
            raise ValueError("silhouette_sample must be at least 3")
        if self.min_users < 3:
            raise ValueError("min_users must be at least 3")

    def params(self) -> dict[str, Any]:
        """Flat parameters, e.g. for experiment tracking."""
        return {
            "features": ",".join(self.features),
            "k_min": self.k_min,
            "k_max": self.k_max,
            "seed": self.seed,
            "n_init": self.n_init,
            "max_iter": self.max_iter,
            "min_users": self.min_users,
            "silhouette_sample": self.silhouette_sample,
            "k_tolerance": self.k_tolerance,
            "never_purchased_days": self.never_purchased_days,
            "log1p_features": ",".join(f for f in self.features if f in self.log1p_features),
            "keep_id_within": self.keep_id_within,
            "keep_name_within": self.keep_name_within,
            "near_constant_share": self.near_constant_share,
            "min_features": self.min_features,
        }


@dataclass(frozen=True)
class FeatureTransform:
    """``user_features`` columns -> the unscaled matrix the segments live in (see the module docstring)."""

    features: tuple[str, ...]
    log1p: tuple[str, ...]  # the subset of features that get log1p
    never_purchased_days: float = NEVER_PURCHASED_DAYS
    purchase_flag: bool = True  # days_since_last_purchase brings its has_purchased column (off: every user bought)

    @classmethod
    def from_config(
        cls, config: SegmentationConfig, features: tuple[str, ...] | None = None, purchase_flag: bool = True
    ) -> FeatureTransform:
        """The transform of ``config``, or of the subset ``features`` of its features (those that vary)."""
        chosen = tuple(config.features if features is None else features)
        return cls(
            features=chosen,
            log1p=tuple(f for f in chosen if f in config.log1p_features),
            never_purchased_days=float(config.never_purchased_days),
            purchase_flag=purchase_flag,
        )

    @property
    def columns(self) -> tuple[str, ...]:
        """The model's columns: the features, plus ``has_purchased`` after ``days_since_last_purchase`` (unless
        ``has_purchased`` is a feature of its own, or ``purchase_flag`` is off)."""
        out: list[str] = []
        for f in self.features:
            out.append(f)
            if f == LAST_PURCHASE and HAS_PURCHASED not in self.features and self.purchase_flag:
                out.append(HAS_PURCHASED)
        return tuple(out)

    @property
    def inputs(self) -> tuple[str, ...]:
        """The ``user_features`` columns the transform reads (derived features replaced by their sources)."""
        out: list[str] = []
        for f in self.features:
            if f in PER_SESSION_FEATURES:
                out += [PER_SESSION_FEATURES[f], SESSIONS_TOTAL]
            elif f == HAS_PURCHASED:
                out.append(LAST_PURCHASE)
            else:
                out.append(f)
        return tuple(dict.fromkeys(out))

    def raw(self, df: pd.DataFrame) -> pd.DataFrame:
        """The model's columns in original units: nulls filled, derived columns computed, no log."""
        missing = [c for c in self.inputs if c not in df.columns]
        if missing:
            raise KeyError(f"feature frame lacks columns {missing}")

        def values(column: str) -> np.ndarray:
            return pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)

        def clean(v: np.ndarray) -> np.ndarray:
            return np.clip(np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)

        out: dict[str, np.ndarray] = {}
        for f in self.features:
            if f in PER_SESSION_FEATURES:
                out[f] = clean(values(PER_SESSION_FEATURES[f])) / np.maximum(clean(values(SESSIONS_TOTAL)), 1.0)
            elif f == HAS_PURCHASED:
                out[f] = (~np.isnan(values(LAST_PURCHASE))).astype(np.float64)
            elif f == LAST_PURCHASE:
                days = values(f)
                bought = ~np.isnan(days)
                cap = self.never_purchased_days
                out[f] = np.clip(np.where(bought, days, cap), 0.0, cap)
                out.setdefault(HAS_PURCHASED, bought.astype(np.float64))
            else:
                out[f] = clean(values(f))
        return pd.DataFrame({c: out[c] for c in self.columns}, index=df.index, columns=list(self.columns))

    def matrix(self, df: pd.DataFrame) -> np.ndarray:
        """Float64 matrix (users x columns) before scaling."""
        raw = self.raw(df)
        x = raw.to_numpy(dtype=np.float64, copy=True)
        for j, c in enumerate(self.columns):
            if c in self.log1p:
                np.log1p(x[:, j], out=x[:, j])
        return x

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "features": list(self.features),
            "log1p": list(self.log1p),
            "never_purchased_days": self.never_purchased_days,
        }
        if not self.purchase_flag:  # written only when off, so models without it read back unchanged
            out["purchase_flag"] = False
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureTransform:
        return cls(
            tuple(d["features"]),
            tuple(d["log1p"]),
            float(d["never_purchased_days"]),
            purchase_flag=bool(d.get("purchase_flag", True)),
        )


@dataclass(frozen=True)
class FeatureScreen:
    """Which configured features vary enough across users to segment on (:func:`screen_features`)."""

    configured: tuple[str, ...]
    kept: tuple[str, ...]  # in configured order
    dropped: dict[str, str]  # feature -> why, e.g. "0 for 100.0 % of users"
    purchase_flag: bool = True  # False: every user (or none) bought, the has_purchased column is dropped
    near_constant_share: float = NEAR_CONSTANT_SHARE
    fallback_from: dict[str, str] = field(default_factory=dict)  # the defaults dropped before falling back

    def warning(self) -> str | None:
        """One line for the run log naming every dropped feature and why, or None when nothing was dropped."""
        if self.fallback_from:
            why = "; ".join(f"{f}: {reason}" for f, reason in self.fallback_from.items())
            dropped = "; ".join(f"{f}: {reason}" for f, reason in self.dropped.items())
            return (
                f"the default segmentation features (what a visit consists of) do not vary across these users: {why}"
                f" (an order log, or one visit per order?). Segmenting on the purchase history instead: "
                f"{', '.join(self.kept)}"
                + (f" (also dropped: {dropped})" if dropped else "")
                + ". Choose the features with the setting segmentation_features."
            )
        if not self.dropped:
            return None
        why = "; ".join(f"{f}: {reason}" for f, reason in self.dropped.items())
        kept = ", ".join(self.kept) if self.kept else "none"
        return (
            f"segmentation dropped features that (nearly) do not vary across users (one value for >= "
            f"{100 * self.near_constant_share:g} % of them): {why}. Segmenting on: {kept}"
        )


class TooFewFeaturesError(SegmentationRefused):
    """Too few of the configured segmentation features vary across users to segment them (see ``screen``)."""

    def __init__(self, message: str, screen: FeatureScreen) -> None:
        super().__init__(message)
        self.screen = screen


def _significant(values: np.ndarray, digits: int = SIGNIFICANT_DIGITS) -> np.ndarray:
    """``values`` rounded to ``digits`` significant digits (0 stays 0), so float noise is not variation."""
    v = np.asarray(values, dtype=np.float64)
    magnitude = np.floor(np.log10(np.abs(np.where(v == 0, 1.0, v))))
    scale = 10.0 ** (digits - 1 - magnitude)
    return np.round(v * scale) / scale


def most_common_value(values: np.ndarray) -> tuple[float, float]:
    """(the most common value to 6 significant digits, the share of rows holding it); (nan, 0) when empty."""
    if len(values) == 0:
        return float("nan"), 0.0
    unique, counts = np.unique(_significant(values), return_counts=True)
    i = int(counts.argmax())
    return float(unique[i]), float(counts[i] / len(values))


def screen_features(df: pd.DataFrame, config: SegmentationConfig) -> FeatureScreen:
    """Drop the configured features on which (nearly) every user has the same value.

    A model column is *near-constant* when its most common value, compared to 6 significant digits, is held by
    at least ``config.near_constant_share`` (99 %) of the users, measured on the column in original units after
    the transform's steps 1-3 (derived rates, nulls filled; log1p and scaling do not change which users share
    a value). Such a column cannot separate segments (a per-session rate that is 0 for everyone on a
    purchase-only log) or separates only a handful of users (1 % at most), and still pulls K-Means and the
    names. A feature is dropped when its column is near-constant; ``days_since_last_purchase`` has two
    columns and is dropped when both are; when only its ``has_purchased`` flag is (every user bought), the flag
    alone is left out.
    """
    full = FeatureTransform.from_config(config)
    raw = full.raw(df)
    verdicts: dict[str, tuple[float, float]] = {c: most_common_value(raw[c].to_numpy()) for c in full.columns}

    def near_constant(column: str) -> bool:
        return verdicts[column][1] >= config.near_constant_share

    def reason(column: str) -> str:
        value, share = verdicts[column]
        which = "every user" if share >= 1.0 else f"{100 * share:.1f} % of users"
        return f"{value:g} for {which}"

    kept: list[str] = []
    dropped: dict[str, str] = {}
    flag = True
    for f in config.features:
        if f == LAST_PURCHASE and HAS_PURCHASED in full.columns and HAS_PURCHASED not in config.features:
            if near_constant(f) and near_constant(HAS_PURCHASED):
                dropped[f] = f"{reason(f)} (has_purchased {reason(HAS_PURCHASED)})"
                continue
            flag = not near_constant(HAS_PURCHASED)
            if not flag:
                dropped[HAS_PURCHASED] = f"{reason(HAS_PURCHASED)} (the flag beside {LAST_PURCHASE}, which is kept)"
            kept.append(f)
        elif near_constant(f):
            dropped[f] = reason(f)
        else:
            kept.append(f)
    return FeatureScreen(
        configured=tuple(config.features),
        kept=tuple(kept),
        dropped=dropped,
        purchase_flag=flag,
        near_constant_share=config.near_constant_share,
    )


def varying_columns(df: pd.DataFrame, config: SegmentationConfig) -> list[str]:
    """The ``user_features`` and derived columns of ``df`` that are not near-constant (what to segment on
    instead, when the configured features do not vary)."""
    candidates = tuple(c for c in (*FEATURE_COLUMNS, *DERIVED_FEATURES) if c in df.columns or c in DERIVED_FEATURES)
    out = []
    for c in candidates:
        try:
            raw = FeatureTransform((c,), (), config.never_purchased_days, purchase_flag=False).raw(df)
        except KeyError:  # a derived column whose sources the frame lacks
            continue
        if most_common_value(raw[c].to_numpy())[1] < config.near_constant_share:
            out.append(c)
    return out


@dataclass(frozen=True, eq=False)
class SegmentModel:
    """A fitted segmentation: transform, scaler, centroids (scaled space), segment ids and names.

    Small and JSON-serializable (:meth:`to_json` / :meth:`from_json`); assigning needs only numpy/pandas.
    """

    transform: FeatureTransform
    mean: np.ndarray  # per column, of the transformed (log) values
    scale: np.ndarray  # per column standard deviation (1 where constant)
    centroids: np.ndarray  # (k, columns) in the scaled space
    segment_ids: tuple[int, ...]
    names: tuple[str, ...]
    next_id: int  # the id the next new segment gets; ids are never reused
    info: dict[str, Any] = field(default_factory=dict)  # fit facts: k, seed, users, silhouette, ...

    def __post_init__(self) -> None:
        k, d = self.centroids.shape
        if len(self.segment_ids) != k or len(self.names) != k:
            raise ValueError("segment_ids and names must have one entry per centroid")
        if len(set(self.segment_ids)) != k or len(set(self.names)) != k:
            raise ValueError("segment ids and names must be unique")
        if d != len(self.transform.columns) or self.mean.shape != (d,) or self.scale.shape != (d,):
            raise ValueError("centroid / scaler width does not match the transform's columns")

    @property
    def k(self) -> int:
        return len(self.segment_ids)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.transform.columns

    @property
    def features(self) -> tuple[str, ...]:
        """The ``user_features`` columns the model reads: what a frame passed to :meth:`assign` must hold."""
        return self.transform.inputs

    def name_by_id(self) -> dict[int, str]:
        return dict(zip(self.segment_ids, self.names, strict=True))

    def scaled(self, df: pd.DataFrame) -> np.ndarray:
        return (self.transform.matrix(df) - self.mean) / self.scale

    def assign(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(segment_id, Euclidean distance to its centroid in the scaled space), one per row of ``df``."""
        return self.assign_scaled(self.scaled(df))

    def assign_scaled(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx, dist = nearest_centroid(x, self.centroids)
        return np.asarray(self.segment_ids, dtype=np.int64)[idx], dist

    def predict_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """``segment_id``, ``segment_name``, ``distance`` per row (index kept)."""
        ids, dist = self.assign(df)
        names = pd.Series(ids, index=df.index).map(self.name_by_id())
        return pd.DataFrame({"segment_id": ids, "segment_name": names, "distance": dist}, index=df.index)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "transform": self.transform.to_dict(),
            "columns": list(self.columns),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "centroids": self.centroids.tolist(),
            "segment_ids": list(self.segment_ids),
            "names": list(self.names),
            "next_id": self.next_id,
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SegmentModel:
        if d.get("format") != MODEL_FORMAT:
            raise ValueError(f"not a {MODEL_FORMAT} model: format={d.get('format')!r}")
        return cls(
            transform=FeatureTransform.from_dict(d["transform"]),
            mean=np.asarray(d["mean"], dtype=np.float64),
            scale=np.asarray(d["scale"], dtype=np.float64),
            centroids=np.asarray(d["centroids"], dtype=np.float64).reshape(len(d["segment_ids"]), -1),
            segment_ids=tuple(int(i) for i in d["segment_ids"]),
            names=tuple(d["names"]),
            next_id=int(d["next_id"]),
            info=dict(d.get("info", {})),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> SegmentModel:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True, eq=False)
class SegmentationResult:
    model: SegmentModel
    config: SegmentationConfig
    assignments: pd.DataFrame  # per input row (same index): user_key (if given), segment_id, segment_name, distance
    profile: pd.DataFrame  # per segment: size, share, mean and z of each column (ml.naming.segment_profile)
    silhouettes: dict[int, float]  # k -> silhouette on the sample
    inertias: dict[int, float]  # k -> K-Means inertia (sum of squared distances, all users)
    chosen_k: int
    silhouette: float  # of the chosen k
    ward_silhouette: float  # Ward with the chosen k, on the same sample
    ward_kmeans_ari: float  # agreement of Ward and K-Means on the sample
    sample_size: int
    n_users: int
    match: matching.MatchReport | None  # when a previous model was given
    id_agreement_vs_previous: float | None  # share of users the previous model puts in the same segment id
    seconds: dict[str, float]  # wall time per stage
    screen: FeatureScreen | None = None  # which configured features were used, which dropped and why

    @property
    def features_dropped(self) -> dict[str, str]:
        """Configured features (or the has_purchased flag) left out because (nearly) every user has one value."""
        return dict(self.screen.dropped) if self.screen is not None else {}

    @property
    def warnings(self) -> list[str]:
        """What the caller should log as warnings (the dropped features, and why)."""
        message = self.screen.warning() if self.screen is not None else None
        return [message] if message else []

    def metrics(self) -> dict[str, float]:
        """Flat metrics for tracking (silhouettes per k included as ``silhouette_k{k}``)."""
        out: dict[str, float] = {
            "chosen_k": float(self.chosen_k),
            "silhouette": self.silhouette,
            "ward_silhouette": self.ward_silhouette,
            "ward_kmeans_ari": self.ward_kmeans_ari,
            "n_users": float(self.n_users),
            "silhouette_sample_size": float(self.sample_size),
            "fit_seconds": self.seconds.get("total", float("nan")),
            "features_used": float(len(self.model.transform.features)),
            "features_dropped": float(len(self.features_dropped)),
        }
        out.update({f"silhouette_k{k}": v for k, v in self.silhouettes.items()})
        if self.match is not None:
            out["segments_kept"] = float(len(self.match.kept_ids))
            out["segments_new"] = float(len(self.match.new_ids))
            out["segments_retired"] = float(len(self.match.retired_ids))
        if self.id_agreement_vs_previous is not None:
            out["id_agreement_vs_previous"] = self.id_agreement_vs_previous
        return out


def nearest_centroid(x: np.ndarray, centroids: np.ndarray, chunk: int = 262_144) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest centroid and the Euclidean distance to it, in chunks of rows (bounded memory)."""
    n = x.shape[0]
    idx = np.empty(n, dtype=np.int64)
    dist = np.empty(n, dtype=np.float64)
    c2 = (centroids**2).sum(axis=1)
    for start in range(0, n, chunk):
        xs = x[start : start + chunk]
        d2 = (xs**2).sum(axis=1)[:, None] - 2.0 * xs @ centroids.T + c2[None, :]
        best = d2.argmin(axis=1)
        idx[start : start + chunk] = best
        dist[start : start + chunk] = np.sqrt(np.maximum(d2[np.arange(len(xs)), best], 0.0))
    return idx, dist


def refuse_unless_segmentable(x: np.ndarray, columns: tuple[str, ...], config: SegmentationConfig) -> int:
    """Raise :class:`SegmentationRefused` when ``x`` (users x the model's columns, before scaling) cannot be
    segmented: fewer than ``config.min_users`` users, or fewer distinct users (rows) than ``k_min`` (every user
    alike: nothing separates them). Returns the number of distinct rows."""
    n = x.shape[0]
    if n < config.min_users:
        raise SegmentationRefused(
            f"{n:,} user{'' if n == 1 else 's'} in user_features: segmentation needs at least {config.min_users}"
        )
    distinct = len(pd.DataFrame(x).drop_duplicates())
    if distinct < config.k_min:
        alike = "every user has" if distinct == 1 else f"the users have only {distinct} distinct combinations of"
        raise SegmentationRefused(
            f"{alike} the same values of the features ({', '.join(columns)}): nothing to segment "
            f"into at least {config.k_min} groups"
        )
    return distinct


def choose_k(silhouettes: dict[int, float], tolerance: float) -> int:
    """The smallest k whose silhouette is within ``tolerance`` of the best (NaN silhouettes never win)."""
    valid = {k: s for k, s in silhouettes.items() if np.isfinite(s)}
    if not valid:
        raise ValueError("no k produced a silhouette (every candidate clustering had a single cluster)")
    best = max(valid.values())
    return min(k for k, s in valid.items() if s >= best - tolerance)


def sample_indices(n: int, size: int, seed: int) -> np.ndarray:
    """A sorted random sample of ``min(n, size)`` row positions, the same for the same (n, size, seed)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def _silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(silhouette_score(x, labels))


def _order_by_size(labels: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relabel clusters 0..k-1 by decreasing size (ties: lexicographic centroid), deterministic."""
    k = centroids.shape[0]
    sizes = np.bincount(labels, minlength=k)
    order = sorted(range(k), key=lambda i: (-sizes[i], *centroids[i].tolist()))
    remap = np.empty(k, dtype=np.int64)
    remap[order] = np.arange(k)
    return remap[labels], centroids[order]


def fit_segments(
    df: pd.DataFrame,
    config: SegmentationConfig | None = None,
    previous: SegmentModel | None = None,
) -> SegmentationResult:
    """Fit segments on ``df`` (one row per user); match them to ``previous`` (the champion) when given."""
    config = config or SegmentationConfig()
    t_start = time.perf_counter()
    seconds: dict[str, float] = {}

    n = len(df)
    if n < config.min_users:
        raise SegmentationRefused(
            f"{n:,} user{'' if n == 1 else 's'} in user_features: segmentation needs at least {config.min_users}"
        )
    screen = screen_features(df, config)
    if (
        len(screen.kept) < config.min_features
        and config.features == DEFAULT_FEATURES
        and set(PURCHASE_HISTORY_FEATURES) <= set(df.columns)
    ):
        # Features nobody chose: on an order log the visit mix is constant, the purchase history is not.
        fallback = replace(config, features=PURCHASE_HISTORY_FEATURES)
        fallback_screen = screen_features(df, fallback)
        if len(fallback_screen.kept) >= config.min_features:
            config, screen = fallback, replace(fallback_screen, fallback_from=dict(screen.dropped))
    if len(screen.kept) < config.min_features:
        details = "; ".join(f"{f}: {why}" for f, why in screen.dropped.items())
        varying = varying_columns(df, config)
        raise TooFewFeaturesError(
            f"cannot segment {n:,} users: {len(screen.kept)} of the {len(screen.configured)} segmentation features "
            f"vary across them (at least {config.min_features} must; a feature on which >= "
            f"{100 * config.near_constant_share:g} % of users have the same value is dropped): {details}. Segment on "
            "features that vary on this data (SegmentationConfig.features; in the pipeline the setting "
            f"segmentation_features, comma-separated). Columns that vary here: {', '.join(varying) or 'none'}"
            + (
                f" (an order log, for instance: {','.join(PURCHASE_HISTORY_FEATURES)})"
                if set(PURCHASE_HISTORY_FEATURES) <= set(varying)
                else ""
            ),
            screen,
        )
    transform = FeatureTransform.from_config(config, screen.kept, screen.purchase_flag)
    raw = transform.raw(df)
    xt = transform.matrix(df)
    distinct = refuse_unless_segmentable(xt, transform.columns, config)
    mean = xt.mean(axis=0)
    scale = xt.std(axis=0)
    scale[~(scale > 1e-12)] = 1.0
    x = (xt - mean) / scale
    del xt
    seconds["transform"] = time.perf_counter() - t_start

    sample = sample_indices(n, config.silhouette_sample, config.seed)
    xs = x[sample]
    # no more clusters than distinct users: K-Means cannot place more centroids than distinct points
    k_values = range(config.k_min, min(config.k_max, n - 1, len(sample) - 1, distinct) + 1)
    if len(k_values) == 0:
        raise SegmentationRefused(
            f"{n:,} users leave no k to try between k_min={config.k_min} and k_max={config.k_max}"
        )

    silhouettes: dict[int, float] = {}
    inertias: dict[int, float] = {}
    fits: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    t = time.perf_counter()
    for k in k_values:
        km = KMeans(n_clusters=k, n_init=config.n_init, max_iter=config.max_iter, random_state=config.seed).fit(x)
        labels = km.labels_.astype(np.int64)
        fits[k] = (labels, km.cluster_centers_)
        inertias[k] = float(km.inertia_)
    seconds["kmeans"] = time.perf_counter() - t
    t = time.perf_counter()
    for k, (labels, _) in fits.items():
        silhouettes[k] = _silhouette(xs, labels[sample])
    seconds["silhouette"] = time.perf_counter() - t

    try:
        chosen_k = choose_k(silhouettes, config.k_tolerance)
    except ValueError as exc:
        raise SegmentationRefused(f"{exc}: the users' features do not separate into groups") from None
    labels, centroids = _order_by_size(*fits[chosen_k])
    del fits

    t = time.perf_counter()
    ward_labels = AgglomerativeClustering(n_clusters=chosen_k, linkage="ward").fit_predict(xs)
    ward_silhouette = _silhouette(xs, ward_labels)
    ward_ari = float(adjusted_rand_score(labels[sample], ward_labels))
    seconds["ward"] = time.perf_counter() - t

    # Names from the centroids (z-scores of the transformed features), checked against the segments' means;
    # ids/names matched to the previous.
    bought = naming.bought(df)
    stats = naming.segment_stats(raw, labels, chosen_k, bought)
    if previous is None:
        match = None
        ids = list(range(1, chosen_k + 1))
        names = naming.name_segments(centroids, transform.columns, stats)
        next_id = chosen_k + 1
    else:
        match = matching.match_segments(
            previous,
            centroids,
            transform,
            mean,
            scale,
            keep_id_within=config.keep_id_within,
            keep_name_within=config.keep_name_within,
            stats=stats,
        )
        ids, names, next_id = list(match.segment_ids), list(match.names), match.next_id

    order = np.argsort(ids)  # the model stores segments in increasing id order
    model = SegmentModel(
        transform=transform,
        mean=mean,
        scale=scale,
        centroids=centroids[order],
        segment_ids=tuple(int(ids[i]) for i in order),
        names=tuple(names[i] for i in order),
        next_id=int(next_id),
        info={
            "k": chosen_k,
            "seed": config.seed,
            "n_users": int(n),
            "silhouette": silhouettes[chosen_k],
            "as_of_date": _as_of_date(df),
            "features_dropped": dict(screen.dropped),
        },
    )
    # Assign with the model itself, so these rows agree exactly with model.assign(df) later.
    row_ids, distance = model.assign_scaled(x)
    assignments = pd.DataFrame(index=df.index)
    if "user_key" in df.columns:
        assignments["user_key"] = df["user_key"].to_numpy()
    assignments["segment_id"] = row_ids
    assignments["segment_name"] = pd.Series(row_ids, index=df.index).map(model.name_by_id())
    assignments["distance"] = distance

    agreement = None
    if previous is not None and set(previous.features) <= set(df.columns):
        prev_ids, _ = previous.assign(df)
        agreement = float(np.mean(prev_ids == row_ids))

    t = time.perf_counter()
    profile = naming.segment_profile(raw, x, row_ids, model.name_by_id(), bought)
    seconds["profile"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t_start

    return SegmentationResult(
        model=model,
        config=config,
        assignments=assignments,
        profile=profile,
        silhouettes=silhouettes,
        inertias=inertias,
        chosen_k=chosen_k,
        silhouette=silhouettes[chosen_k],
        ward_silhouette=ward_silhouette,
        ward_kmeans_ari=ward_ari,
        sample_size=len(sample),
        n_users=n,
        match=match,
        id_agreement_vs_previous=agreement,
        seconds=seconds,
        screen=screen,
    )


def _as_of_date(df: pd.DataFrame) -> str | None:
    if "as_of_date" not in df.columns or df.empty:
        return None
    value = pd.to_datetime(df["as_of_date"]).max()
    return None if pd.isna(value) else value.date().isoformat()
