-- One row per page view, with engaged time from page pings and scroll depth.
-- engaged_seconds = heartbeat * (distinct heartbeat buckets - 1) + min_visit_seconds, 0 without pings
-- (Snowplow's definition: a ping says the page was engaged during the heartbeat before it).
-- Pings, clicks and scrolls count only in the page view's own session: a ping that arrives in a later
-- session (a tab reopened hours later) is a stray and is left out, as Snowplow does.
-- Incremental: a batch run replaces each batch user's page views from its bound on (int_batch_bounds).
-- depends_on: {{ ref('int_batch') }}
{% set batch_bounds = ref('int_batch_bounds') %}
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        incremental_predicates=pulse_rows_from_bound(pulse_after_bound('DBT_INTERNAL_DEST', 'started_at')),
        on_schema_change='fail',
        tags=['batch']
    )
}}
{% set batch_run = pulse_is_batch_run() %}
{% set scan_from = pulse_batch_scan_from("select * from " ~ batch_bounds) if batch_run else none %}
with

sessionized_events as (

    select sessionized.*
    from {{ ref('int_events_sessionized') }} as sessionized
    {% if batch_run %}
        {{ pulse_events_from_bound('sessionized', batch_bounds, scan_from) }}
    {% endif %}

),

events as (

    select stg_events.*
    from {{ ref('stg_events') }} as stg_events
    {% if batch_run %}
        {{ pulse_events_from_bound('stg_events', batch_bounds, scan_from) }}
    {% endif %}

),

page_view_events as (

    select
        coalesce(page_view_id, event_id) as page_view_key,
        page_view_id,
        event_id,
        session_key,
        user_key,
        visit_piece,
        visit_start_time,
        visit_first_event_id,
        next_visit_start_time,
        next_visit_first_event_id,
        event_time as started_at,
        event_date,
        page_url,
        page_title,
        referrer,
        utm_source,
        utm_medium,
        utm_campaign
    from sessionized_events
    where event_type = 'page_view'

),

-- A page_view_id sent twice (a client bug) keeps its first page_view event. Only repeated ids are ranked
-- (a window over every page view would sort 1.2 M wide rows at 10 M events). These two read stg_events
-- directly, not through the `events` CTE: a CTE read by more than two consumers gets materialized.
repeated_page_view_ids as (

    select page_view_id
    from {{ ref('stg_events') }}
    where
        event_type = 'page_view'
        and page_view_id is not null
    {% if batch_run %}
        and page_view_id in (select page_view_events.page_view_id from page_view_events)
    {% endif %}
    group by page_view_id
    having count(*) > 1

),

losing_page_view_events as (

    select event_id
    from (
        select
            event_id,
            row_number() over (partition by page_view_id order by event_time, event_id) as copy_number
        from {{ ref('stg_events') }}
        where
            event_type = 'page_view'
            and page_view_id in (select repeated_page_view_ids.page_view_id from repeated_page_view_ids)
    ) as copies
    where copy_number > 1

),

page_views as (

    select *
    from page_view_events
    where event_id not in (select losing_page_view_events.event_id from losing_page_view_events)

),

-- The events of each page view (by page_view_id) that fall in the page view's session: same user,
-- same visit (the bounds int_events_sessionized assigns by), same piece of a cut visit.
session_page_events as (

    select
        events.page_view_id,
        events.event_type,
        events.event_time,
        events.scroll_depth_pct,
        events.scroll_depth_px,
        events.doc_height_px,
        events.viewport_height_px
    from events
    inner join page_views on {{ pulse_event_in_page_view_session('events', 'page_views') }}

),

-- Engaged time counts the distinct heartbeat buckets of the pings. A distinct count (or a grouping by
-- page view and bucket) over every ping needs the page view's events twice, which makes DuckDB write the
-- 9 M rows of session_page_events at 10 M events. Instead one aggregation keeps a 63-bit mask of the
-- buckets (bucket mod 63) and the span of bucket numbers:
--   span < 63: no two buckets share a bit, so the distinct buckets are the bits set;
--   bits set = pings: every ping has its own bucket;
--   otherwise (a page view engaged over 10 minutes with two pings in one bucket, or whose buckets share a
--   bit): its pings are counted exactly, by bucket, in long_page_view_heartbeats.
page_activity as (

    select
        page_view_id,
        count_if(event_type = 'page_ping') as page_pings,
        bit_count(bit_or(case
            when event_type = 'page_ping'
                then {{ pulse_bit_flag('((' ~ pulse_time_bucket('event_time', var('heartbeat_seconds')) ~ ' % 63) + 63) % 63') }}
        end)) as ping_bucket_bits,
        max(case when event_type = 'page_ping' then {{ pulse_time_bucket('event_time', var('heartbeat_seconds')) }} end)
        - min(case when event_type = 'page_ping' then {{ pulse_time_bucket('event_time', var('heartbeat_seconds')) }} end) as ping_bucket_span,
        count_if(event_type = 'click') as clicks,
        max(scroll_depth_pct) as max_scroll_depth_pct,
        max(scroll_depth_px) as max_scroll_depth_px,
        max(doc_height_px) as doc_height_px,
        max(viewport_height_px) as viewport_height_px,
        max(event_time) as last_event_time
    from session_page_events
    group by page_view_id

),

long_page_views as (

    select page_view_id
    from page_activity
    where ping_bucket_span >= 63 and ping_bucket_bits < page_pings

),

-- The few page views above, counted exactly: their pings (read from stg_events again, filtered on the page
-- view first), in the page view's session, grouped by bucket.
long_page_view_heartbeats as (

    select
        page_view_id,
        count(*) as heartbeat_buckets
    from (
        select
            long_pings.page_view_id,
            {{ pulse_time_bucket('long_pings.event_time', var('heartbeat_seconds')) }} as bucket
        from (
            select
                stg_events.page_view_id,
                stg_events.user_key,
                stg_events.event_id,
                stg_events.event_time
            from {{ ref('stg_events') }} as stg_events
            inner join long_page_views on stg_events.page_view_id = long_page_views.page_view_id
            where stg_events.event_type = 'page_ping'
        ) as long_pings
        inner join page_views on {{ pulse_event_in_page_view_session('long_pings', 'page_views') }}
        group by long_pings.page_view_id, {{ pulse_time_bucket('long_pings.event_time', var('heartbeat_seconds')) }}
    ) as buckets
    group by page_view_id

),

joined as (

    select
        page_views.*,
        case
            when long_page_view_heartbeats.page_view_id is not null then long_page_view_heartbeats.heartbeat_buckets
            when coalesce(page_activity.page_pings, 0) = 0 then 0
            when page_activity.ping_bucket_span < 63 then page_activity.ping_bucket_bits
            else page_activity.page_pings
        end as heartbeat_buckets,
        coalesce(page_activity.page_pings, 0) as page_pings,
        coalesce(page_activity.clicks, 0) as clicks,
        page_activity.max_scroll_depth_pct,
        -- Snowplow's vertical pixels scrolled: no scroll reported on a page of known height is 0 px.
        case
            when page_activity.doc_height_px is not null
                then least(greatest(coalesce(page_activity.max_scroll_depth_px, 0), 0), page_activity.doc_height_px)
        end as scroll_depth_px,
        page_activity.doc_height_px,
        page_activity.viewport_height_px,
        greatest(page_views.started_at, coalesce(page_activity.last_event_time, page_views.started_at))
            as ended_at
    from page_views
    left join page_activity on page_views.page_view_id = page_activity.page_view_id
    left join long_page_view_heartbeats on page_views.page_view_id = long_page_view_heartbeats.page_view_id

),

final as (

    select
        page_view_key,
        page_view_id,
        event_id,
        session_key,
        user_key,
        started_at,
        ended_at,
        event_date,
        page_url,
        page_title,
        referrer,
        utm_source,
        utm_medium,
        utm_campaign,
        case
            when heartbeat_buckets > 0
                then {{ var('heartbeat_seconds') }} * (heartbeat_buckets - 1) + {{ var('min_visit_seconds') }}
            else 0
        end as engaged_seconds,
        {{ dbt.datediff('started_at', 'ended_at', 'second') }} as absolute_seconds,
        page_pings,
        clicks,
        scroll_depth_px,
        doc_height_px,
        viewport_height_px,
        coalesce(
            max_scroll_depth_pct,
            round(100 * cast(least(scroll_depth_px + viewport_height_px, doc_height_px) as double) / nullif(doc_height_px, 0))
        ) as scroll_depth_pct
    from joined

)

select * from final
