"""The purchase-intent settings read from the environment: defaults, overrides, and errors naming the variable."""

import dagster as dg
import pytest

from orchestration.ml.intent import intent_config, promotion_tolerance

VARS = (
    "PULSE_INTENT_MIN_POSITIVES",
    "PULSE_INTENT_MIN_NEGATIVES",
    "PULSE_INTENT_TEST_SNAPSHOTS",
    "PULSE_INTENT_VALIDATION_SNAPSHOTS",
    "PULSE_INTENT_PROMOTION_TOLERANCE",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in VARS:
        monkeypatch.delenv(var, raising=False)


def test_defaults_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    config = intent_config()
    assert (config.min_positives, config.min_negatives, config.test_snapshots) == (100, 100, 1)
    assert promotion_tolerance() == 0.005
    monkeypatch.setenv("PULSE_INTENT_MIN_POSITIVES", "40")
    monkeypatch.setenv("PULSE_INTENT_TEST_SNAPSHOTS", "2")
    monkeypatch.setenv("PULSE_INTENT_PROMOTION_TOLERANCE", "0")
    config = intent_config()
    assert (config.min_positives, config.min_negatives, config.test_snapshots) == (40, 100, 2)
    assert promotion_tolerance() == 0.0


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("PULSE_INTENT_MIN_POSITIVES", "many", "PULSE_INTENT_MIN_POSITIVES='many' is not a whole number"),
        ("PULSE_INTENT_MIN_NEGATIVES", "0", "PULSE_INTENT_MIN_NEGATIVES=0: min_positives and min_negatives"),
        ("PULSE_INTENT_VALIDATION_SNAPSHOTS", "0", "PULSE_INTENT_VALIDATION_SNAPSHOTS=0: test_snapshots and"),
    ],
)
def test_a_bad_value_fails_naming_the_variable(monkeypatch: pytest.MonkeyPatch, var: str, value: str, message: str):
    monkeypatch.setenv(var, value)
    with pytest.raises(dg.Failure) as raised:
        intent_config()
    assert message in raised.value.description


def test_a_bad_tolerance_fails_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_INTENT_PROMOTION_TOLERANCE", "tiny")
    with pytest.raises(dg.Failure, match="PULSE_INTENT_PROMOTION_TOLERANCE='tiny' is not a number"):
        promotion_tolerance()
