"""Not a test: writes the runs mlflow.test.mjs opens. Trains the purchase-intent model on a small synthetic
training set and fits segments on synthetic features, through pulse's own ml/ functions (no Dagster, no
warehouse), into the MLflow store of $PULSE_HOME, and prints what was logged as JSON."""

from __future__ import annotations

import json

from ml.intent_synthetic import synthetic_training_frame
from ml.intent_tracking import log_intent_training
from ml.purchase_intent import IntentConfig, train_purchase_intent
from ml.segmentation import SegmentationConfig, fit_segments
from ml.synthetic import synthetic_user_features
from ml.tracking import log_segmentation_run, tracking_uri, using_store
from pulse.core.settings import paths_from_env


def main() -> None:
    paths = paths_from_env().ensure()
    uri = tracking_uri(paths.mlflow_db)
    intent = train_purchase_intent(synthetic_training_frame(1200, 6, seed=3), IntentConfig())
    registration = log_intent_training(intent, uri)
    features, _ = synthetic_user_features(800, seed=5)
    segments = log_segmentation_run(
        fit_segments(features, SegmentationConfig(k_max=4, silhouette_sample=400)), features, uri
    )
    with using_store(uri):
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        parent = client.get_run(registration.run_id)
        print(
            json.dumps(
                {
                    "intent_experiment_id": registration.experiment_id,
                    "intent_run_name": parent.info.run_name,
                    "intent_metrics": parent.data.metrics,
                    "segments_experiment_id": segments.experiment_id,
                    "segments_run_name": client.get_run(segments.run_id).info.run_name,
                }
            )
        )


if __name__ == "__main__":
    main()
