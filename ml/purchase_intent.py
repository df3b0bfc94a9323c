"""Purchase intent: will a user buy within the next ``horizon_days``? XGBoost against two baselines.

Input is the dbt table ``purchase_intent_training_set``: one row per (``user_key``, ``as_of_date``) snapshot,
the features of :data:`FEATURES` as of that date (point in time), and the label :data:`LABEL` (a purchase in
the ``horizon_days`` window after the date). Only snapshots whose label window is complete are in the table.
:func:`train_purchase_intent` returns an :class:`IntentTrainingResult`: the split, the data sufficiency
report, test metrics of three models on the same rows, the fitted XGBoost booster and what explains it.
No MLflow here: the caller logs the result (``config.params()``, ``split.describe()``,
``result.flat_metrics()``, :func:`write_intent_plots`).

Split (:func:`temporal_split`): by snapshot date, never at random, because the model predicts the future.
  test        the latest ``test_snapshots`` dates, or with ``test_as_of`` the latest ones on or before it
              (snapshots after it are not used at all: ``after_test_dates``);
  validation  the latest ``validation_snapshots`` dates whose label window (date + horizon) ends on or before
              the first test date;
  train       every earlier date.
No label used for fitting or for early stopping covers a day a test label sees: the test rows are unseen
future, so the test metrics (and the promotion decided on them) stay honest. The dates whose label window
would reach into the test period cannot be fitted on, and there are ``ceil(horizon / interval) - 1`` of them
right before the test date (``unused_dates``, counted in ``split.describe()``): none with weekly snapshots and
a 7-day horizon ("last week is test, the week before validation, the rest train"), one with 14 days, 12 of 39
weekly snapshots with 91 days. Training labels may reach into the validation windows (that only makes early
stopping a little optimistic, never the test): the old rule kept a second gap there and with a 91-day horizon
left 24 of 39 snapshots unused; this one trains on 25 instead of 13. The same user appears in several parts
(at different dates): that is the deployment situation (score known users at a later date), so it is not a
leak.

Sufficiency (:func:`check_sufficiency`, :func:`require_sufficient`): train and test each need at least
``min_positives`` positives and ``min_negatives`` negatives (default 100: below that, AUC and lift on test
are noise and the trees memorise a handful of buyers); validation needs one of each so early stopping is
defined. Training raises :class:`InsufficientDataError` naming every failing part before fitting anything.

Models, all fitted on train and evaluated on the same test rows (:func:`evaluate`: ROC-AUC, PR-AUC, log loss,
Brier, top-decile lift):
  xgboost            all :data:`FEATURES`, nulls left as missing (XGBoost learns a default direction: e.g.
                     ``days_since_last_purchase`` is null for users who never bought). ``hist`` trees, every
                     core, seeded (CPU ``hist`` is deterministic for a given seed). Early stopping on the
                     validation *log loss*: it rewards calibrated probabilities, which callers consume as
                     such, and is smooth where AUC (rank only) plateaus and jitters. No class re-weighting,
                     for the same reason. The booster is cut to its best iteration, so it is self-contained.
  rfm_logistic       logistic regression on recency, frequency, monetary (:data:`RFM_FEATURES`): log1p of
                     frequency and monetary, standard scaler (:class:`RfmLogistic`). The classic marketing
                     baseline. Linear in each input: monotone and extrapolating over any test range; a null
                     recency is the oldest (the limit of recency going to infinity).
  recency_heuristic  ``days_since_last_visit`` alone (:class:`RecencyBaseline`): a decreasing isotonic
                     regression fitted on train gives the probability (so log loss and Brier are comparable),
                     a tiny strictly decreasing tie-break makes it rank exactly like recency over every value,
                     inside or outside the training range, a null ("never visited") below all.
Every baseline is thus fair on a test period unlike the training one: its test ROC-AUC is that of the ranking
it stands for, never lowered by ties its fit made up.
The booster's explanation: gain importance (average gain of the splits on a feature; 0 when unused) and the
mean |SHAP| per feature from XGBoost's own TreeSHAP (``pred_contribs``) on a fixed sample of test rows.

:func:`predict_proba` scores any frame with the features (batch scoring, or the champion on a new test set).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.features import USER_FEATURE_COLUMNS

__all__ = [
    "FEATURES",
    "LABEL",
    "MODEL_NAMES",
    "RFM_FEATURES",
    "InsufficientDataError",
    "IntentConfig",
    "IntentTrainingResult",
    "PartCounts",
    "RecencyBaseline",
    "RfmLogistic",
    "SufficiencyReport",
    "TemporalSplit",
    "check_sufficiency",
    "evaluate",
    "feature_matrix",
    "predict_proba",
    "require_sufficient",
    "temporal_split",
    "train_purchase_intent",
    "write_intent_plots",
]

# The feature columns of purchase_intent_training_set (those of user_feature_snapshots), in table order.
FEATURES: tuple[str, ...] = USER_FEATURE_COLUMNS
RFM_FEATURES: tuple[str, str, str] = ("days_since_last_visit", "sessions_30d", "revenue")  # recency, freq., money
RECENCY = "days_since_last_visit"
LABEL = "purchased_within_horizon"
KEY = ("user_key", "as_of_date")
LABEL_WINDOW_END = "label_window_end_date"
MODEL_NAMES: tuple[str, ...] = ("xgboost", "rfm_logistic", "recency_heuristic")
PARTS: tuple[str, ...] = ("train", "validation", "test")
PROBABILITY_CLIP = 1e-6  # baseline probabilities are kept in [1e-6, 1 - 1e-6]


class InsufficientDataError(ValueError):
    """Not enough labelled snapshots (dates, positives or negatives) to train and evaluate honestly."""


@dataclass(frozen=True)
class IntentConfig:
    """Everything :func:`train_purchase_intent` needs besides the data. Defaults are the production settings."""

    horizon_days: int = 7  # the label window after as_of_date; must match the dbt table's
    test_snapshots: int = 1
    validation_snapshots: int = 1  # the fewest; the dates between train and test are all validation
    test_as_of: date | None = None  # the evaluation date: test on the latest snapshots on or before it
    min_positives: int = 100  # per part, train and test
    min_negatives: int = 100
    # XGBoost (binary:logistic, hist). n_estimators is an upper bound: early stopping picks the rounds.
    max_depth: int = 6
    learning_rate: float = 0.1
    n_estimators: int = 600
    early_stopping_rounds: int = 40
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 5.0
    reg_lambda: float = 1.0
    max_bin: int = 256
    eval_metric: str = "logloss"  # early stopping metric on the validation snapshots
    nthread: int = 0  # 0: every core this process may use
    seed: int = 0
    shap_sample: int = 2000  # test rows explained by TreeSHAP (cost grows with rows x trees x leaves)

    def __post_init__(self) -> None:
        if self.horizon_days < 1:
            raise ValueError(f"horizon_days must be >= 1, got {self.horizon_days}")
        if self.test_snapshots < 1 or self.validation_snapshots < 1:
            raise ValueError("test_snapshots and validation_snapshots must be >= 1")
        if self.min_positives < 1 or self.min_negatives < 1:
            raise ValueError("min_positives and min_negatives must be >= 1")
        if self.n_estimators < 1 or self.early_stopping_rounds < 1:
            raise ValueError("n_estimators and early_stopping_rounds must be >= 1")
        if self.shap_sample < 1:
            raise ValueError("shap_sample must be >= 1")

    def threads(self) -> int:
        if self.nthread > 0:
            return self.nthread
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            return os.cpu_count() or 1

    def xgboost_params(self) -> dict[str, Any]:
        """The ``xgboost.train`` parameters."""
        return {
            "objective": "binary:logistic",
            "tree_method": "hist",
            "max_depth": self.max_depth,
            "eta": self.learning_rate,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "min_child_weight": self.min_child_weight,
            "lambda": self.reg_lambda,
            "max_bin": self.max_bin,
            "eval_metric": self.eval_metric,
            "nthread": self.threads(),
            "seed": self.seed,
        }

    def params(self) -> dict[str, Any]:
        """Flat parameters, e.g. for experiment tracking."""
        return {
            "horizon_days": self.horizon_days,
            "test_snapshots": self.test_snapshots,
            "validation_snapshots": self.validation_snapshots,
            "test_as_of": self.test_as_of.isoformat() if self.test_as_of else "",
            "min_positives": self.min_positives,
            "min_negatives": self.min_negatives,
            "max_depth": self.max_depth,
            "learning_rate": self.learning_rate,
            "n_estimators": self.n_estimators,
            "early_stopping_rounds": self.early_stopping_rounds,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "min_child_weight": self.min_child_weight,
            "reg_lambda": self.reg_lambda,
            "max_bin": self.max_bin,
            "eval_metric": self.eval_metric,
            "nthread": self.threads(),
            "seed": self.seed,
            "shap_sample": self.shap_sample,
            "features": ",".join(FEATURES),
            "rfm_features": ",".join(RFM_FEATURES),
        }


# ----------------------------------------------------------------------------------------------- the split


def _days(values: Iterable[Any]) -> np.ndarray:
    """Dates (date, datetime, Timestamp, datetime64 or ISO strings) as ``datetime64[D]``; no nulls allowed."""
    if not isinstance(values, pd.Series | pd.Index | np.ndarray):
        values = list(values)
    idx = pd.DatetimeIndex(pd.to_datetime(pd.Series(values)))
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    if idx.hasnans:
        raise ValueError("as_of_date has nulls")
    return idx.to_numpy().astype("datetime64[D]")


def _as_date(d: np.datetime64) -> date:
    return pd.Timestamp(d).date()


@dataclass(frozen=True)
class TemporalSplit:
    """Snapshot dates of each part (ascending). Rows go to the part of their ``as_of_date``; rows on
    ``unused_dates`` (in no part: none with this rule, logged to show it) and ``after_test_dates`` (after
    ``test_as_of``) are not used."""

    train_dates: tuple[date, ...]
    validation_dates: tuple[date, ...]
    test_dates: tuple[date, ...]
    horizon_days: int
    interval_days: int | None  # the smallest gap between consecutive snapshot dates; None with one date
    unused_dates: tuple[date, ...] = ()
    after_test_dates: tuple[date, ...] = ()
    test_as_of: date | None = None

    def dates(self, part: str) -> tuple[date, ...]:
        return {"train": self.train_dates, "validation": self.validation_dates, "test": self.test_dates}[part]

    def masks(self, as_of_dates: Iterable[Any]) -> dict[str, np.ndarray]:
        """Boolean row masks of train, validation and test for a column of as_of dates."""
        days = _days(as_of_dates)
        return {p: np.isin(days, np.array(self.dates(p), dtype="datetime64[D]")) for p in PARTS}

    def describe(self) -> dict[str, str]:
        """Strings for logging: first and last date and the number of snapshots of each part."""
        out: dict[str, str] = {}
        for p in PARTS:
            ds = self.dates(p)
            out[f"{p}_from"] = ds[0].isoformat()
            out[f"{p}_to"] = ds[-1].isoformat()
            out[f"{p}_snapshots"] = str(len(ds))
        out["unused_snapshots"] = str(len(self.unused_dates))
        out["after_test_snapshots"] = str(len(self.after_test_dates))
        out["test_as_of"] = self.test_as_of.isoformat() if self.test_as_of else ""
        out["horizon_days"] = str(self.horizon_days)
        out["interval_days"] = "" if self.interval_days is None else str(self.interval_days)
        return out


def _snapshots_needed(interval: int | None, horizon_days: int, test_snapshots: int, validation_snapshots: int) -> int:
    """Fewest evenly spaced snapshots for which the split has at least one train date."""
    between = 0 if interval is None else max(0, math.ceil(horizon_days / interval) - 1)
    return test_snapshots + between + validation_snapshots + 1


def temporal_split(
    as_of_dates: Iterable[Any],
    horizon_days: int,
    test_snapshots: int = 1,
    validation_snapshots: int = 1,
    test_as_of: date | None = None,
) -> TemporalSplit:
    """Train / validation / test snapshot dates (see the module docstring). Raises :class:`InsufficientDataError`
    when a part would be empty."""
    if horizon_days < 1 or test_snapshots < 1 or validation_snapshots < 1:
        raise ValueError("horizon_days, test_snapshots and validation_snapshots must all be >= 1")
    all_dates = np.unique(_days(as_of_dates))
    if len(all_dates) == 0:
        raise InsufficientDataError(
            "no snapshot has a complete label window yet: purchase_intent_training_set is empty "
            f"(a snapshot is labelled {horizon_days} days after its as_of_date)"
        )
    interval = int(np.diff(all_dates).astype(int).min()) if len(all_dates) > 1 else None
    horizon = np.timedelta64(horizon_days, "D")
    dates, after = all_dates, all_dates[:0]
    if test_as_of is not None:
        cut = np.datetime64(test_as_of, "D")
        dates, after = all_dates[all_dates <= cut], all_dates[all_dates > cut]
        if len(dates) == 0:
            raise InsufficientDataError(
                f"no snapshot with a complete label window on or before test_as_of {test_as_of}: the labelled "
                f"snapshots run {_as_date(all_dates[0])} .. {_as_date(all_dates[-1])}"
            )

    def short(part: str) -> InsufficientDataError:
        need = _snapshots_needed(interval, horizon_days, test_snapshots, validation_snapshots)
        spacing = f"a {interval}-day interval" if interval is not None else "snapshots at least the horizon apart"
        cut = f" on or before test_as_of {test_as_of}" if test_as_of is not None else ""
        return InsufficientDataError(
            f"not enough snapshots for a temporal split: {part} would be empty. {len(dates)} snapshot date(s) "
            f"with a complete label window{cut} ({_as_date(dates[0])} .. {_as_date(dates[-1])}); with {spacing} "
            f"and a {horizon_days}-day horizon, {test_snapshots} test + {validation_snapshots} validation + 1 train "
            f"snapshot need at least {need} snapshot dates"
        )

    if len(dates) <= test_snapshots:
        raise short("validation")
    test, before = dates[-test_snapshots:], dates[:-test_snapshots]
    # Fitting (train and early stopping) only on label windows that end by the first test date; the dates in
    # between stay unused: their labels would see the test period.
    fits = before[before + horizon <= test[0]]
    if len(fits) < validation_snapshots:
        raise short("validation")
    train, validation = fits[: len(fits) - validation_snapshots], fits[len(fits) - validation_snapshots :]
    if len(train) == 0:
        raise short("train")
    used = np.concatenate([train, validation, test])
    return TemporalSplit(
        train_dates=tuple(_as_date(d) for d in train),
        validation_dates=tuple(_as_date(d) for d in validation),
        test_dates=tuple(_as_date(d) for d in test),
        horizon_days=int(horizon_days),
        interval_days=interval,
        unused_dates=tuple(_as_date(d) for d in dates if d not in used),
        after_test_dates=tuple(_as_date(d) for d in after),
        test_as_of=test_as_of,
    )


# ----------------------------------------------------------------------------------------------- sufficiency


@dataclass(frozen=True)
class PartCounts:
    rows: int
    positives: int
    negatives: int
    snapshots: int


@dataclass(frozen=True)
class SufficiencyReport:
    """Rows, positives and negatives per part, and every shortfall (empty when ``ok``)."""

    parts: dict[str, PartCounts]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def message(self) -> str:
        counts = "; ".join(
            f"{p}: {c.rows:,} rows over {c.snapshots} snapshot(s), {c.positives:,} positives, {c.negatives:,} negatives"
            for p, c in self.parts.items()
        )
        if self.ok:
            return f"enough labelled data to train purchase intent ({counts})"
        return f"not enough labelled data to train purchase intent: {', '.join(self.problems)} ({counts})"

    def counts(self) -> dict[str, int]:
        """Flat counts for logging: ``train_rows``, ``train_positives``, ..."""
        out: dict[str, int] = {}
        for p, c in self.parts.items():
            out |= {f"{p}_rows": c.rows, f"{p}_positives": c.positives, f"{p}_negatives": c.negatives}
        return out


def _labels(frame: pd.DataFrame) -> np.ndarray:
    if LABEL not in frame.columns:
        raise KeyError(f"training frame lacks the label column {LABEL!r}")
    y = frame[LABEL]
    if y.isna().any():
        raise ValueError(f"{LABEL} has {int(y.isna().sum())} null(s): only snapshots with a complete window belong")
    return y.astype(bool).to_numpy()


def check_sufficiency(frame: pd.DataFrame, split: TemporalSplit, config: IntentConfig) -> SufficiencyReport:
    """Positives and negatives per part against the config's minimums (train and test) or 1 (validation)."""
    y = _labels(frame)
    masks = split.masks(frame["as_of_date"])
    parts: dict[str, PartCounts] = {}
    problems: list[str] = []
    for p in PARTS:
        pos = int(y[masks[p]].sum())
        rows = int(masks[p].sum())
        parts[p] = PartCounts(rows=rows, positives=pos, negatives=rows - pos, snapshots=len(split.dates(p)))
        need_pos, need_neg = (1, 1) if p == "validation" else (config.min_positives, config.min_negatives)
        if pos < need_pos:
            problems.append(f"{p} has {pos} positives (needs >= {need_pos})")
        if rows - pos < need_neg:
            problems.append(f"{p} has {rows - pos} negatives (needs >= {need_neg})")
    return SufficiencyReport(parts=parts, problems=tuple(problems))


def require_sufficient(frame: pd.DataFrame, split: TemporalSplit, config: IntentConfig) -> SufficiencyReport:
    """:func:`check_sufficiency`, raising :class:`InsufficientDataError` with its message when not ok."""
    report = check_sufficiency(frame, split, config)
    if not report.ok:
        raise InsufficientDataError(report.message)
    return report


# ----------------------------------------------------------------------------------------------- metrics


def evaluate(y_true: Iterable[Any], p: Iterable[float]) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision), log loss, Brier score, top-decile lift, positive rate and n.

    Top-decile lift: the positive rate among the ``ceil(10 %)`` highest scores (stable sort, so ties at the
    threshold go to the earlier rows) divided by the overall positive rate. Rank metrics are NaN when only
    one class is present.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(y_true, dtype=bool).ravel()
    s = np.asarray(p, dtype=np.float64).ravel()
    if len(y) != len(s):
        raise ValueError(f"{len(y)} labels but {len(s)} scores")
    n = len(y)
    if n == 0:
        raise ValueError("nothing to evaluate")
    rate = float(y.mean())
    both = 0 < rate < 1
    q = np.clip(s, 1e-15, 1 - 1e-15)
    top = np.argsort(-s, kind="stable")[: math.ceil(0.1 * n)]
    return {
        "roc_auc": float(roc_auc_score(y, s)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, s)) if both else float("nan"),
        "log_loss": float(-np.mean(np.where(y, np.log(q), np.log1p(-q)))),
        "brier": float(np.mean((s - y) ** 2)),
        "top_decile_lift": float(y[top].mean() / rate) if rate > 0 else float("nan"),
        "positive_rate": rate,
        "n": float(n),
    }


# ----------------------------------------------------------------------------------------------- models


def feature_matrix(frame: pd.DataFrame, features: tuple[str, ...] = FEATURES) -> np.ndarray:
    """``features`` as a float32 matrix, nulls as NaN (XGBoost's missing value)."""
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise KeyError(f"feature frame lacks columns {missing}")
    out = np.empty((len(frame), len(features)), dtype=np.float32)
    for j, c in enumerate(features):
        out[:, j] = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def predict_proba(model: Any, frame: pd.DataFrame, features: Sequence[str] = FEATURES) -> np.ndarray:
    """Purchase probabilities of the rows of ``frame`` from a booster returned by :func:`train_purchase_intent`
    (already cut to its best iteration). ``features``: the columns the booster was trained on, in order
    (a champion trained on an older feature list keeps scoring with its own)."""
    import xgboost as xgb

    names = list(features)
    dm = xgb.DMatrix(feature_matrix(frame, tuple(names)), feature_names=names, nthread=IntentConfig().threads())
    return np.asarray(model.predict(dm), dtype=np.float64)


def _log1p_frequency_monetary(x: np.ndarray) -> np.ndarray:
    """RFM columns (recency, frequency, monetary) -> recency, log1p(frequency), log1p(monetary); null counts
    and money are 0, negative ones clipped to 0. Module level so a fitted pipeline pickles."""
    out = np.array(x, dtype=np.float64, copy=True)
    out[:, 1:] = np.log1p(np.clip(np.nan_to_num(out[:, 1:], nan=0.0), 0.0, None))
    return out


def _rfm_pipeline() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    return Pipeline(
        [
            ("log1p", FunctionTransformer(_log1p_frequency_monetary)),
            ("scale", StandardScaler()),
            ("logistic", LogisticRegression(max_iter=1000)),
        ]
    )


_LOW_LOG_ODDS = math.log(PROBABILITY_CLIP / (1 - PROBABILITY_CLIP))  # -13.8: the log-odds of 1e-6


def bounded_probability(log_odds: Any) -> np.ndarray:
    """Probabilities in [1e-6, 1 - 1e-6] from log-odds, strictly increasing in them (to float precision).

    The identity inside [log-odds of 1e-6 + 1, log-odds of 1 - 1e-6 - 1] (probabilities 2.7e-6 .. 1 - 2.7e-6);
    beyond, the log-odds approach the bound like 1 / distance, so rows far outside the training range keep
    their order instead of tying at a hard clip (log-odds down to about -10^7 stay apart). -inf gives exactly
    the lower bound, +inf the upper.
    """
    x = np.asarray(log_odds, dtype=np.float64)
    low, high = _LOW_LOG_ODDS + 1.0, -_LOW_LOG_ODDS - 1.0
    f = x.copy()
    below, above = x < low, x > high
    f[below] = _LOW_LOG_ODDS + 1.0 / (1.0 + (low - x[below]))
    f[above] = -_LOW_LOG_ODDS - 1.0 / (1.0 + (x[above] - high))
    return 1.0 / (1.0 + np.exp(-f))


class RfmLogistic:
    """The classic marketing baseline: a logistic regression on recency (days), log1p(frequency) and
    log1p(monetary), standardised (:data:`RFM_FEATURES`; null frequency or money is 0).

    Linear in each input, so monotone in each over every value it can meet, extrapolating past the training
    range instead of clipping to it; its log-odds become probabilities through :func:`bounded_probability`,
    which keeps the order where a hard clip at 1e-6 would tie every row far out (recency a year past anything
    seen in training). A null recency ("never visited") is the limit of recency going to infinity: the lowest
    probability (or the highest, should the fitted recency coefficient be positive). Such rows are left out of
    the fit, and never expected: the training table has a recency on every row.
    """

    def fit(self, x: np.ndarray, y: Any) -> RfmLogistic:
        x = np.asarray(x, dtype=np.float64)
        known = ~np.isnan(x[:, 0])
        self.pipeline_ = _rfm_pipeline().fit(x[known], np.asarray(y)[known])
        self.recency_coefficient_ = float(self.pipeline_[-1].coef_[0][0])
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Purchase probabilities, one per row of the RFM columns, within [1e-6, 1 - 1e-6]."""
        x = np.asarray(x, dtype=np.float64)
        known = ~np.isnan(x[:, 0])
        log_odds = np.empty(len(x), dtype=np.float64)
        if known.any():
            log_odds[known] = self.pipeline_.decision_function(x[known])
        if (~known).any():
            if self.recency_coefficient_ == 0:  # recency plays no part: any value scores the same
                filled = x[~known].copy()
                filled[:, 0] = 0.0
                log_odds[~known] = self.pipeline_.decision_function(filled)
            else:
                log_odds[~known] = -np.inf if self.recency_coefficient_ < 0 else np.inf
        return bounded_probability(log_odds)


NEVER_VISITED = float(np.arcsinh(np.finfo(np.float64).max)) + 1.0  # a null recency, past every finite day count


def _recency_position(days: Any) -> np.ndarray:
    """Recency as a strictly increasing position: ``asinh(days)`` (defined and strictly increasing over every real
    number, ~log(2 days) for large ones), a null "never visited" past the position of any finite day count."""
    d = np.asarray(days, dtype=np.float64).ravel()
    out = np.full(d.shape, NEVER_VISITED)
    known = np.isfinite(d)
    out[known] = np.arcsinh(d[known])
    out[d == -np.inf] = -np.inf  # -inf days is as recent as can be; +inf is as old as never
    return out


class RecencyBaseline:
    """``days_since_last_visit`` alone -> purchase probability, ranking exactly like recency itself.

    Calibration: a decreasing isotonic regression of the label on recency, fitted on train, gives the purchase
    rate by recency (so log loss and Brier are comparable with the other models). On its own that map is a
    staircase: every block of pooled recencies shares one score, and every recency outside the training range
    gets the score of the nearest end. On a shifted test period (a new year, a quieter season) whole ranges of
    test rows tie and the baseline ranks worse than recency does.

    Order: from the isotonic rate's log-odds a strictly decreasing tie-break, ``TIE_BREAK * asinh(days)``, is
    subtracted, and :func:`bounded_probability` turns the result into a probability without a hard clip. So
    the score is strictly decreasing in recency over every value it can meet, inside or outside the training
    range, and a null recency ("never visited") scores below every finite one: its ROC-AUC on any rows is the
    ROC-AUC of recency itself (more recent = more likely; equal recencies tie). The tie-break moves a
    probability by at most ~1e-5 log-odds for recencies up to 10^4 days (7e-4 for a null), far below what
    log loss or Brier can see; recencies a day apart stay apart in the float64 score up to ~10^6 days.
    """

    TIE_BREAK = 1e-6  # log-odds per unit of asinh(days)
    RATE_BOUND = 1e-12  # isotonic rates of exactly 0 or 1 (a block of one class) are kept finite in log-odds

    def fit(self, days: Any, y: Any) -> RecencyBaseline:
        from sklearn.isotonic import IsotonicRegression

        self.isotonic_ = IsotonicRegression(increasing=False, out_of_bounds="clip")
        self.isotonic_.fit(_recency_position(days), np.asarray(y, dtype=np.float64).ravel())
        return self

    def predict_proba(self, days: Any) -> np.ndarray:
        """Purchase probabilities, one per recency (strictly decreasing in it), within [1e-6, 1 - 1e-6]."""
        position = _recency_position(days)
        rate = np.clip(self.isotonic_.predict(np.clip(position, -NEVER_VISITED, NEVER_VISITED)), 0.0, 1.0)
        rate = np.clip(rate, self.RATE_BOUND, 1 - self.RATE_BOUND)
        return bounded_probability(np.log(rate) - np.log1p(-rate) - self.TIE_BREAK * position)


@dataclass(eq=False)
class IntentTrainingResult:
    """What :func:`train_purchase_intent` produced. ``test_metrics`` are on the same test rows for every model."""

    config: IntentConfig
    split: TemporalSplit
    sufficiency: SufficiencyReport
    test_metrics: dict[str, dict[str, float]]  # model name (MODEL_NAMES) -> evaluate() on test
    validation_metrics: dict[str, float]  # xgboost on the validation rows
    model: Any  # xgboost.Booster, cut to best_iteration + 1 trees
    best_iteration: int  # 0-based round with the best validation metric
    feature_gain: dict[str, float]  # every feature, average gain per split, 0 when unused
    shap_mean_abs: dict[str, float]  # every feature, mean |SHAP| on the test sample, log-odds units
    shap_values: np.ndarray  # (sample rows, features)
    shap_sample: pd.DataFrame  # the sampled test rows' features, same order
    test_frame: pd.DataFrame  # the test rows as given: user_key, as_of_date, features, label
    test_predictions: pd.DataFrame  # user_key, as_of_date, label and one probability column per model
    rows: dict[str, int]  # rows per part
    seconds: dict[str, float]  # per stage and "total"
    baselines: dict[str, Any] = field(default_factory=dict)  # the fitted rfm_logistic / recency_heuristic
    features: tuple[str, ...] = FEATURES  # the booster's columns, in order
    label: str = LABEL

    @property
    def positives(self) -> dict[str, int]:
        return {p: c.positives for p, c in self.sufficiency.parts.items()}

    @property
    def fit_seconds(self) -> float:
        return self.seconds["total"]

    def flat_metrics(self) -> dict[str, float]:
        """``test_<model>_<metric>``, ``validation_xgboost_<metric>``, ``best_iteration``, ``rows_<part>``."""
        out = {f"test_{m}_{k}": v for m, d in self.test_metrics.items() for k, v in d.items()}
        out |= {f"validation_xgboost_{k}": v for k, v in self.validation_metrics.items()}
        out |= {f"rows_{p}": float(n) for p, n in self.rows.items()}
        out["best_iteration"] = float(self.best_iteration)
        return out


def _check_label_windows(frame: pd.DataFrame, as_of: np.ndarray, horizon_days: int) -> None:
    """A table built with a longer label window than ``horizon_days`` would let train labels overlap the
    validation / test period: refuse it. (The last window day may be as_of + horizon - 1 or + horizon.)"""
    if LABEL_WINDOW_END not in frame.columns:
        return
    ends = _days(frame[LABEL_WINDOW_END])
    longest = int((ends - as_of).astype(int).max()) if len(ends) else 0
    if longest > horizon_days:
        raise ValueError(
            f"{LABEL_WINDOW_END} is up to {longest} days after as_of_date but horizon_days is {horizon_days}: "
            "configure the horizon the table was built with"
        )


def train_purchase_intent(frame: pd.DataFrame, config: IntentConfig | None = None) -> IntentTrainingResult:
    """Split by date, check sufficiency, fit XGBoost and the two baselines on train, evaluate all on test."""
    import xgboost as xgb

    config = config or IntentConfig()
    seconds: dict[str, float] = {}
    t_all = t = time.perf_counter()
    missing = [c for c in (*KEY, *FEATURES, LABEL) if c not in frame.columns]
    if missing:
        raise KeyError(f"training frame lacks columns {missing}")
    as_of = _days(frame["as_of_date"])
    _check_label_windows(frame, as_of, config.horizon_days)
    split = temporal_split(
        as_of, config.horizon_days, config.test_snapshots, config.validation_snapshots, config.test_as_of
    )
    sufficiency = require_sufficient(frame, split, config)
    y = _labels(frame)
    masks = split.masks(as_of)
    rows = {p: int(m.sum()) for p, m in masks.items()}
    x_all = feature_matrix(frame)
    x = {p: x_all[m] for p, m in masks.items()}
    ys = {p: y[m] for p, m in masks.items()}
    del x_all
    seconds["prepare"] = time.perf_counter() - t

    t = time.perf_counter()
    names = list(FEATURES)
    threads = config.threads()
    dtrain = xgb.QuantileDMatrix(x["train"], ys["train"], feature_names=names, max_bin=config.max_bin, nthread=threads)
    dvalid = xgb.QuantileDMatrix(x["validation"], ys["validation"], feature_names=names, ref=dtrain, nthread=threads)
    booster = xgb.train(
        config.xgboost_params(),
        dtrain,
        num_boost_round=config.n_estimators,
        evals=[(dvalid, "validation")],
        early_stopping_rounds=config.early_stopping_rounds,
        verbose_eval=False,
    )
    best_iteration = int(booster.best_iteration)
    model = booster[: best_iteration + 1]
    del dtrain, booster
    seconds["xgboost"] = time.perf_counter() - t

    def xgb_predict(part: str) -> np.ndarray:
        return np.asarray(model.predict(xgb.DMatrix(x[part], feature_names=names, nthread=threads)), np.float64)

    t = time.perf_counter()
    p_test = {"xgboost": xgb_predict("test")}
    validation_metrics = evaluate(ys["validation"], xgb_predict("validation"))
    seconds["predict"] = time.perf_counter() - t

    t = time.perf_counter()
    rfm_idx = [FEATURES.index(f) for f in RFM_FEATURES]
    rfm = RfmLogistic().fit(x["train"][:, rfm_idx], ys["train"])
    p_test["rfm_logistic"] = rfm.predict_proba(x["test"][:, rfm_idx])
    seconds["rfm_logistic"] = time.perf_counter() - t

    t = time.perf_counter()
    rec = FEATURES.index(RECENCY)
    recency = RecencyBaseline().fit(x["train"][:, rec], ys["train"])
    p_test["recency_heuristic"] = recency.predict_proba(x["test"][:, rec])
    seconds["recency_heuristic"] = time.perf_counter() - t

    test_metrics = {name: evaluate(ys["test"], p_test[name]) for name in MODEL_NAMES}

    t = time.perf_counter()
    gain = model.get_score(importance_type="gain")
    importance = {f: float(gain.get(f, 0.0)) for f in FEATURES}
    n_test = len(ys["test"])
    sample = np.sort(
        np.random.default_rng(config.seed).choice(n_test, size=min(config.shap_sample, n_test), replace=False)
    )
    contribs = model.predict(xgb.DMatrix(x["test"][sample], feature_names=names, nthread=threads), pred_contribs=True)
    shap_values = np.asarray(contribs[:, : len(FEATURES)], dtype=np.float64)  # the last column is the bias
    shap_mean_abs = {f: float(v) for f, v in zip(FEATURES, np.abs(shap_values).mean(axis=0), strict=True)}
    seconds["explain"] = time.perf_counter() - t

    test_predictions = frame.loc[masks["test"], list(KEY)].reset_index(drop=True)
    test_predictions[LABEL] = ys["test"]
    for name in MODEL_NAMES:
        test_predictions[name] = p_test[name]
    seconds["total"] = time.perf_counter() - t_all
    return IntentTrainingResult(
        config=config,
        split=split,
        sufficiency=sufficiency,
        test_metrics=test_metrics,
        validation_metrics=validation_metrics,
        model=model,
        best_iteration=best_iteration,
        feature_gain=importance,
        shap_mean_abs=shap_mean_abs,
        shap_values=shap_values,
        shap_sample=pd.DataFrame(x["test"][sample], columns=names),
        test_frame=frame.loc[masks["test"], [*KEY, *FEATURES, LABEL]].reset_index(drop=True),
        test_predictions=test_predictions,
        rows=rows,
        seconds=seconds,
        baselines={"rfm_logistic": rfm, "recency_heuristic": recency},
    )


# ----------------------------------------------------------------------------------------------- plots

_MODEL_LABELS: Mapping[str, str] = {
    "xgboost": "XGBoost (all features)",
    "rfm_logistic": "Logistic regression (RFM)",
    "recency_heuristic": "Recency only (isotonic, ranked by recency)",
}


def _plot_roc(result: IntentTrainingResult, path: Path) -> None:
    from matplotlib.figure import Figure  # the object API: no pyplot, no global backend switch
    from sklearn.metrics import roc_curve

    pred = result.test_predictions
    fig = Figure(figsize=(5.6, 5.2), dpi=100)
    ax = fig.add_subplot()
    for name in MODEL_NAMES:
        fpr, tpr, _ = roc_curve(pred[LABEL], pred[name])
        ax.plot(fpr, tpr, label=f"{_MODEL_LABELS[name]}, AUC {result.test_metrics[name]['roc_auc']:.3f}")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title(f"ROC on test ({len(pred):,} snapshots, {result.split.test_dates[-1]})")
    fig.tight_layout()
    fig.savefig(path)


def _plot_calibration(result: IntentTrainingResult, path: Path) -> None:
    from matplotlib.figure import Figure
    from sklearn.calibration import calibration_curve

    pred = result.test_predictions
    fig = Figure(figsize=(5.6, 5.2), dpi=100)
    ax = fig.add_subplot()
    top = 0.0
    for name in MODEL_NAMES:
        observed, predicted = calibration_curve(pred[LABEL], pred[name], n_bins=10, strategy="quantile")
        top = max(top, float(observed.max()), float(predicted.max()))
        ax.plot(predicted, observed, marker="o", markersize=3, label=_MODEL_LABELS[name])
    top = min(1.0, top * 1.05 + 0.01)
    ax.plot([0, top], [0, top], color="grey", linestyle=":", linewidth=1, label="perfectly calibrated")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("mean predicted probability (decile of scores)")
    ax.set_ylabel("observed purchase rate")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    ax.set_title(f"Calibration on test ({result.config.horizon_days}-day horizon)")
    fig.tight_layout()
    fig.savefig(path)


def _plot_gain(result: IntentTrainingResult, path: Path) -> None:
    from matplotlib.figure import Figure

    items = sorted(result.feature_gain.items(), key=lambda kv: kv[1])
    fig = Figure(figsize=(6.4, 0.28 * len(items) + 1.4), dpi=100)
    ax = fig.add_subplot()
    ax.barh([k for k, _ in items], [v for _, v in items], color="C0")
    ax.set_xlabel("average gain per split")
    ax.tick_params(axis="y", labelsize="small")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"XGBoost feature importance (gain), {result.best_iteration + 1} trees")
    fig.tight_layout()
    fig.savefig(path)


def _plot_shap(result: IntentTrainingResult, path: Path) -> None:
    from matplotlib.figure import Figure

    order = sorted(range(len(FEATURES)), key=lambda j: result.shap_mean_abs[FEATURES[j]])  # bottom: smallest
    values = result.shap_values
    sample = result.shap_sample
    jitter = np.random.default_rng(0).uniform(-0.3, 0.3, size=len(values))
    fig = Figure(figsize=(7.2, 0.32 * len(order) + 1.6), dpi=100)
    ax = fig.add_subplot()
    scatter = None
    for row, j in enumerate(order):
        feature = sample[FEATURES[j]]
        rank = feature.rank(pct=True).to_numpy()  # NaN stays NaN: drawn grey
        known = ~np.isnan(rank)
        ax.scatter(values[~known, j], row + jitter[~known], s=3, color="lightgrey", rasterized=True)
        scatter = ax.scatter(
            values[known, j], row + jitter[known], s=3, c=rank[known], cmap="coolwarm", vmin=0, vmax=1, rasterized=True
        )
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_yticks(range(len(order)), [FEATURES[j] for j in order], fontsize="small")
    ax.set_ylim(-0.6, len(order) - 0.4)
    ax.set_xlabel("SHAP value (log-odds contribution to the purchase score)")
    if scatter is not None:
        bar = fig.colorbar(scatter, ax=ax, fraction=0.04, pad=0.02)
        bar.set_label("feature value (rank in sample; grey: null)")
        bar.set_ticks([0, 1], labels=["low", "high"])
    ax.set_title(f"SHAP summary, {len(values):,} test snapshots (sorted by mean |SHAP|)")
    fig.tight_layout()
    fig.savefig(path)


def write_intent_plots(result: IntentTrainingResult, directory: str | Path) -> list[Path]:
    """``roc_curve.png``, ``calibration_curve.png``, ``feature_importance_gain.png`` and ``shap_summary.png``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, plot in (
        ("roc_curve.png", _plot_roc),
        ("calibration_curve.png", _plot_calibration),
        ("feature_importance_gain.png", _plot_gain),
        ("shap_summary.png", _plot_shap),
    ):
        plot(result, out / name)
        paths.append(out / name)
    return paths
