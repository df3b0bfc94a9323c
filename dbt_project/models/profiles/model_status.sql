{#- One row per model: whether the profiles' model fields are current, carried from an earlier champion, or
    empty, and why. From the models' decisions (the latest per step) and the tables holding their values:
      current   the values come from the champion, and the latest training did not refuse;
      carried   the values come from an earlier champion: the latest training refused;
      refused   no values: the latest training refused and no earlier version is champion;
      no_model  no values: no version is champion yet (never trained, or never promoted). -#}
{%- set models = [
    ('segments', 'segment_model', ref('user_segments')),
    ('purchase_intent', 'purchase_intent_model', ref('user_intent_scores')),
] -%}
{%- set trained = "coalesce(', trained ' || cast(model_trained_at as " ~ dbt.type_string() ~ ") || ' UTC', '')" -%}
{%- set refused_on = "'training refused on ' || cast(cast(decided_at as date) as " ~ dbt.type_string()
    ~ ") || ': ' || decision_reason" -%}

with

ranked_decisions as (
    select
        model,
        status,
        reason,
        decided_at,
        row_number() over (partition by model order by decided_at desc) as recency
    from {{ source('ml', 'model_decisions') }}
),

latest_decisions as (
    select
        model,
        status,
        reason,
        decided_at
    from ranked_decisions
    where recency = 1
),

model_values as (
    {%- for name, step, relation in models %}
        select
            '{{ name }}' as model,  -- noqa: RF04
            '{{ step }}' as step,
            count(*) as users,  -- noqa: RF04
            max(model_version) as model_version,
            max(model_trained_at) as model_trained_at
        from {{ relation }}
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}
),

joined as (
    select
        model_values.model,
        model_values.users,
        model_values.model_version,
        model_values.model_trained_at,
        latest_decisions.status as decision,
        latest_decisions.reason as decision_reason,
        latest_decisions.decided_at
    from model_values
    left join latest_decisions on model_values.step = latest_decisions.model
),

final as (
    select
        model,
        case
            when users > 0 and decision = 'refused' then 'carried'
            when users > 0 then 'current'
            when decision = 'refused' then 'refused'
            else 'no_model'
        end as status,
        case
            when users > 0 and decision = 'refused'
                then {{ refused_on }} || '; values carried from champion version ' || model_version || {{ trained }}
            when users > 0
                then
                    'from champion version ' || model_version || {{ trained }}
                    || coalesce('; latest training: ' || decision_reason, '')
            when decision = 'refused'
                then {{ refused_on }} || '; no earlier version is champion, so the values are empty'
            else 'no version is champion yet' || coalesce('; latest training: ' || decision_reason, '')
        end as reason,
        model_version,
        model_trained_at,
        decision,
        decision_reason,
        decided_at
    from joined
)

select * from final
