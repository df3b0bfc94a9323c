{#- One row per user the purchase-intent champion scored (purchase_intent_scores, written by Python), ranked
    among the scored users: percentile is the share of them with a lower or equal probability (cume_dist),
    0-100, rounded to 2 decimals; decile 1 is the top 10 %, 10 the bottom. Empty while no model is champion. -#}

with

scores as (
    select * from {{ source('ml', 'purchase_intent_scores') }}
),

ranked as (
    select
        user_key,
        probability,
        model_version,
        model_trained_at,
        as_of_date,
        scored_at,
        cume_dist() over (order by probability) * 100 as percentile
    from scores
),

final as (
    select
        user_key,
        probability,
        round(percentile, 2) as percentile,
        cast(least(10, floor((100 - percentile) / 10) + 1) as int) as decile,
        model_version,
        model_trained_at,
        as_of_date,
        scored_at
    from ranked
)

select * from final
