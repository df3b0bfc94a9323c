-- Suite fct_user_daily (blocking): one row per (user_key, activity_date), keys present, at least one event,
-- and every user known to dim_users. Scans fct_user_daily (users x active days) and dim_users.
with

user_days as (

    select
        count(*) as user_days,
        count_if(user_key is null) as null_user_keys,
        count_if(activity_date is null) as null_activity_dates,
        count_if(coalesce(events, 0) < 1) as days_without_events
    from fct_user_daily

),

distinct_user_days as (

    select count(*) as n
    from (select distinct user_key, activity_date from fct_user_daily) as keys

),

unknown_users as (

    select count(distinct daily.user_key) as n
    from fct_user_daily as daily
    left join dim_users as users on daily.user_key = users.user_key
    where daily.user_key is not null and users.user_key is null

)

select
    cast(user_days.user_days as bigint) as user_days,
    cast(user_days.null_user_keys as bigint) as null_user_keys,
    cast(user_days.null_activity_dates as bigint) as null_activity_dates,
    cast(user_days.user_days - distinct_user_days.n as bigint) as duplicate_user_days,
    cast(user_days.days_without_events as bigint) as days_without_events,
    cast(unknown_users.n as bigint) as users_missing_from_dim_users
from user_days, distinct_user_days, unknown_users
