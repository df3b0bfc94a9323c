{#- The tables the Python model steps write (models/profiles/_ml_sources.yml), created empty when missing, so
    that the `after_ml` models build on a warehouse no ML step has written yet: no champion, no decision.
    Their columns are those the Python steps write (ml/user_segments.py SEGMENT_ASSIGNMENTS_COLUMNS and
    SEGMENT_NAMES_COLUMNS, ml/user_intent.py PURCHASE_INTENT_SCORES_COLUMNS, ml/decisions.py DECISION_COLUMNS). -#}
{% macro pulse_ml_sources_setup() %}
    {% set s = dbt.type_string() %}
    {% set ts = dbt.type_timestamp() %}
    {% set tables = {
        'segment_assignments': [
            ('user_key', s), ('segment_id', 'bigint'), ('distance_to_centroid', 'double'), ('as_of_date', 'date'),
            ('model_version', s), ('model_trained_at', ts)],
        'segment_names': [('model_version', s), ('segment_id', 'bigint'), ('segment_name', s)],
        'purchase_intent_scores': [
            ('user_key', s), ('probability', 'double'), ('as_of_date', 'date'), ('model_version', s),
            ('model_trained_at', ts), ('scored_at', ts)],
        'model_decisions': [
            ('model', s), ('status', s), ('reason', s), ('model_version', s), ('champion_version', s),
            ('input_fingerprint', s), ('run_id', s), ('decided_at', ts)],
    } %}
    {% for table, columns in tables.items() %}
        {% set ddl = [] %}
        {% for name, kind in columns %}{% do ddl.append(name ~ ' ' ~ kind) %}{% endfor %}
        {% do run_query(
            "create table if not exists " ~ target.schema ~ "." ~ table ~ " (" ~ ddl | join(', ') ~ ") "
            ~ pulse_table_format()
        ) %}
    {% endfor %}
    select 1
{% endmacro %}
