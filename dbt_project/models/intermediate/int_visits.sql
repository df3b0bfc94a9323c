-- One row per visit: a user's run of events with no gap longer than session_timeout_minutes and no
-- change of client session id. Found with ONE window pass over four columns of the events; each visit's
-- end is the next visit's start. Events are assigned to visits in int_events_sessionized.
-- Incremental: a batch run recomputes each batch user's visits from its bound (pulse_batch_bounds: the last
-- visit that began before the user's earliest change, or the change itself when that visit ended more than
-- the timeout before it), numbering on from it, and keeps the earlier ones.
-- depends_on: {{ ref('int_batch') }}
-- depends_on: {{ ref('int_batch_users') }}
-- on_schema_change append_new_columns: end_time came later; older rows keep it null, and their users' bounds
-- stay at the visit's start.
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
events as (

    select
        stg_events.event_id,
        stg_events.user_key,
        stg_events.event_time,
        stg_events.client_session_id
    from {{ ref('stg_events') }} as stg_events
    {% if batch_run %}
        {{ pulse_events_from_bound('stg_events', 'bounds', pulse_batch_scan_from(pulse_batch_bounds(this))) }}
    {% endif %}

),

with_previous as (

    select
        event_id,
        user_key,
        event_time,
        client_session_id,
        lag(event_time) over by_time as previous_event_time,
        lag(client_session_id) over by_time as previous_client_session_id,
        max(event_time) over (partition by user_key) as last_event_time
    from events
    window by_time as (partition by user_key order by event_time, event_id)

),

visit_starts as (

    select
        user_key,
        event_id as first_event_id,
        event_time as start_time,
        client_session_id,
        previous_event_time,
        last_event_time
    from with_previous
    where
        previous_event_time is null
        or {{ dbt.datediff('previous_event_time', 'event_time', 'second') }}
        > {{ var('session_timeout_minutes') }} * 60
        or client_session_id <> previous_client_session_id

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
