"""What the dbt models after the ML steps (dbt_project/models/profiles, models/audiences) share with Python."""

import ast
import re
from pathlib import Path

from ml.features import USER_FEATURE_COLUMNS

MACROS = Path(__file__).resolve().parents[2] / "dbt_project" / "macros" / "profiles.sql"


def test_segment_profiles_describe_the_features_python_defines() -> None:
    macro = MACROS.read_text().split("macro pulse_segment_profile_features()", 1)[1]
    listed = re.search(r"return\((\[.*?\])\)", macro, re.DOTALL)
    assert listed is not None, f"{MACROS}: pulse_segment_profile_features() returns no list"
    assert tuple(ast.literal_eval(listed.group(1))) == USER_FEATURE_COLUMNS
