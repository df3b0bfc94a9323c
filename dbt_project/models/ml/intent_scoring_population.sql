-- Who the purchase intent model scores: the users of the latest snapshot (user_features) with at least
-- intent_scoring_min_sessions_30d sessions in the 30 days before it. A user gone quiet for a month is not
-- scored (nor ranked, nor in the high_intent audience). Python reads this table and writes only the
-- probabilities (purchase_intent_scores).
with

features as (

    select * from {{ ref('user_features') }}

),

final as (

    select *
    from features
    where sessions_30d >= {{ var('intent_scoring_min_sessions_30d') }}

)

select * from final
