{{ config(materialized='table', tags=['batch']) }}

-- One row: what this run processes. The batch is every raw row ingested after the committed watermark
-- (pulse_state.batches, written when a run succeeds), and every row re-ingestion retracted since. Without a
-- committed run, or with --full-refresh, the batch is everything (is_full) and every model rebuilds.
-- Events of the batch earlier than lateness_bound (its first landing day minus incremental_lookback_days)
-- arrived later than allowed: they do not make their users' sessions be recomputed (qa_late_events lists them).
-- With var reprocess_from ('YYYY-MM-DD'), lateness_bound is at most that day and every user with an event from
-- it on is recomputed from there (`pulse reprocess`): what arrived too late is folded in.
{% set committed = pulse_committed_watermark() %}
{% set reprocess_from = var('reprocess_from', none) %}
{% set timestamp_type = dbt.type_timestamp() %}
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
        {% set lookback_bound -%}
            cast({{ dbt.dateadd('day', -1 * var('incremental_lookback_days'), 'min(load_date)') }} as {{ timestamp_type }})
        {%- endset %}
        {% if reprocess_from %}
            {% set reprocess_at = "cast('" ~ reprocess_from ~ "' as " ~ timestamp_type ~ ")" %}
            case
                when count(*) = 0 or {{ reprocess_at }} < {{ lookback_bound }} then {{ reprocess_at }}
                else {{ lookback_bound }}
            end as lateness_bound
        {% else %}
            {{ lookback_bound }} as lateness_bound
        {% endif %}
    from batch_days

)

select * from final
