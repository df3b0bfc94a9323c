-- The copies of an event_id that lose deduplication: every copy but the one received first.
-- Kept small on purpose (only repeated ids), so stg_events can stay a view: deduplicating the wide rows
-- with a window over every event would sort all of them.
-- Both CTEs read the source directly: a CTE read twice would be materialized (10 M rows written once more).
-- Incremental: a batch run replaces the rows of the event_ids its raw rows (new or retracted) carry, ranking
-- every copy of those ids again.
-- depends_on: {{ ref('int_batch') }}, {{ source('raw', 'events_retracted') }}
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        incremental_predicates=['DBT_INTERNAL_DEST.event_id in (select event_id from __batch_event_ids__)'],
        on_schema_change='fail',
        tags=['batch']
    )
}}
{% set batch_run = pulse_is_batch_run() %}
with

{% if batch_run %}
    repeated_hashes as (

        select {{ pulse_hash64('batch_ids.event_id') }} as event_id_hash
        from {{ pulse_batch_event_ids() }} as batch_ids

    ),
{% else %}
    -- Grouping 64-bit hashes is about twice as fast as grouping the id strings. A hash collision only adds
    -- candidates: copies are ranked per event_id below, so a lone event never loses.
    repeated_hashes as (

        select {{ pulse_hash64('event_id') }} as event_id_hash
        from {{ source('raw', 'events') }}
        group by {{ pulse_hash64('event_id') }}
        having count(*) > 1

    ),
{% endif %}

copies as (

    select
        event_id,
        received_at,
        load_date,
        source_file,
        source_line,
        row_number() over (
            partition by event_id
            order by received_at asc nulls last, load_date asc, source_file asc, source_line asc
        ) as copy_number
    from {{ source('raw', 'events') }}
    where {{ pulse_hash64("event_id") }} in (select repeated_hashes.event_id_hash from repeated_hashes)

),

final as (

    select
        event_id,
        received_at,
        load_date,
        source_file,
        source_line,
        copy_number
    from copies
    where copy_number > 1

)

select * from final
