-- One rule-based type per user of user_features: the first rule that matches wins (the list below is the
-- precedence order); a user matching none is Passive. user_type_rule is the condition that fired, as written
-- in SQL with the thresholds (dbt vars) filled in.
{%- set rules = [
    ('Intent-driven', 'cart_adds >= ' ~ var('intent_min_cart_adds') ~ ' and purchases = 0'),
    ('Intent-driven', 'searches >= ' ~ var('intent_min_searches')
        ~ ' and searches_per_session >= ' ~ var('intent_min_searches_per_session')
        ~ ' and product_views >= ' ~ var('intent_min_product_views')),
    ('Active', 'sessions_per_active_day >= ' ~ var('active_min_sessions_per_active_day')
        ~ ' and sessions_7d >= ' ~ var('active_min_sessions_7d')),
    ('Active', 'sessions_30d >= ' ~ var('active_min_sessions_30d')
        ~ ' and avg_engaged_seconds >= ' ~ var('active_min_avg_engaged_seconds')),
    ('Passive', 'sessions_30d <= ' ~ var('passive_max_sessions_30d')),
    ('Passive', 'avg_session_seconds <= ' ~ var('passive_max_avg_session_seconds')),
] %}
{%- set fallback_type = 'Passive' %}
{%- set fallback_rule = 'fallback: no rule matched' %}
with

features as (

    select * from {{ ref('user_features') }}

),

signals as (

    select
        user_key,
        as_of_date,
        sessions_7d,
        sessions_30d,
        sessions_per_active_day,
        avg_session_seconds,
        avg_engaged_seconds,
        product_views,
        searches,
        cart_adds,
        purchases,
        cast(searches as double) / nullif(sessions_total, 0) as searches_per_session
    from features

),

final as (

    select
        user_key,
        as_of_date,
        case
            {%- for rule_type, condition in rules %}
                when {{ condition }} then '{{ rule_type }}'
            {%- endfor %}
            else '{{ fallback_type }}'
        end as user_type,
        case
            {%- for rule_type, condition in rules %}
                when {{ condition }} then '{{ condition }}'
            {%- endfor %}
            else '{{ fallback_rule }}'
        end as user_type_rule
    from signals

)

select * from final
