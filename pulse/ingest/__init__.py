"""Landing files -> ``raw.events`` and ``raw.events_quarantine`` (``raw_events``), the landing days the
partitions cover (``landing``), the quarantine report (``quarantine``), the watermark of what the models and
the published snapshot cover (``watermark``), the last dbt batch (``batches``) and the raw tables' Parquet
export for Spark (``spark_raw``)."""
