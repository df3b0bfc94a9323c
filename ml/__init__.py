"""Plain, typed Python for the models pulse learns (segments, user types, purchase intent).

Nothing here imports Dagster or reads the environment at import time; assets in orchestration/ are thin
wrappers. Filled in by the segmentation and intent-model issues.
"""
