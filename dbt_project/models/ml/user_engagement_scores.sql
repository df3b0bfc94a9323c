-- A 0-100 engagement score per user of user_features: the weighted mean of four parts, each 0..1 —
-- frequency (sessions in the past 7 days), duration (average engaged seconds per session), recency (days
-- since the last visit) and depth (page views per session) — with weights and caps as dbt vars.
{%- set weights = {
    'frequency': var('engagement_weight_frequency'),
    'duration': var('engagement_weight_duration'),
    'recency': var('engagement_weight_recency'),
    'depth': var('engagement_weight_depth'),
} %}
{%- set weight_sum = weights.values() | sum %}
with

features as (

    select * from {{ ref('user_features') }}

),

parts as (

    select
        user_key,
        as_of_date,
        least(cast(sessions_7d as double) / {{ var('engagement_frequency_cap') }}, 1.0) as frequency_part,
        least(
            cast(coalesce(avg_engaged_seconds, 0) as double) / {{ var('engagement_duration_cap_seconds') }}, 1.0
        ) as duration_part,
        greatest(
            1.0 - cast(days_since_last_visit as double) / {{ var('engagement_recency_window_days') }}, 0.0
        ) as recency_part,
        least(
            cast(page_views as double) / nullif(sessions_total, 0) / {{ var('engagement_depth_cap_pages') }}, 1.0
        ) as depth_part
    from features

),

final as (

    select
        user_key,
        as_of_date,
        frequency_part,
        duration_part,
        recency_part,
        coalesce(depth_part, 0.0) as depth_part,
        cast(round(100.0 * (
            {{ weights['frequency'] }} * frequency_part
            + {{ weights['duration'] }} * duration_part
            + {{ weights['recency'] }} * recency_part
            + {{ weights['depth'] }} * coalesce(depth_part, 0.0)
        ) / {{ weight_sum }}) as {{ dbt.type_bigint() }}) as engagement_score
    from parts

)

select * from final
