"""Plain, typed Python for the models pulse learns (segments, user types, purchase intent).

Nothing here imports Dagster or reads the environment at import time; assets in orchestration/ are thin
wrappers. Every function takes data and settings as arguments and is callable from a script or a test.

Segmentation (docs/segmentation.md):
  ml.segmentation  features -> transform -> K-Means for each k, silhouette on a bounded sample, Ward check;
                   SegmentModel (small, JSON) assigns any later frame
  ml.naming        plain segment names from centroid z-scores; the per-segment profile table
  ml.matching      Hungarian matching to the previous champion so ids and names stay put; ARI helpers
  ml.tracking      the only MLflow importer (lazily): runs, the registered pyfunc, the ``champion`` alias
  ml.synthetic     user_features frames with the demo's planted personas, for tests and benchmarks
"""
