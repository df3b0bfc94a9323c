"""Purchase intent: the temporal split, data sufficiency, the metrics, and XGBoost against the RFM and recency
baselines on a synthetic training set whose label depends on more than RFM (ml.intent_synthetic)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import ml.purchase_intent as pi
from ml.intent_synthetic import synthetic_training_frame
from ml.purchase_intent import (
    FEATURES,
    LABEL,
    InsufficientDataError,
    IntentConfig,
    evaluate,
    temporal_split,
    train_purchase_intent,
)

WEEKLY = [date(2026, 1, 5) + timedelta(days=7 * i) for i in range(8)]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic_training_frame(3000, 8, seed=3)


@pytest.fixture(scope="module")
def fitted(frame: pd.DataFrame) -> pi.IntentTrainingResult:
    return train_purchase_intent(frame, IntentConfig(seed=0))


# ----------------------------------------------------------------------------------------------- split


LONG_WEEKLY = [date(2025, 1, 6) + timedelta(days=7 * i) for i in range(39)]  # 39 labelled weekly snapshots


@pytest.mark.parametrize("horizon", [7, 14, 21, 30, 91])
def test_split_fits_on_no_label_that_sees_the_test_period_and_leaves_only_that_gap_unused(horizon: int) -> None:
    rows = [d for d in reversed(LONG_WEEKLY) for _ in range(3)]  # unsorted, repeated like table rows
    split = temporal_split(rows, horizon_days=horizon)
    h = timedelta(days=horizon)
    parts = [split.train_dates, split.validation_dates, split.test_dates]
    for dates in parts:
        assert list(dates) == sorted(set(dates)) and dates
    assert max(split.train_dates) < min(split.validation_dates) <= max(split.validation_dates) < min(split.test_dates)
    # no label used for fitting or early stopping covers a day a test label sees
    assert max(split.validation_dates) + h <= min(split.test_dates)
    assert max(split.train_dates) + h <= min(split.test_dates)
    assert split.test_dates == (LONG_WEEKLY[-1],)
    # unused: exactly the dates whose window reaches into the test period
    gap = math.ceil(horizon / 7) - 1
    assert split.unused_dates == tuple(LONG_WEEKLY[len(LONG_WEEKLY) - 1 - gap : -1])
    assert split.describe()["unused_snapshots"] == str(gap)
    assert split.validation_dates == (LONG_WEEKLY[-2 - gap],)
    assert split.train_dates == tuple(LONG_WEEKLY[: -2 - gap])


def test_a_91_day_horizon_trains_on_25_of_39_weekly_snapshots_where_the_old_rule_trained_on_13() -> None:
    split = temporal_split(LONG_WEEKLY, horizon_days=91)
    assert (len(split.train_dates), len(split.validation_dates), len(split.test_dates)) == (25, 1, 1)
    assert len(split.unused_dates) == 12  # the old rule: 24 (a second gap before validation)


def test_split_with_14_day_horizon_skips_the_week_whose_label_reaches_into_test() -> None:
    split = temporal_split(WEEKLY, horizon_days=14)
    assert split.train_dates == tuple(WEEKLY[:5])
    assert split.validation_dates == (WEEKLY[5],)
    assert split.test_dates == (WEEKLY[7],)
    assert split.unused_dates == (WEEKLY[6],)
    described = split.describe()
    assert described["train_from"] == "2026-01-05" and described["train_to"] == WEEKLY[4].isoformat()
    assert described["validation_from"] == described["validation_to"] == WEEKLY[5].isoformat()
    assert described["test_to"] == WEEKLY[7].isoformat() and described["train_snapshots"] == "5"
    assert all(isinstance(v, str) for v in described.values())


def test_split_takes_several_test_and_validation_snapshots() -> None:
    split = temporal_split(WEEKLY, horizon_days=7, test_snapshots=2, validation_snapshots=2)
    assert split.test_dates == tuple(WEEKLY[6:])
    assert split.validation_dates == tuple(WEEKLY[4:6])
    assert split.train_dates == tuple(WEEKLY[:4])
    # with a 14-day horizon the week before test stays unused; validation takes the two weeks before it
    split = temporal_split(WEEKLY, horizon_days=14, validation_snapshots=2)
    assert split.validation_dates == tuple(WEEKLY[4:6]) and split.train_dates == tuple(WEEKLY[:4])
    assert split.unused_dates == (WEEKLY[6],)


@pytest.mark.parametrize("horizon", [7, 14, 30, 91])
def test_test_as_of_tests_on_the_snapshot_at_or_before_it_and_ignores_later_ones(horizon: int) -> None:
    cut = LONG_WEEKLY[30] + timedelta(days=3)  # between two snapshot dates
    split = temporal_split(LONG_WEEKLY, horizon_days=horizon, test_as_of=cut)
    assert split.test_dates == (LONG_WEEKLY[30],)
    assert split.after_test_dates == tuple(LONG_WEEKLY[31:])
    assert max(split.validation_dates) + timedelta(horizon) <= LONG_WEEKLY[30]
    assert max(split.train_dates) < min(split.validation_dates)
    assert len(split.unused_dates) == math.ceil(horizon / 7) - 1 and split.test_as_of == cut
    described = split.describe()
    assert described["after_test_snapshots"] == "8" and described["test_as_of"] == cut.isoformat()
    # on a snapshot date itself: that one is test
    assert temporal_split(LONG_WEEKLY, horizon, test_as_of=LONG_WEEKLY[30]).test_dates == (LONG_WEEKLY[30],)
    # the same as no date when it is on or after the latest
    assert temporal_split(LONG_WEEKLY, horizon, test_as_of=date(2030, 1, 1)).test_dates == (LONG_WEEKLY[-1],)


def test_test_as_of_before_any_labelled_snapshot_or_too_early_to_split_says_so() -> None:
    with pytest.raises(
        InsufficientDataError, match=r"no snapshot with a complete label window on or before test_as_of"
    ):
        temporal_split(WEEKLY, horizon_days=7, test_as_of=date(2025, 1, 1))
    with pytest.raises(InsufficientDataError, match=r"2 snapshot date\(s\) with a complete label window on or before "):
        temporal_split(WEEKLY, horizon_days=7, test_as_of=WEEKLY[1])


@pytest.mark.parametrize(
    ("dates", "horizon", "need"),
    [(WEEKLY[:2], 7, 3), (WEEKLY[:3], 14, 4), (WEEKLY[:1], 7, 3), (LONG_WEEKLY[:14], 91, 15)],
)
def test_split_with_too_few_snapshots_says_how_many_exist_and_are_needed(dates: list, horizon: int, need: int) -> None:
    with pytest.raises(InsufficientDataError, match=rf"{len(dates)} snapshot date\(s\).*at least {need} snapshot"):
        temporal_split(dates, horizon_days=horizon)
    temporal_split(LONG_WEEKLY[:need], horizon_days=horizon)  # that many is enough


def test_split_without_dates_raises_a_value_error() -> None:
    with pytest.raises(InsufficientDataError, match="no snapshot has a complete label window"):
        temporal_split([], horizon_days=7)
    assert issubclass(InsufficientDataError, ValueError)


# ----------------------------------------------------------------------------------------------- sufficiency


def _labelled(positives: list[int], rows_per_date: int = 300) -> pd.DataFrame:
    """Weekly snapshots, ``positives[i]`` positive rows on date i."""
    parts = []
    for d, pos in zip(WEEKLY, positives, strict=False):
        y = np.zeros(rows_per_date, dtype=bool)
        y[:pos] = True
        parts.append(pd.DataFrame({"as_of_date": pd.Timestamp(d), LABEL: y}))
    return pd.concat(parts, ignore_index=True)


def test_sufficiency_names_the_failing_part_and_its_count() -> None:
    df = _labelled([60, 60, 5, 99])  # train 120, validation 5, test 99
    split = temporal_split(df["as_of_date"], 7)
    report = pi.check_sufficiency(df, split, IntentConfig())
    assert not report.ok
    assert report.problems == ("test has 99 positives (needs >= 100)",)
    assert report.parts["test"].positives == 99 and report.parts["train"].positives == 120
    with pytest.raises(InsufficientDataError, match=r"test has 99 positives \(needs >= 100\)"):
        pi.require_sufficient(df, split, IntentConfig())


def test_sufficiency_passes_at_exactly_the_minimum() -> None:
    df = _labelled([50, 50, 1, 100])
    split = temporal_split(df["as_of_date"], 7)
    report = pi.require_sufficient(df, split, IntentConfig())
    assert report.ok and report.counts()["test_positives"] == 100 and report.counts()["train_positives"] == 100


def test_sufficiency_checks_train_negatives_and_validation_too() -> None:
    df = _labelled([20, 17, 0, 150])
    report = pi.check_sufficiency(df, temporal_split(df["as_of_date"], 7), IntentConfig())
    assert "train has 37 positives (needs >= 100)" in report.message
    assert "validation has 0 positives (needs >= 1)" in report.message
    assert "test" not in " ".join(report.problems)
    few_negatives = _labelled([250, 250, 10, 200])  # 100 negatives in train, 100 in test
    split = temporal_split(few_negatives["as_of_date"], 7)
    assert pi.check_sufficiency(few_negatives, split, IntentConfig()).ok
    strict = pi.check_sufficiency(few_negatives, split, IntentConfig(min_negatives=101))
    assert strict.problems == ("train has 100 negatives (needs >= 101)", "test has 100 negatives (needs >= 101)")


def test_training_refuses_insufficient_data_before_fitting(frame: pd.DataFrame, monkeypatch) -> None:
    import xgboost

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted despite insufficient data")

    monkeypatch.setattr(xgboost, "train", no_fit)
    with pytest.raises(InsufficientDataError, match=r"test has \d+ positives \(needs >= 5000\)"):
        train_purchase_intent(frame, IntentConfig(min_positives=5000))


def test_training_refuses_a_table_built_with_a_longer_horizon(frame: pd.DataFrame) -> None:
    wider = frame.assign(label_window_end_date=frame["as_of_date"] + pd.Timedelta(days=13))
    with pytest.raises(ValueError, match="horizon_days is 7"):
        train_purchase_intent(wider, IntentConfig(horizon_days=7))


# ----------------------------------------------------------------------------------------------- metrics


def test_evaluate_on_a_hand_computed_example() -> None:
    y = np.array([1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], dtype=bool)
    p = np.linspace(0.9, 0.05, 20)  # rows in descending score order: the top decile is rows 0 and 1
    m = evaluate(y, p)
    assert m["n"] == 20 and m["positive_rate"] == pytest.approx(0.2)
    assert m["top_decile_lift"] == pytest.approx((1 / 2) / 0.2)  # one of two positive, over 4/20
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))

    two = evaluate([True, False], [0.8, 0.4])
    assert two["brier"] == pytest.approx((0.2**2 + 0.4**2) / 2)
    assert two["log_loss"] == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    assert two["roc_auc"] == 1.0 and two["pr_auc"] == 1.0


def test_evaluate_lift_takes_exactly_ceil_ten_percent_of_tied_rows_in_order() -> None:
    y = np.array([True, False] + [False] * 8 + [True] * 5)  # 15 rows: the top decile is 2 rows
    m = evaluate(y, np.full(15, 0.5))
    assert m["top_decile_lift"] == pytest.approx((1 / 2) / (6 / 15))
    assert m["roc_auc"] == pytest.approx(0.5)


@pytest.mark.parametrize("positives", [5, 30])
def test_evaluate_perfect_ranking(positives: int) -> None:
    y = np.zeros(100, dtype=bool)
    y[:positives] = True
    m = evaluate(y, np.where(y, 0.9, 0.1) - np.arange(100) * 1e-4)
    assert m["roc_auc"] == 1.0 and m["pr_auc"] == pytest.approx(1.0)
    rate = positives / 100
    assert m["top_decile_lift"] == pytest.approx(min(1 / rate, (positives / 10 if positives < 10 else 1) / rate))
    assert m["top_decile_lift"] == pytest.approx({5: 10.0, 30: 1 / 0.3}[positives])


def test_evaluate_with_one_class_has_no_rank_metrics() -> None:
    m = evaluate([False] * 10, np.linspace(0, 1, 10))
    assert math.isnan(m["roc_auc"]) and math.isnan(m["top_decile_lift"]) and m["positive_rate"] == 0


# ----------------------------------------------------------------------------------------------- training


def test_xgboost_beats_both_baselines_on_the_same_test_rows(fitted: pi.IntentTrainingResult) -> None:
    auc = {name: fitted.test_metrics[name]["roc_auc"] for name in pi.MODEL_NAMES}
    assert auc["xgboost"] >= auc["rfm_logistic"] + 0.02, auc
    assert auc["xgboost"] > auc["recency_heuristic"], auc
    assert fitted.test_metrics["xgboost"]["log_loss"] < fitted.test_metrics["rfm_logistic"]["log_loss"]
    assert {fitted.test_metrics[name]["n"] for name in pi.MODEL_NAMES} == {3000.0}
    pred = fitted.test_predictions
    assert len(pred) == fitted.rows["test"] == 3000
    assert set(pd.to_datetime(pred["as_of_date"]).dt.date) == set(fitted.split.test_dates) == {WEEKLY[7]}
    for name in pi.MODEL_NAMES:
        assert evaluate(pred[LABEL], pred[name]) == fitted.test_metrics[name]
        assert pred[name].between(1e-6, 1 - 1e-6).all()
    assert fitted.rows == {"train": 18000, "validation": 3000, "test": 3000}


def test_recency_heuristic_is_monotone_decreasing_in_days(fitted: pi.IntentTrainingResult, frame) -> None:
    test = frame[pd.to_datetime(frame["as_of_date"]).dt.date == WEEKLY[7]].reset_index(drop=True)
    days = test["days_since_last_visit"].to_numpy()
    order = np.argsort(days, kind="stable")
    p = fitted.test_predictions["recency_heuristic"].to_numpy()[order]
    assert np.all(np.diff(p) <= 0) and p[0] > p[-1]
    # strictly: equal days tie, different days never do (no plateau of the isotonic fit survives)
    assert np.all((np.diff(p) < 0) == (np.diff(days[order]) > 0))


def _recency_auc(frame: pd.DataFrame) -> float:
    """The ROC-AUC of recency itself: more recent = more likely (equal recencies tie)."""
    return float(roc_auc_score(frame[LABEL], -frame["days_since_last_visit"].to_numpy(dtype=float)))


def test_recency_heuristic_ranks_exactly_like_recency_on_the_test_rows(fitted: pi.IntentTrainingResult) -> None:
    assert fitted.test_metrics["recency_heuristic"]["roc_auc"] == pytest.approx(
        _recency_auc(fitted.test_frame), abs=1e-12
    )


def test_baselines_are_fair_on_a_test_period_outside_the_training_range(frame: pd.DataFrame) -> None:
    """Every test recency lies past the oldest training recency (a later, quieter period): a baseline that clips
    to its training range scores them all alike (ROC-AUC 0.5); a fair one ranks them like recency itself."""
    test = pd.to_datetime(frame["as_of_date"]).dt.date == WEEKLY[7]
    shifted = frame.copy()
    oldest_seen = int(frame.loc[~test, "days_since_last_visit"].max())
    shifted.loc[test, "days_since_last_visit"] += oldest_seen + 1
    result = train_purchase_intent(shifted, IntentConfig(seed=0))
    recency_auc = _recency_auc(result.test_frame)
    assert result.test_frame["days_since_last_visit"].min() > oldest_seen
    assert recency_auc > 0.55  # recency still says something on the shifted rows
    auc = {name: result.test_metrics[name]["roc_auc"] for name in pi.MODEL_NAMES}
    assert auc["recency_heuristic"] == pytest.approx(recency_auc, abs=1e-12), auc
    p = result.test_predictions["recency_heuristic"]
    assert p.nunique() == result.test_frame["days_since_last_visit"].nunique()  # one score per recency
    # the RFM logistic extrapolates too: no two test recencies with the same frequency and money tie
    rfm = result.baselines["rfm_logistic"]
    row = result.test_frame[list(pi.RFM_FEATURES)].to_numpy(dtype=float)[:1].repeat(50, axis=0)
    row[:, 0] = oldest_seen + 1 + np.arange(50)
    assert np.all(np.diff(rfm.predict_proba(row)) < 0)


def test_recency_baseline_is_strictly_decreasing_everywhere_and_keeps_the_isotonic_rates() -> None:
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(0)
    days = rng.integers(1, 31, 4000).astype(float)
    y = rng.random(4000) < 0.4 * np.exp(-days / 10)
    baseline = pi.RecencyBaseline().fit(days, y)
    grid = np.concatenate([[-3.0, 0.0, 0.5], np.arange(1, 31), [31, 45, 365, 1e4, 1e5, 1e6, np.nan, np.nan]])
    p = baseline.predict_proba(grid)
    assert np.all(np.diff(p[:-1]) < 0)  # strictly decreasing, inside and outside 1..30, to a null (never visited)
    assert p[-1] == p[-2] and np.all(p[-1] < p[:-2])
    assert np.all((p >= 1e-6) & (p <= 1 - 1e-6))
    plain = IsotonicRegression(increasing=False, out_of_bounds="clip").fit(days, y).predict(np.arange(1, 31))
    np.testing.assert_allclose(p[3:33], plain, rtol=1e-4)  # calibrated like the isotonic fit (ties broken by 1e-5)
    assert len(np.unique(plain)) < 30  # which alone has plateaus


def test_rfm_logistic_reads_a_null_recency_as_the_oldest() -> None:
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.integers(1, 60, 3000), rng.poisson(3, 3000), rng.gamma(2, 40, 3000)]).astype(float)
    y = rng.random(3000) < 1 / (1 + np.exp(0.08 * x[:, 0] - 0.3 * np.log1p(x[:, 1])))
    rfm = pi.RfmLogistic().fit(x, y)
    rows = np.array([[2.0, 3.0, 80.0], [59.0, 3.0, 80.0], [5000.0, 3.0, 80.0], [np.nan, 3.0, 80.0]])
    p = rfm.predict_proba(rows)
    assert rfm.recency_coefficient_ < 0
    assert p[0] > p[1] > p[2] > p[3] == pytest.approx(1e-6, rel=1e-9)  # far out: still ranked, never clipped


def test_bounded_probability_keeps_the_order_beyond_the_bounds() -> None:
    log_odds = np.array([-np.inf, -1e6, -1e3, -50.0, -14.0, -3.0, 0.0, 3.0, 14.0, 50.0, 1e3, np.inf])
    p = pi.bounded_probability(log_odds)
    assert np.all(np.diff(p[:9]) > 0) and np.all(np.diff(p) >= 0)  # strictly below 1 - 1e-6: float precision
    assert p[0] == pytest.approx(1e-6, rel=1e-9) and p[-1] == pytest.approx(1 - 1e-6, abs=1e-15)
    assert np.all((p >= 1e-6 - 1e-18) & (p <= 1 - 1e-6 + 1e-15))
    np.testing.assert_allclose(p[5:8], 1 / (1 + np.exp(-log_odds[5:8])))  # the identity in between


def test_early_stopping_picks_the_rounds_and_the_model_is_cut_to_them(fitted: pi.IntentTrainingResult) -> None:
    assert 0 < fitted.best_iteration < fitted.config.n_estimators - fitted.config.early_stopping_rounds
    assert fitted.model.num_boosted_rounds() == fitted.best_iteration + 1
    assert 0 < fitted.validation_metrics["roc_auc"] <= 1


def test_predict_proba_scores_a_frame_like_training_did(fitted: pi.IntentTrainingResult, frame) -> None:
    test = frame[pd.to_datetime(frame["as_of_date"]).dt.date == WEEKLY[7]]
    p = pi.predict_proba(fitted.model, test)
    np.testing.assert_allclose(p, fitted.test_predictions["xgboost"].to_numpy(), rtol=1e-6)
    np.testing.assert_array_equal(pi.predict_proba(fitted.model, fitted.test_frame, fitted.features), p)
    assert fitted.test_frame[LABEL].sum() == fitted.positives["test"] == fitted.test_predictions[LABEL].sum()
    with pytest.raises(KeyError, match="cart_adds"):
        pi.predict_proba(fitted.model, test.drop(columns=["cart_adds"]))


def test_training_is_deterministic(fitted: pi.IntentTrainingResult, frame: pd.DataFrame) -> None:
    again = train_purchase_intent(frame, IntentConfig(seed=0))
    assert again.best_iteration == fitted.best_iteration
    for name in pi.MODEL_NAMES:
        np.testing.assert_array_equal(again.test_predictions[name], fitted.test_predictions[name])
    np.testing.assert_array_equal(again.shap_values, fitted.shap_values)


def test_explanations_cover_every_feature_and_find_the_planted_signals(fitted: pi.IntentTrainingResult) -> None:
    assert list(fitted.feature_gain) == list(FEATURES) == list(fitted.shap_mean_abs)
    assert all(v >= 0 for v in fitted.feature_gain.values())
    assert fitted.shap_values.shape == (2000, len(FEATURES)) and len(fitted.shap_sample) == 2000
    top = sorted(FEATURES, key=lambda f: -fitted.shap_mean_abs[f])[:5]
    assert "days_since_last_visit" in top and "cart_adds" in top and "searches" in top, top


def test_params_and_metrics_are_flat_for_logging(fitted: pi.IntentTrainingResult) -> None:
    params = fitted.config.params()
    assert params["horizon_days"] == 7 and params["nthread"] >= 1
    assert all(isinstance(v, int | float | str) for v in params.values())
    flat = fitted.flat_metrics()
    assert flat["test_xgboost_roc_auc"] == fitted.test_metrics["xgboost"]["roc_auc"]
    assert flat["rows_train"] == 18000 and flat["best_iteration"] == fitted.best_iteration
    assert all(isinstance(v, float) for v in flat.values())


def test_write_intent_plots(fitted: pi.IntentTrainingResult, tmp_path: Path) -> None:
    paths = pi.write_intent_plots(fitted, tmp_path / "plots")
    names = ["roc_curve.png", "calibration_curve.png", "feature_importance_gain.png", "shap_summary.png"]
    assert [p.name for p in paths] == names
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


# ------------------------------------------------------------------------------------------ promotion rule


@pytest.mark.parametrize(
    ("challenger", "rfm", "champion", "tolerance", "promote", "reason"),
    [
        (0.80, 0.75, None, 0.005, True, "promoted: no champion yet"),
        (0.74, 0.75, None, 0.005, False, "does not beat the RFM baseline"),
        (0.75, 0.75, None, 0.005, False, "does not beat the RFM baseline"),  # a tie with RFM is not beating it
        (0.85, 0.75, 0.85, 0.005, True, ">= champion"),  # as good as the champion
        (0.846, 0.75, 0.85, 0.005, True, ">= champion"),  # within the tolerance
        (0.8449, 0.75, 0.85, 0.005, False, "the champion stays"),  # just outside it
        (0.85, 0.75, 0.85, 0.0, True, ">= champion"),
        (0.8499, 0.75, 0.85, 0.0, False, "the champion stays"),
        (0.90, 0.91, 0.85, 0.005, False, "does not beat the RFM baseline"),  # better than the champion, not RFM
    ],
)
def test_promotion_needs_the_rfm_baseline_beaten_and_the_champion_matched(
    challenger: float, rfm: float, champion: float | None, tolerance: float, promote: bool, reason: str
) -> None:
    from ml.intent_tracking import decide_promotion

    decision = decide_promotion(challenger, rfm, champion, None if champion is None else "3", tolerance)
    assert decision.promote is promote
    assert reason in decision.reason


# ----------------------------------------------------------------------------------------------- scoring


def test_scoring_in_batches_equals_scoring_everyone_at_once(
    fitted: pi.IntentTrainingResult, frame: pd.DataFrame, tmp_path: Path, monkeypatch
) -> None:
    """write_purchase_intent_scores reads `intent_scoring_population` a batch at a time: the probabilities are
    those of one in-memory pass over every user in it (predict_proba), whatever the batch size. It writes only
    what Python computes: no filter (who is scored is the dbt model's rule), no percentile or decile (the dbt
    model user_intent_scores ranks the scored users)."""
    import duckdb

    import ml.user_intent as user_intent
    from ml.intent_tracking import IntentChampion
    from ml.user_intent import PURCHASE_INTENT_SCORES_COLUMNS, write_purchase_intent_scores

    # the champion the registry would hand back (registering it: tests/integration/test_purchase_intent_on_demo.py)
    champion = IntentChampion(model=fitted.model, version="3", features=pi.FEATURES)
    monkeypatch.setattr(user_intent, "load_intent_champion", lambda uri: champion)
    latest = frame[frame["as_of_date"] == frame["as_of_date"].max()].drop(
        columns=["purchased_within_horizon", "label_window_end_date"]
    )
    con = duckdb.connect()
    con.register("latest", latest)
    # the population as the dbt model would select it (the rule and its unit tests: intent_scoring_population.yml);
    # a user outside it, still in user_features, is not scored
    con.execute("create table user_features as select * from latest")
    con.execute("create table intent_scoring_population as select * from latest where sessions_30d >= 1")
    assert con.execute("select count(*) from user_features where sessions_30d < 1").fetchone()[0] > 0
    now = datetime(2026, 11, 2, 6, 0, 0, 123, tzinfo=UTC)
    tables = []
    for batch_rows in (64, 10**9):  # several batches, then one
        written = write_purchase_intent_scores(con, tmp_path / "mlflow.db", now=now, batch_rows=batch_rows)
        tables.append(con.execute("select * from purchase_intent_scores order by user_key").df())
    pd.testing.assert_frame_equal(tables[0], tables[1])
    got = tables[0]
    assert list(got.columns) == [name for name, _ in PURCHASE_INTENT_SCORES_COLUMNS]

    users = latest[latest["sessions_30d"] >= 1].sort_values("user_key").reset_index(drop=True)
    expected = pi.predict_proba(fitted.model, users, pi.FEATURES)
    assert written.rows == len(users) == len(got) > 250 and written.model_version == "3"
    assert got["user_key"].tolist() == users["user_key"].tolist()
    np.testing.assert_allclose(got["probability"], expected, rtol=1e-12)
    assert written.mean_probability == pytest.approx(float(np.mean(expected)))
    assert set(got["model_version"]) == {"3"} and got["model_trained_at"].isna().all()  # trained_at unknown
    assert set(got["scored_at"]) == {pd.Timestamp("2026-11-02 06:00:00")}  # UTC, to the second


def test_an_empty_scoring_population_is_an_error_naming_the_table_and_the_var(
    fitted: pi.IntentTrainingResult, frame: pd.DataFrame
) -> None:
    """A champion and nobody to score (everyone quiet for 30 days, or a threshold set too high) fails the step
    with a message naming the dbt model and its var, rather than writing an empty table that reads as "no model"."""
    import duckdb

    from ml.intent_tracking import IntentChampion
    from ml.user_intent import score_users

    latest = frame[frame["as_of_date"] == frame["as_of_date"].max()]
    con = duckdb.connect()
    con.register("latest", latest)
    con.execute("create table intent_scoring_population as select * from latest where false")
    with pytest.raises(RuntimeError, match="intent_scoring_population is empty.*intent_scoring_min_sessions_30d"):
        score_users(con, IntentChampion(model=fitted.model, version="3", features=pi.FEATURES))


def test_a_training_set_over_the_cap_is_sampled_by_user(frame: pd.DataFrame) -> None:
    import duckdb

    from ml.user_intent import TRAINING_SET, read_training_set

    con = duckdb.connect()
    con.register("frame", frame)
    con.execute(f"create table {TRAINING_SET} as select * from frame")
    assert len(read_training_set(con)) == len(frame) == 24000  # under the cap: everything
    sample = read_training_set(con, max_rows=6000)
    assert 4800 <= len(sample) <= 7200  # about a quarter
    snapshots = frame.groupby("user_key").size()
    assert (sample.groupby("user_key").size() == snapshots[sample["user_key"].unique()]).all()  # whole users
    assert sample.equals(read_training_set(con, max_rows=6000))  # the same users every time
