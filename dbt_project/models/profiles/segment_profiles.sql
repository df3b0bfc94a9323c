{#- Per segment of the champion's assignments (user_segments: what Python assigned, joined with the names and
    user types): its size and share, the user-type mix, the share of its users who ever bought, and for every feature (macro
    pulse_segment_profile_features(): the user_features columns ml/features.py lists) its mean and its z-score
    against all users ((segment mean - population mean) / population std): what a marketer reads to know a
    segment. Empty while no version is champion. -#}
{%- set features = pulse_segment_profile_features() -%}

with

segments as (
    select * from {{ ref('user_segments') }}
),

features as (
    select * from {{ ref('user_features') }}
),

per_segment as (
    select
        segments.segment_id,
        segments.segment_name,
        count(*) as users,  -- noqa: RF04
        count_if(segments.user_type = 'Active') as active_users,
        count_if(segments.user_type = 'Passive') as passive_users,
        count_if(segments.user_type = 'Intent-driven') as intent_driven_users,
        {%- for column in features %}
            avg(features.{{ column }}) as {{ column }}_mean,
        {%- endfor %}
        avg(cast(case when features.purchases > 0 then 1 else 0 end as double)) as bought_share
    from segments
    inner join features on segments.user_key = features.user_key
    group by segments.segment_id, segments.segment_name
),

population as (
    select
        {%- for column in features %}
            avg({{ column }}) as {{ column }}_mean,
            stddev_pop({{ column }}) as {{ column }}_std,
        {%- endfor %}
        count(*) as all_users
    from features
),

assignment as (
    select
        min(as_of_date) as as_of_date,
        min(model_version) as model_version
    from segments
),

final as (
    select
        per_segment.segment_id,
        per_segment.segment_name,
        per_segment.users,
        per_segment.active_users,
        per_segment.passive_users,
        per_segment.intent_driven_users,
        per_segment.bought_share,
        {%- for column in features %}
            per_segment.{{ column }}_mean,
        {%- endfor %}
        per_segment.users / population.all_users as share,  -- noqa: RF04
        {%- for column in features %}
            (per_segment.{{ column }}_mean - population.{{ column }}_mean)
            / nullif(population.{{ column }}_std, 0) as {{ column }}_z,
        {%- endfor %}
        assignment.as_of_date,
        assignment.model_version
    from per_segment
    cross join population
    cross join assignment
)

select * from final
