-- The copies of an event_id that lose deduplication: every copy but the one received first.
-- Kept small on purpose (only repeated ids), so stg_events can stay a view: deduplicating the wide rows
-- with a window over every event would sort all of them.
with

source as (

    select * from {{ source('raw', 'events') }}

),

repeated_ids as (

    select event_id
    from source
    group by event_id
    having count(*) > 1

),

copies as (

    select
        source.event_id,
        source.received_at,
        source.load_date,
        source.source_file,
        source.source_line,
        row_number() over (
            partition by source.event_id
            order by
                source.received_at asc nulls last,
                source.load_date asc,
                source.source_file asc,
                source.source_line asc
        ) as copy_number
    from source
    inner join repeated_ids on source.event_id = repeated_ids.event_id

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
