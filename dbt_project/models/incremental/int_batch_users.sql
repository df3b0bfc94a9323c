{{ config(materialized='table', tags=['batch']) }}

-- One row per user whose sessions this run recomputes (none in a full batch), with changed_from: the
-- earliest change. A change is a batch row at or after int_batch.lateness_bound, every other copy of its
-- event_id (a new copy may win deduplication) and of its page view id (the first page_view of an id wins),
-- or a retracted row. An anonymous id the identity map now stitches to another user than the run before
-- changes both users from the anonymous id's first event on. With var reprocess_from, every event from that
-- day on is a change too (`pulse reprocess`: late events beyond the lookback are folded in).
-- depends_on: {{ ref('int_batch') }}
{% set batch = pulse_batch() %}
{% set reprocess_from = var('reprocess_from', none) %}
{% set string_type = dbt.type_string() %}
{% set timestamp_type = dbt.type_timestamp() %}
{% if batch['is_full'] %}

    select
        cast(null as {{ string_type }}) as user_key,
        cast(null as {{ timestamp_type }}) as changed_from
    where 1 = 0

{% else %}
    {% set watermark = "cast('" ~ batch['from_watermark'] ~ "' as " ~ timestamp_type ~ ")" %}
    with

    batch_rows as (

        select
            event_id,
            event_type,
            page_view_id
        from {{ source('raw', 'events') }}
        where ingested_at > {{ watermark }}

    ),

    changed_rows as (

        select
            user_id,
            anonymous_id,
            event_time
        from {{ source('raw', 'events') }}
        where
            event_id in (select batch_rows.event_id from batch_rows)
            or (
                event_type = 'page_view'
                and page_view_id in (
                    select batch_rows.page_view_id
                    from batch_rows
                    where batch_rows.event_type = 'page_view'
                )
            )

        union all

        select
            user_id,
            anonymous_id,
            event_time
        from {{ source('raw', 'events_retracted') }}
        where retracted_at > {{ watermark }}

        {% if reprocess_from %}
            union all

            select
                user_id,
                anonymous_id,
                event_time
            from {{ source('raw', 'events') }}
            where event_time >= cast('{{ reprocess_from }}' as {{ timestamp_type }})
        {% endif %}

    ),

    identity_map as (

        select * from {{ ref('base_identity_map') }}

    ),

    timely_changes as (

        select
            coalesce(changed_rows.user_id, identity_map.user_id, changed_rows.anonymous_id) as user_key,
            changed_rows.event_time
        from changed_rows
        left join identity_map on changed_rows.anonymous_id = identity_map.anonymous_id
        where changed_rows.event_time >= (select int_batch.lateness_bound from {{ ref('int_batch') }} as int_batch)

    ),

    restitched as (

        select
            coalesce(identity_map.anonymous_id, applied.anonymous_id) as anonymous_id,
            identity_map.user_id as new_user_id,
            applied.user_id as old_user_id
        from identity_map
        full outer join pulse_state.identity_map_applied as applied
            on identity_map.anonymous_id = applied.anonymous_id
        where
            identity_map.user_id is null
            or applied.user_id is null
            or identity_map.user_id <> applied.user_id

    ),

    -- Only events without a user_id follow the identity map.
    restitched_first_events as (

        select
            anonymous_id,
            min(event_time) as first_event_time
        from {{ source('raw', 'events') }}
        where
            user_id is null
            and anonymous_id in (select restitched.anonymous_id from restitched)
        group by anonymous_id

    ),

    restitch_changes as (

        select
            coalesce(restitched.new_user_id, restitched.anonymous_id) as user_key,
            restitched_first_events.first_event_time as event_time
        from restitched
        inner join restitched_first_events on restitched.anonymous_id = restitched_first_events.anonymous_id

        union all

        select
            coalesce(restitched.old_user_id, restitched.anonymous_id) as user_key,
            restitched_first_events.first_event_time as event_time
        from restitched
        inner join restitched_first_events on restitched.anonymous_id = restitched_first_events.anonymous_id

    ),

    final as (

        select
            user_key,
            min(event_time) as changed_from
        from (
            select
                timely_changes.user_key,
                timely_changes.event_time
            from timely_changes
            union all
            select
                restitch_changes.user_key,
                restitch_changes.event_time
            from restitch_changes
        ) as changes
        group by user_key

    )

    select * from final
{% endif %}
