-- One row per event that arrived later than the lookback allows (incremental_lookback_days) and is not yet
-- in the sessions: its batch did not recompute its user from before it. Nothing is dropped: the event stays
-- in raw.events and stg_events, is counted here (and in the Dagster asset's metadata, the run's warnings and
-- `pulse summary`) and is folded in by `pulse reprocess` (var reprocess_from), a full refresh, or any later run
-- that recomputes its user from before it; the row then leaves this table. A full build folds in everything:
-- the table is empty. The blocking gate on fct_sessions (unsessionized_events) counts an event listed here as
-- kept aside, not lost: a late event never stops publishing, while an event missing for another reason does.
-- One row per event_id: a late event delivered twice is listed once, and a late copy of an event an earlier
-- run already put into the sessions (a tracker retrying days later) is not listed at all.
-- depends_on: {{ ref('int_batch') }}, {{ ref('base_identity_map') }}
{% set batch_bounds = ref('int_batch_bounds') %}
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        incremental_predicates=['1 = 1'],
        on_schema_change='fail',
        tags=['batch']
    )
}}
{% set batch = pulse_batch() %}
{% set batch_run = is_incremental() and not batch['is_full'] %}
{% set timestamp_type = dbt.type_timestamp() %}
with

{% if batch_run %}
    batch as (

        select * from {{ ref('int_batch') }}

    ),

    identity_map as (

        select * from {{ ref('base_identity_map') }}

    ),
{% endif %}

-- This batch's rows from before its lateness bound, and the rows reported by earlier runs.
candidates as (

    {% if batch_run %}
        select
            raw_events.event_id,
            coalesce(raw_events.user_id, identity_map.user_id, raw_events.anonymous_id) as user_key,
            raw_events.event_type,
            raw_events.event_time,
            cast(raw_events.event_time as date) as event_date,
            raw_events.load_date,
            raw_events.ingested_at,
            raw_events.source_file,
            raw_events.source_line,
            reported.event_id is not null as is_reported,
            coalesce(reported.allowed_from, batch.lateness_bound) as allowed_from
        from {{ source('raw', 'events') }} as raw_events
        cross join batch
        left join identity_map on raw_events.anonymous_id = identity_map.anonymous_id
        left join {{ this }} as reported
            on raw_events.event_id = reported.event_id and raw_events.ingested_at = reported.ingested_at
        where
            (raw_events.ingested_at > batch.from_watermark and raw_events.event_time < batch.lateness_bound)
            or reported.event_id is not null
    {% else %}
        select
            cast(null as {{ dbt.type_string() }}) as event_id,
            cast(null as {{ dbt.type_string() }}) as user_key,
            cast(null as {{ dbt.type_string() }}) as event_type,
            cast(null as {{ timestamp_type }}) as event_time,
            cast(null as date) as event_date,
            cast(null as date) as load_date,
            cast(null as {{ timestamp_type }}) as ingested_at,
            cast(null as {{ dbt.type_string() }}) as source_file,
            cast(null as {{ dbt.type_bigint() }}) as source_line,
            false as is_reported,
            cast(null as {{ timestamp_type }}) as allowed_from
        where 1 = 0
    {% endif %}

),

{% if batch_run %}
    -- The events of new late rows that an earlier run already processed (a copy ingested before this batch)
    -- and did not list here: they are in the sessions, and the new row is a repeated delivery.
    in_sessions_before as (

        select distinct earlier.event_id
        from {{ source('raw', 'events') }} as earlier
        cross join batch
        left join {{ this }} as listed on earlier.event_id = listed.event_id
        where
            earlier.ingested_at <= batch.from_watermark
            and listed.event_id is null
            and earlier.event_id in (
                select new_rows.event_id
                from candidates as new_rows
                where not new_rows.is_reported
            )

    ),
{% endif %}

-- One row per event: the earliest copy (a row reported before is kept, so allowed_from stays).
late_events as (

    select candidates.*
    from candidates
    {% if batch_run %}
        left join in_sessions_before on candidates.event_id = in_sessions_before.event_id
        where candidates.is_reported or in_sessions_before.event_id is null
    {% endif %}
    qualify row_number() over (
        partition by candidates.event_id
        order by
            candidates.ingested_at asc,
            candidates.load_date asc,
            candidates.source_file asc,
            candidates.source_line asc
    ) = 1

),

-- Still out of the sessions: this run did not recompute the user from before the event.
final as (

    select
        candidates.event_id,
        candidates.user_key,
        candidates.event_type,
        candidates.event_time,
        candidates.load_date,
        candidates.ingested_at,
        candidates.allowed_from,
        {{ dbt.datediff('candidates.event_date', 'candidates.load_date', 'day') }} as days_late
    from late_events as candidates
    left join {{ batch_bounds }} as bounds on candidates.user_key = bounds.user_key
    where
        bounds.user_key is null
        or not {{ pulse_after_bound('candidates') }}

)

select * from final
