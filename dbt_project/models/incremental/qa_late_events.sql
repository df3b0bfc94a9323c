-- One row per event that arrived later than the lookback allows (incremental_lookback_days) and is not yet
-- in the sessions: its batch did not recompute its user from before it. Nothing is dropped: the event stays
-- in raw.events, is counted here (and in the Dagster asset's metadata) and is folded in by `pulse reprocess`
-- (var reprocess_from), a full refresh, or any later run that recomputes its user from before it; the row
-- then leaves this table. A full build folds in everything: the table is empty.
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
            cast(null as {{ timestamp_type }}) as allowed_from
        where 1 = 0
    {% endif %}

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
    from candidates
    left join {{ batch_bounds }} as bounds on candidates.user_key = bounds.user_key
    where
        bounds.user_key is null
        or not {{ pulse_after_bound('candidates') }}

)

select * from final
