"""What the dbt models after the ML steps (dbt_project/models/profiles, models/audiences) share with Python."""

from pathlib import Path

import yaml

from ml.features import USER_FEATURE_COLUMNS

PROJECT = Path(__file__).resolve().parents[2] / "dbt_project" / "dbt_project.yml"


def test_segment_profiles_describe_the_features_python_defines() -> None:
    variables = yaml.safe_load(PROJECT.read_text())["vars"]["pulse"]
    assert tuple(variables["segment_profile_features"]) == USER_FEATURE_COLUMNS
