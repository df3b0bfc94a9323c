-- Suite fct_user_daily_drift (warning): each day's event volume and purchase rate (share of active users
-- who bought) against the previous 7 days. Volume: z = (value - trailing mean) / trailing std, the std
-- floored at 5 % of the mean so that a flat history does not make every small change an alarm. Purchase
-- rate: the day's own sampling noise is added, z = (p - mean) / sqrt(std^2 + mean * (1 - mean) / users):
-- with a few hundred active users a day, 7 trailing rates alone understate how much a rate can move
-- (on the 5,000-user demo the trailing std alone gave |z| = 9.3 on an ordinary day, this gives 3.4). z is null (not
-- evaluated) until 7 days of history exist. The band itself (|z| <= 3, ...) is in the suite file.
-- Evaluated days: event days that became complete in this run. An event day is complete once the next
-- landing day is in (late events land the day after), so a run over landing days [$since, latest]
-- evaluates event days [$since - 1, latest - 1]; $since null = the latest complete day only.
-- Days without any activity are in the series as zeros (a day that lost all its events is drift too).
-- Cost: one aggregation of fct_user_daily by day (users x active days rows), then tens of rows.
with

daily as (

    select
        activity_date as day,
        sum(events) as events,
        count(*) as active_users,
        count_if(purchases > 0) as purchasing_users
    from fct_user_daily
    group by activity_date

),

ends as (

    select
        (select min(day) from daily) as first_day,
        cast((select max(load_date) from raw.ingested_files) - interval 1 day as date) as last_day

),

bounds as (

    -- the series starts 7 days (the trailing window) before the first evaluated day, or at the first day
    select
        last_day,
        greatest(
            first_day,
            cast(coalesce(cast(cast($since as date) - interval 1 day as date), last_day) - interval 7 day as date)
        ) as first_day
    from ends

),

digits as (

    select n from (values (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)) as digits (n)

),

spine as (

    -- every day from the window's start to the last (up to 10,000 days), in SQL both engines read
    select cast(bounds.first_day + (d1.n + 10 * d2.n + 100 * d3.n + 1000 * d4.n) as date) as day
    from bounds
    cross join digits as d1
    cross join digits as d2
    cross join digits as d3
    cross join digits as d4
    where bounds.first_day + (d1.n + 10 * d2.n + 100 * d3.n + 1000 * d4.n) <= bounds.last_day

),

filled as (

    select
        spine.day,
        coalesce(daily.events, 0) as events,
        coalesce(daily.active_users, 0) as active_users,
        coalesce(daily.purchasing_users, 0) as purchasing_users,
        cast(daily.purchasing_users as double) / nullif(daily.active_users, 0) as purchase_rate
    from spine
    left join daily on spine.day = daily.day

),

with_history as (

    select
        *,
        count(*) over previous_week as history_days,
        avg(events) over previous_week as events_mean,
        stddev_samp(events) over previous_week as events_std,
        avg(purchase_rate) over previous_week as purchase_rate_mean,
        stddev_samp(purchase_rate) over previous_week as purchase_rate_std
    from filled
    window previous_week as (order by day rows between 7 preceding and 1 preceding)

)

select
    cast(day as string) as day,
    cast(history_days as bigint) as history_days,
    cast(events as bigint) as events,
    events_mean,
    events_std,
    case
        when history_days >= 7
            then (events - events_mean) / nullif(greatest(coalesce(events_std, 0), 0.05 * events_mean), 0)
    end as events_z,
    cast(active_users as bigint) as active_users,
    cast(purchasing_users as bigint) as purchasing_users,
    purchase_rate,
    purchase_rate_mean,
    purchase_rate_std,
    case
        when history_days >= 7
            then (purchase_rate - purchase_rate_mean)
            / nullif(
                sqrt(
                    power(coalesce(purchase_rate_std, 0), 2)
                    + purchase_rate_mean * (1 - purchase_rate_mean) / nullif(active_users, 0)
                ),
                0
            )
    end as purchase_rate_z
from with_history
where day >= coalesce(cast(cast($since as date) - interval 1 day as date), (select last_day from bounds))
order by day
