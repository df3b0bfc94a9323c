"""Plain, typed Python for the models pulse learns (segments, user types, purchase intent).

Nothing here imports Dagster or reads the environment at import time; assets in orchestration/ are thin
wrappers. Every function takes data and settings as arguments and is callable from a script or a test.

Segmentation (docs/segmentation.md):
  ml.segmentation  features -> transform -> K-Means for each k, silhouette on a bounded sample, Ward check;
                   SegmentModel (small, JSON) assigns any later frame
  ml.naming        plain segment names from centroid z-scores; the per-segment profile table
  ml.matching      Hungarian matching to the previous champion so ids and names stay put; ARI helpers
  ml.tracking      MLflow (imported lazily): runs, the registered pyfunc, the ``champion`` alias, store helpers
  ml.personas      the demo's five personas, defined once (pulse.demo.generator, ml.synthetic, ml.intent_synthetic)
  ml.synthetic     user_features frames with the demo's planted personas, for tests and benchmarks
  ml.user_segments fit and register from the warehouse, write segment_assignments and segment_names (the dbt
                   models user_segments and segment_profiles join and describe them)

Purchase intent (docs/purchase-intent.md):
  ml.purchase_intent   temporal split, sufficiency gate, XGBoost vs RFM logistic vs recency, metrics, plots
  ml.intent_synthetic  training frames with a planted non-linear signal, for tests and the benchmark
  ml.intent_tracking   MLflow runs side by side, the registered model, challenger / champion promotion
  ml.user_intent       train and register from the warehouse, score the latest snapshot (purchase_intent_scores;
                       the dbt model user_intent_scores ranks them)

Both model steps (ml.decisions): refit only when the inputs' fingerprint changed (``unchanged``: kept), refuse
with a reason when the data cannot support the model (``refused``), and record each decision in the warehouse
(`model_decisions`).
"""
