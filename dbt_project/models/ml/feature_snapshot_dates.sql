-- Every feature snapshot date the history allows, and whether it is kept. The latest is var features_as_of
-- (default: the day after the latest event date); earlier ones follow every feature_snapshot_interval_days
-- before it, back to the first date with at least one interval of history before it. The newest
-- feature_snapshots_max are kept (user_feature_snapshots computes those); the older ones stay listed with
-- is_kept false, so a run reports how many dates were dropped and from when instead of losing them silently.
{% set features_as_of = var('features_as_of', none) %}
{% set interval_days = var('feature_snapshot_interval_days') | int %}
with

user_daily as (

    select * from {{ ref('fct_user_daily') }}

),

bounds as (

    select
        {% if features_as_of %}
            cast('{{ features_as_of }}' as date) as latest_date,
        {% else %}
            cast({{ dbt.dateadd('day', 1, 'max(activity_date)') }} as date) as latest_date,
        {% endif %}
        min(activity_date) as first_activity_date
    from user_daily

),

-- Every day from the first activity (or the latest date, when features_as_of is earlier) to the latest date.
calendar as (

    select
        {{ pulse_explode_dates('least(first_activity_date, latest_date)', 'latest_date') }} as as_of_date,
        latest_date,
        first_activity_date
    from bounds

),

numbered as (

    select
        as_of_date,
        first_activity_date,
        {{ dbt.datediff('as_of_date', 'latest_date', 'day') }} as days_before_latest
    from calendar

),

-- The latest date always; an earlier one on the interval, with at least one interval of history before it.
snapshot_dates as (

    select
        as_of_date,
        cast(days_before_latest / {{ interval_days }} as {{ dbt.type_int() }}) + 1 as snapshot_number
    from numbered
    where
        days_before_latest % {{ interval_days }} = 0
        and (
            days_before_latest = 0
            or {{ dbt.dateadd('day', -1 * interval_days, 'as_of_date') }} >= first_activity_date
        )

),

final as (

    select
        as_of_date,
        snapshot_number,
        snapshot_number <= {{ var('feature_snapshots_max') }} as is_kept
    from snapshot_dates

)

select * from final
