"""The purchase-intent settings through the settings door: defaults, settings.toml, the environment, --var, and
errors naming where a bad value was set."""

from pathlib import Path

import pytest

from orchestration.ml.intent import intent_config
from pulse.core.settings import SettingsError, load_settings


def _settings(home: Path, environ: dict[str, str] | None = None, overrides: dict[str, str] | None = None):
    return load_settings({"PULSE_HOME": str(home), **(environ or {})}, overrides)


def test_defaults_and_overrides(tmp_path: Path) -> None:
    config, tolerance = intent_config(_settings(tmp_path))
    assert (config.min_positives, config.min_negatives, config.test_snapshots, config.test_as_of) == (100, 100, 1, None)
    assert tolerance == 0.005
    (tmp_path / "settings.toml").write_text("intent_min_positives = 30\nintent_promotion_tolerance = 0.01\n")
    environ = {"PULSE_INTENT_MIN_POSITIVES": "40", "PULSE_INTENT_TEST_SNAPSHOTS": "2"}
    config, tolerance = intent_config(_settings(tmp_path, environ, {"intent_test_as_of": "2026-10-01"}))
    assert (config.min_positives, config.min_negatives, config.test_snapshots) == (40, 100, 2)  # env over the file
    assert tolerance == 0.01 and str(config.test_as_of) == "2026-10-01"
    config, _ = intent_config(_settings(tmp_path, overrides={"intent_min_positives": "5"}))  # --var over both
    assert config.min_positives == 5


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("PULSE_INTENT_MIN_POSITIVES", "many", "PULSE_INTENT_MIN_POSITIVES='many': expected a whole number"),
        ("PULSE_INTENT_MIN_NEGATIVES", "0", "PULSE_INTENT_MIN_NEGATIVES='0': expected a whole number >= 1"),
        ("PULSE_INTENT_VALIDATION_SNAPSHOTS", "0", "PULSE_INTENT_VALIDATION_SNAPSHOTS='0': expected a whole number"),
        ("PULSE_INTENT_PROMOTION_TOLERANCE", "tiny", "PULSE_INTENT_PROMOTION_TOLERANCE='tiny': expected a number"),
    ],
)
def test_a_bad_value_fails_naming_the_variable(tmp_path: Path, var: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        _settings(tmp_path, {var: value})
    assert message in str(raised.value)


def test_a_bad_value_in_the_file_names_the_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text('intent_min_negatives = "lots"\n')
    with pytest.raises(SettingsError, match=r"settings.toml: intent_min_negatives = 'lots': expected a whole number"):
        _settings(tmp_path)
