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


def test_the_empty_ml_source_tables_have_the_columns_python_writes() -> None:
    """macros/ml_sources.sql creates the tables the Python model steps write when they are missing: with the
    columns, in the order, that ml/ declares for them (a model over an empty table reads what a written one has)."""
    from ml.decisions import DECISION_COLUMNS
    from ml.user_intent import PURCHASE_INTENT_SCORES_COLUMNS
    from ml.user_segments import SEGMENT_ASSIGNMENTS_COLUMNS, SEGMENT_NAMES_COLUMNS

    macro = (MACROS.parent / "ml_sources.sql").read_text()
    declared = {
        "segment_assignments": SEGMENT_ASSIGNMENTS_COLUMNS,
        "segment_names": SEGMENT_NAMES_COLUMNS,
        "purchase_intent_scores": PURCHASE_INTENT_SCORES_COLUMNS,
        "model_decisions": DECISION_COLUMNS,
    }
    tables = dict(re.findall(r"'(\w+)': \[(.*?)\]", macro, re.DOTALL))
    assert set(tables) == set(declared)
    for table, columns in declared.items():
        assert re.findall(r"\('(\w+)',", tables[table]) == [name for name, _ in columns], table
