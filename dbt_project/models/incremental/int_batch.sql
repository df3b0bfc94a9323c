{{ config(materialized='table', tags=['batch']) }}

-- One row: what this run processes. The batch is every raw row ingested after the committed watermark
-- (pulse_state.batches, written when a run succeeds), and every row re-ingestion retracted since. Without a
-- committed run, or with --full-refresh, the batch is everything (is_full) and every model rebuilds.
-- Events of the batch earlier than lateness_bound (its first landing day minus incremental_lookback_days)
-- arrived later than allowed: they do not make their users' sessions be recomputed (qa_late_events lists them).
{% set committed = pulse_committed_watermark() %}
{% set watermark = "cast('" ~ committed ~ "' as " ~ dbt.type_timestamp() ~ ")" if committed else none %}
with

raw_events as (

    select
        load_date,
        ingested_at
    from {{ source('raw', 'events') }}

),

retracted as (

    select
        load_date,
        retracted_at
    from {{ source('raw', 'events_retracted') }}

),

batch_days as (

    select load_date
    from raw_events
    {% if watermark %}
        where ingested_at > {{ watermark }}
    {% endif %}
    union all
    select load_date
    from retracted
    {% if watermark %}
        where retracted_at > {{ watermark }}
    {% endif %}

),

final as (

    select
        {{ watermark if watermark else 'cast(null as ' ~ dbt.type_timestamp() ~ ')' }} as from_watermark,
        (select max(raw_events.ingested_at) from raw_events) as to_watermark,
        {{ 'false' if watermark else 'true' }} as is_full,
        min(load_date) as first_load_date,
        max(load_date) as last_load_date,
        count(*) as batch_rows,
        cast(
            {{ dbt.dateadd('day', -1 * var('incremental_lookback_days'), 'min(load_date)') }}
            as {{ dbt.type_timestamp() }}
        ) as lateness_bound
    from batch_days

)

select * from final
