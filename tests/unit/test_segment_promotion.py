"""A segment refit replaces the champion only by the rule (ml/segment_promotion.py): the decision alone, the
comparison on the same users and sample, and the whole cadence against a real MLflow store (temporary SQLite)
on a DuckDB warehouse of synthetic users: the first fit becomes champion, a daily run assigns without
registering, a refit within the rule is promoted, a refit that changes most segment ids is refused."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from ml.segment_promotion import (
    MIN_ID_AGREEMENT,
    ChampionComparison,
    compare_with_champion,
    decide_segment_promotion,
)
from ml.segmentation import SegmentationConfig, fit_segments
from ml.synthetic import synthetic_user_features

CONFIG = SegmentationConfig(k_max=4, silhouette_sample=300, n_init=1)


def _comparison(new: float, old: float | None, agreement: float | None) -> ChampionComparison:
    return ChampionComparison(new, old, agreement, users=1000, sample_size=300)


def test_the_first_fit_becomes_champion() -> None:
    decision = decide_segment_promotion(None, None, tolerance=0.02)
    assert decision.promote and decision.reason == "promoted: the first fit, no champion yet: it becomes the champion"


@pytest.mark.parametrize(
    ("new", "old", "agreement", "promote", "said"),
    [
        (0.50, 0.50, 0.95, True, "promoted: silhouette 0.5000 >= champion v3's 0.5000 - tolerance 0.02"),
        (0.49, 0.50, 0.90, True, "and 90.0% of the users keep their segment id (at least 90%)"),
        (0.47, 0.50, 0.99, False, "not promoted: silhouette 0.4700 < champion v3's 0.5000 - tolerance 0.02"),
        (0.60, 0.50, 0.40, False, "not promoted: 40.0% of the users keep their segment id (at least 90% must)"),
        (0.40, 0.50, 0.40, False, "tolerance 0.02 and 40.0% of the users keep"),
    ],
)
def test_a_refit_is_promoted_only_when_silhouette_and_ids_hold(
    new: float, old: float, agreement: float, promote: bool, said: str
) -> None:
    decision = decide_segment_promotion(_comparison(new, old, agreement), "3", tolerance=0.02)
    assert decision.promote is promote
    assert said in decision.reason
    assert "on the same 1,000 users" in decision.reason
    if not promote:
        assert decision.reason.endswith("champion v3 stays")


def test_a_champion_that_cannot_assign_the_users_is_replaced() -> None:
    comparison = ChampionComparison(0.4, None, None, 10, 10, champion_cannot_assign="it reads x, which is gone")
    decision = decide_segment_promotion(comparison, "2", tolerance=0.0)
    assert decision.promote and "champion v2 cannot assign the current users (it reads x" in decision.reason


def test_the_comparison_uses_the_refits_own_sample_and_space() -> None:
    df, _ = synthetic_user_features(600, seed=3)
    result = fit_segments(df, CONFIG)
    # the refit compared with itself: the same silhouette as the fit computed, every user keeps its id
    itself = compare_with_champion(result, df, result.model)
    assert itself.champion_silhouette == pytest.approx(result.silhouette, abs=1e-9)
    assert (itself.id_agreement, itself.users, itself.sample_size) == (1.0, 600, 300)
    # a champion that reads a column user_features no longer has cannot be compared, and says which
    gone = compare_with_champion(result, df.drop(columns=["searches"]), result.model)
    assert gone.champion_silhouette is None and gone.id_agreement is None
    assert gone.champion_cannot_assign == "it reads searches, which user_features no longer has"


def _warehouse(users: int, seed: int) -> duckdb.DuckDBPyConnection:
    df, _ = synthetic_user_features(users, seed=seed)
    con = duckdb.connect()
    con.register("planted", df)
    con.execute("create table user_features as select * from planted")
    con.unregister("planted")
    return con


def test_refits_run_on_demand_and_replace_the_champion_only_by_the_rule(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from ml.tracking import REGISTERED_MODEL, alias_version, tracking_uri
    from ml.user_segments import ChampionCannotAssign, update_segment_model, write_segment_assignments

    store = tmp_path / "mlflow.db"
    con = _warehouse(600, seed=5)
    client = MlflowClient(tracking_uri=tracking_uri(store), registry_uri=tracking_uri(store))

    def versions() -> int:
        return len(client.search_model_versions(f"name = '{REGISTERED_MODEL}'"))

    def tags(version: str) -> dict[str, str]:
        return client.get_model_version(REGISTERED_MODEL, version).tags

    # a daily run on a fresh home: no champion, so the first fit is made and becomes champion
    first = update_segment_model(con, store, config=CONFIG, refit=False)
    assert first.decision.status == "trained" and first.decision.champion_version == "1"
    assert first.fitted is not None and first.fitted.promoted
    assert tags("1")["decision"] == "promoted" and "the first fit" in tags("1")["decision_reason"]
    assert client.get_run(tags("1")["run_id"]).data.tags["pulse.decision"] == "promoted"

    # the next daily runs assign with the champion: nothing fitted, nothing registered, whatever the data does
    con.execute(
        "update user_features set page_views = page_views + 3 where user_key in "
        "(select user_key from user_features order by user_key limit 5)"
    )
    daily = update_segment_model(con, store, config=CONFIG, refit=False)
    assert (daily.decision.status, daily.fitted, daily.decision.champion_version) == ("unchanged", None, "1")
    assert daily.decision.reason.startswith("assigning with champion v1: segments are refitted by the job ")
    assert versions() == 1
    assert write_segment_assignments(con, store).model_version == "1"

    # a refit (the weekly job) on slightly changed data: same segments, promoted by the rule
    within = update_segment_model(con, store, config=CONFIG, refit=True)
    assert within.fitted is not None and within.fitted.promoted, within.decision.reason
    assert within.fitted.id_agreement_vs_champion is not None
    assert within.fitted.id_agreement_vs_champion >= MIN_ID_AGREEMENT
    assert within.decision.champion_version == "2" and alias_version(client, REGISTERED_MODEL) == "2"
    assert tags("2")["decision"] == "promoted" and tags("2")["decision_reason"].startswith("promoted: silhouette")
    assert write_segment_assignments(con, store).model_version == "2"

    # a refit that changes most segment ids (another feature set: the searches alone split users otherwise):
    # registered as challenger, not promoted; the champion keeps assigning
    other = SegmentationConfig(features=("searches_per_session",), k_max=4, silhouette_sample=300, n_init=1)
    refused = update_segment_model(con, store, config=other, refit=True)
    assert refused.fitted is not None and not refused.fitted.promoted
    assert refused.fitted.id_agreement_vs_champion is not None
    assert refused.fitted.id_agreement_vs_champion < MIN_ID_AGREEMENT
    assert (refused.decision.status, refused.decision.model_version, refused.decision.champion_version) == (
        "trained",
        "3",
        "2",
    )
    assert "keep their segment id (at least 90% must)" in refused.decision.reason
    assert tags("3")["decision"] == "not_promoted" and tags("3")["decision_reason"].endswith("champion v2 stays")
    assert alias_version(client, REGISTERED_MODEL) == "2"
    assert alias_version(client, REGISTERED_MODEL, "challenger") == "3"
    assert write_segment_assignments(con, store).model_version == "2"

    # the champion reads a column user_features lost: the daily run fails, naming it and the refit job
    con.execute("alter table user_features drop column searches")
    with pytest.raises(ChampionCannotAssign, match="champion v2 reads searches, which user_features no longer has"):
        update_segment_model(con, store, config=CONFIG, refit=False)
    assert versions() == 3


def test_only_the_weekly_refit_job_refits_the_segments() -> None:
    from orchestration.definitions import defs
    from orchestration.ml.assets import SegmentModelConfig

    definitions = defs()
    assert SegmentModelConfig().refit is False  # the daily job, the landing sensor's runs, `pulse materialize`
    refit = {"ops": {"segment_model": {"config": {"refit": True}}}}
    assert definitions.resolve_job_def("segment_refit").run_config == refit
    for job in ("daily_pipeline", "all_assets"):
        assert definitions.resolve_job_def(job).run_config is None
    [schedule] = [s for s in definitions.schedules or [] if s.name == "weekly_segment_refit"]
    assert schedule.job_name == "segment_refit"
    daily = definitions.resolve_job_def("daily_pipeline").asset_layer.executable_asset_keys
    assert {"segment_model", "segment_assignments", "segment_names", "user_segments"} <= {
        key.to_user_string() for key in daily
    }
    refit_job = definitions.resolve_job_def("segment_refit").asset_layer.executable_asset_keys
    assert {"segment_assignments", "segment_names", "user_segments", "segment_profiles"} <= {
        key.to_user_string() for key in refit_job
    }


def test_the_tolerance_setting_and_the_ml_default_agree(tmp_path: Path) -> None:
    from ml.user_segments import DEFAULT_PROMOTION_TOLERANCE
    from pulse.core.settings import SETTINGS, load_settings

    [setting] = [s for s in SETTINGS if s.name == "segment_promotion_tolerance"]
    assert setting.default == DEFAULT_PROMOTION_TOLERANCE and setting.group == "segments"
    with pytest.raises(ValueError, match="PULSE_SEGMENT_PROMOTION_TOLERANCE=.-0.1.: expected a number from 0 to 1"):
        load_settings(environ={"PULSE_HOME": str(tmp_path), "PULSE_SEGMENT_PROMOTION_TOLERANCE": "-0.1"})
    tolerance = load_settings(environ={"PULSE_HOME": str(tmp_path), "PULSE_SEGMENT_PROMOTION_TOLERANCE": "0.05"})
    assert tolerance.segment_promotion_tolerance == 0.05
