"""MLflow tags that pulse's tracking code (ml/tracking.py) writes and pulse's MLflow UI (pulse/ui/mlflow_ui.py)
reads: here, so that ``ml`` depends on pulse's core only, not on a UI package."""

from __future__ import annotations

__all__ = ["TABLE_METRICS_TAG"]

# An experiment tag pulse's tracking code sets: the metrics its runs table shows by default, comma-separated.
TABLE_METRICS_TAG = "pulse.runs_table_metrics"
