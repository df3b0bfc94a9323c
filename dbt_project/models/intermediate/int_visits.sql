-- One row per visit: a user's run of events with no gap longer than session_timeout_minutes and no
-- change of client session id; each visit's end is the next visit's start. Events are assigned to visits in
-- int_events_sessionized.
-- Found without sorting the events: two events in the same timeout-long bucket of time (counted from 1970)
-- are less than the timeout apart, so only a bucket's first event can open a visit by a gap, and in a bucket
-- whose events all carry the same client session id (or none) only its first event can open one by a change
-- of id. So one aggregation turns the events into one row per (user, bucket) (~200 k at 10 M events), a
-- window over those rows finds the visit starts, and the first event's id (the smallest id at the start
-- instant) is looked up for those starts only. Buckets that mix session ids (rare: an id that changes without
-- a pause) keep their events as rows of their own and go through the same window.
-- That is DuckDB's plan. On Spark every event is a row of its own in the same window (no buckets, no id
-- lookup): there the two extra reads of stg_events cost more than the sort they save (int_visits 3.3 s ->
-- 7.9 s at 1 M events on local[2]). The rule (gap, change of id) is written once, in `starts`; both plans
-- give the same visits (tests/integration/test_engines_equal.py).
-- Incremental: a batch run recomputes each batch user's visits from its bound (pulse_batch_bounds: the last
-- visit that began before the user's earliest change, or the change itself when that visit ended more than
-- the timeout before it), numbering on from it, and keeps the earlier ones.
-- depends_on: {{ ref('int_batch') }}
-- depends_on: {{ ref('int_batch_users') }}
-- on_schema_change append_new_columns: end_time came later; older rows keep it null (their users' bounds stay
-- at the visit's start), and the not_null test on it asks for one full rebuild.
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        incremental_predicates=['DBT_INTERNAL_DEST.user_key in (select user_key from __batch_users__)'],
        on_schema_change='append_new_columns',
        tags=['batch']
    )
}}
{% set batch_run = pulse_is_batch_run() %}
with

{% if batch_run %}
    bounds as (

        {{ pulse_batch_bounds(this) }}

    ),

{% endif %}
{% set timeout_seconds = var('session_timeout_minutes') * 60 %}
{#- Full refresh: each CTE below reads stg_events itself (a CTE read several times would be written out: 10 M
    rows); a batch run reads its users' events from their bounds, a few, through `events`. -#}
{% if batch_run %}
    events as (

        select
            stg_events.event_id,
            stg_events.user_key,
            stg_events.event_time,
            stg_events.client_session_id
        from {{ ref('stg_events') }} as stg_events
        {{ pulse_events_from_bound('stg_events', 'bounds', pulse_batch_scan_from(pulse_batch_bounds(this))) }}

    ),

    {% set events = 'events' %}
{% else %}
    {% set events = ref('stg_events') %}
{% endif %}
{% set by_buckets = target.type == 'duckdb' %}
-- The events, each with its time bucket. DuckDB reads it for the events of mixed buckets only; Spark takes
-- every event as a row of its own (its time_bucket a constant, so the window below orders by time, then id).
event_rows as (

    select
        event_id,
        user_key,
        event_time,
        client_session_id,
        {% if by_buckets %}
            {{ pulse_time_bucket('event_time', timeout_seconds) }} as time_bucket
        {% else %}
            cast(0 as {{ dbt.type_bigint() }}) as time_bucket
        {% endif %}
    from {{ events }}

),

{% if by_buckets %}
    buckets as (

        select
            user_key,
            {{ pulse_time_bucket('event_time', timeout_seconds) }} as time_bucket,
            min(event_time) as first_time,
            max(event_time) as last_time,
            count(*) as events,
            count(client_session_id) as events_with_client_session,
            min(client_session_id) as min_client_session_id,
            max(client_session_id) as max_client_session_id
        from {{ events }}
        group by user_key, {{ pulse_time_bucket('event_time', timeout_seconds) }}

    ),

    -- every event of the bucket carries the same client session id, or none does
    checked_buckets as (

        select
            *,
            events_with_client_session = 0
            or (events_with_client_session = events and min_client_session_id = max_client_session_id)
                as has_one_client_session
        from buckets

    ),

{% endif %}
-- What the window below walks through, per user: DuckDB one row per bucket (event_id null), plus the events of
-- the buckets that mix session ids; Spark every event.
sequence_rows as (

    {% if by_buckets %}
        select
            user_key,
            time_bucket,
            first_time,
            last_time,
            cast(null as {{ dbt.type_string() }}) as event_id,
            min_client_session_id as client_session_id
        from checked_buckets
        where has_one_client_session

        union all

    {% endif %}
    select
        event_rows.user_key,
        event_rows.time_bucket,
        event_rows.event_time as first_time,
        event_rows.event_time as last_time,
        event_rows.event_id,
        event_rows.client_session_id
    from event_rows
    {% if by_buckets %}
        inner join checked_buckets as mixed
            on
                event_rows.user_key = mixed.user_key
                and event_rows.time_bucket = mixed.time_bucket
                and not mixed.has_one_client_session
    {% endif %}

),

with_previous as (

    select
        user_key,
        first_time,
        event_id,
        client_session_id,
        lag(last_time) over by_time as previous_event_time,
        lag(client_session_id) over by_time as previous_client_session_id,
        max(last_time) over (partition by user_key) as last_event_time
    from sequence_rows
    -- a bucket's row is alone in its bucket; a mixed bucket's events are ordered by time, then id
    window by_time as (partition by user_key order by time_bucket, first_time, event_id)

),

starts as (

    select
        user_key,
        event_id,
        first_time as start_time,
        client_session_id,
        previous_event_time,
        last_event_time
    from with_previous
    where
        previous_event_time is null
        or {{ dbt.datediff('previous_event_time', 'first_time', 'second') }} > {{ timeout_seconds }}
        or client_session_id <> previous_client_session_id

),

{% if by_buckets %}
    -- the first event of a visit that opens a bucket: the smallest event id at the visit's first instant
    start_event_ids as (

        select
            start_events.user_key,
            start_events.event_time,
            min(start_events.event_id) as first_event_id
        from {{ events }} as start_events
        inner join starts
            on
                start_events.user_key = starts.user_key
                and start_events.event_time = starts.start_time
                and starts.event_id is null
        group by start_events.user_key, start_events.event_time

    ),

{% endif %}
visit_starts as (

    select
        starts.user_key,
        {% if by_buckets %}
            coalesce(starts.event_id, start_event_ids.first_event_id) as first_event_id,
        {% else %}
            starts.event_id as first_event_id,
        {% endif %}
        starts.start_time,
        starts.client_session_id,
        starts.previous_event_time,
        starts.last_event_time
    from starts
    {% if by_buckets %}
        left join start_event_ids
            on
                starts.user_key = start_event_ids.user_key
                and starts.start_time = start_event_ids.event_time
                and starts.event_id is null
    {% endif %}

),

recomputed as (

    select
        md5(user_key || '|' || first_event_id) as visit_key,
        user_key,
        row_number() over by_start as visit_index,
        first_event_id,
        start_time,
        client_session_id,
        lead(first_event_id) over by_start as next_first_event_id,
        lead(start_time) over by_start as next_start_time,
        -- the visit's last event: the one before the next visit's first, or the user's last
        coalesce(lead(previous_event_time) over by_start, last_event_time) as end_time
    from visit_starts
    window by_start as (partition by user_key order by start_time, first_event_id)

),

final as (

    {% if batch_run %}
        select
            recomputed.visit_key,
            recomputed.user_key,
            recomputed.visit_index + bounds.from_visit_index - 1 as visit_index,
            recomputed.first_event_id,
            recomputed.start_time,
            recomputed.client_session_id,
            recomputed.next_first_event_id,
            recomputed.next_start_time,
            recomputed.end_time
        from recomputed
        inner join bounds on recomputed.user_key = bounds.user_key

        union all

        -- The visits before the bound stay; the last of them now ends where the first recomputed one begins
        -- (or nowhere): a late event may have started a visit before the one that followed it.
        select
            kept.visit_key,
            kept.user_key,
            kept.visit_index,
            kept.first_event_id,
            kept.start_time,
            kept.client_session_id,
            case
                when kept.visit_index = bounds.from_visit_index - 1 then first_recomputed.first_event_id
                else kept.next_first_event_id
            end as next_first_event_id,
            case
                when kept.visit_index = bounds.from_visit_index - 1 then first_recomputed.start_time
                else kept.next_start_time
            end as next_start_time,
            kept.end_time
        from {{ this }} as kept
        inner join bounds on kept.user_key = bounds.user_key
        left join recomputed as first_recomputed
            on kept.user_key = first_recomputed.user_key and first_recomputed.visit_index = 1
        where kept.visit_index < bounds.from_visit_index
    {% else %}
        select * from recomputed
    {% endif %}

)

select * from final
