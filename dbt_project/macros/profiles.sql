{#- When the profiles were built: the engine's clock, to the second, in UTC; `--vars
    '{profiles_updated_at: "YYYY-MM-DD HH:MM:SS"}'` stamps a given instant instead (a replay, a test comparing
    two builds). Not a setting (no entry in dbt_project.yml / pulse/core/settings.py): a run never needs it. -#}
{% macro pulse_profiles_updated_at() %}
    {%- set stamp = var('profiles_updated_at', none) -%}
    {%- if stamp -%}
        cast('{{ stamp }}' as {{ dbt.type_timestamp() }})
    {%- else -%}
        cast({{ dbt.date_trunc('second', dbt.current_timestamp()) }} as {{ dbt.type_timestamp() }})
    {%- endif -%}
{% endmacro %}


{#- The features whose mean and z-score segment_profiles shows for each segment: ml/features.py's
    USER_FEATURE_COLUMNS (tests/unit/test_activation_models.py checks they agree). -#}
{% macro pulse_segment_profile_features() %}
    {{ return([
        'days_since_last_visit',
        'days_since_first_visit',
        'sessions_7d',
        'sessions_30d',
        'sessions_total',
        'active_days_30d',
        'sessions_per_active_day',
        'avg_session_seconds',
        'avg_engaged_seconds',
        'avg_scroll_depth_pct',
        'page_views',
        'product_views',
        'categories_viewed',
        'searches',
        'cart_adds',
        'purchases',
        'revenue',
        'avg_order_value',
        'cart_abandonment_rate',
        'days_since_last_purchase',
        'bounce_rate',
        'engaged_session_rate',
    ]) }}
{% endmacro %}
