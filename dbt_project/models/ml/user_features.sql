-- The latest snapshot of user_feature_snapshots: one row per user as of features_as_of (default: the day
-- after the latest event date). Computed there once, with the earlier snapshots the intent model trains on.
with

snapshots as (

    select * from {{ ref('user_feature_snapshots') }}

),

latest as (

    select max(as_of_date) as as_of_date
    from snapshots

),

final as (

    select snapshots.*
    from snapshots
    inner join latest on snapshots.as_of_date = latest.as_of_date

)

select * from final
