-- One row per user per snapshot whose label window is complete: the snapshot's features and the label
-- "purchased within purchase_horizon_days from the snapshot date" (a purchase event on a UTC day in
-- [as_of_date, as_of_date + horizon)). A window is complete when it ends on or before the day after the latest
-- event date: the latest snapshot, whose future has not happened yet, is never in here.
{% set horizon_days = var('purchase_horizon_days') | int %}
with

snapshots as (

    select * from {{ ref('user_feature_snapshots') }}

),

user_daily as (

    select * from {{ ref('fct_user_daily') }}

),

data_end as (

    select cast({{ dbt.dateadd('day', 1, 'max(activity_date)') }} as date) as data_end_date
    from user_daily

),

complete_snapshots as (

    select
        snapshots.*,
        cast({{ dbt.dateadd('day', horizon_days, 'snapshots.as_of_date') }} as date) as label_window_end_date
    from snapshots
    cross join data_end
    where {{ dbt.dateadd('day', horizon_days, 'snapshots.as_of_date') }} <= data_end.data_end_date

),

purchase_days as (

    select
        user_key,
        activity_date
    from user_daily
    where purchases > 0

),

labels as (

    select
        complete_snapshots.user_key,
        complete_snapshots.as_of_date,
        count(*) as purchase_days_in_window
    from complete_snapshots
    inner join purchase_days
        on
            complete_snapshots.user_key = purchase_days.user_key
            and complete_snapshots.as_of_date <= purchase_days.activity_date
            and complete_snapshots.label_window_end_date > purchase_days.activity_date
    group by complete_snapshots.user_key, complete_snapshots.as_of_date

),

final as (

    select
        complete_snapshots.*,
        labels.user_key is not null as purchased_within_horizon
    from complete_snapshots
    left join labels
        on
            complete_snapshots.user_key = labels.user_key
            and complete_snapshots.as_of_date = labels.as_of_date

)

select * from final
