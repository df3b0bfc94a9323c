{#-
  Events (relation or CTE `events`, stg_events' columns) with their visit and session (`visits`: int_visits'
  rows). An event belongs to the visit whose first event it follows (by event_time, then event_id), whose
  successor's first event it precedes, and whose last event (end_time) it does not follow. The last condition
  only matters for an event int_visits has not seen: one too late to be folded in (qa_late_events) that fell
  between two visits belongs to neither until it is reprocessed, as in the fct tables. It also bounds the days
  each visit is joined on. A visit longer than max_session_hours is cut into sessions of that
  length (visit_piece 0, 1, ...); session_key is the visit_key for piece 0, md5(visit_key | piece) after.
  int_events_sessionized is this over every event; int_trigger_candidates uses it over the batch users'
  events and visits only (DuckDB does not push a filter on user_key below the join).
-#}
{% macro pulse_sessionized_events(events, visits) %}
    select
        case
            when assigned.visit_piece = 0 then assigned.visit_key
            else md5(assigned.visit_key || '|' || cast(assigned.visit_piece as {{ dbt.type_string() }}))
        end as session_key,
        assigned.*
    from (
        select
            visits.visit_key,
            visits.visit_index,
            cast(floor(
                {{ dbt.datediff('visits.start_time', 'events.event_time', 'second') }}
                / ({{ var('max_session_hours') }} * 3600)
            ) as {{ dbt.type_bigint() }}) as visit_piece,
            visits.start_time as visit_start_time,
            visits.first_event_id as visit_first_event_id,
            visits.next_start_time as next_visit_start_time,
            visits.next_first_event_id as next_visit_first_event_id,
            events.*
        from {{ events }} as events
        inner join (
            -- each visit once per day it covers (almost always one): the join then compares an event with
            -- its user's visits of that day, not with every visit of the user (~10 per event at 10 M events)
            select
                visits.*,
                {{ pulse_explode_dates(
                    'visits.start_time', 'coalesce(visits.end_time, visits.next_start_time, visits.start_time)'
                ) }} as visit_date
            from {{ visits }} as visits
        ) as visits
            on
                events.user_key = visits.user_key
                and cast(events.event_time as date) = visits.visit_date
                and {{ pulse_event_in_visit(
                    'events', 'visits.start_time', 'visits.first_event_id',
                    'visits.next_start_time', 'visits.next_first_event_id'
                ) }}
                -- (a visit written before end_time existed has none: the not_null test asks for a rebuild)
                and (visits.end_time is null or events.event_time <= visits.end_time)
    ) as assigned
{% endmacro %}


{#- The event (alias: event_time, event_id) lies in the visit given by its first event and its successor's
    first event (null: the user's last visit), in (event_time, event_id) order. -#}
{% macro pulse_event_in_visit(event, start_time, first_event_id, next_start_time, next_first_event_id) -%}
    (
        {{ event }}.event_time > {{ start_time }}
        or ({{ event }}.event_time = {{ start_time }} and {{ event }}.event_id >= {{ first_event_id }})
    )
    and (
        {{ next_start_time }} is null
        or {{ event }}.event_time < {{ next_start_time }}
        or ({{ event }}.event_time = {{ next_start_time }} and {{ event }}.event_id < {{ next_first_event_id }})
    )
{%- endmacro %}


{#- The event (alias, stg_events' columns) counts for the page view (alias, fct_page_views' page_views: its
    session's visit bounds and piece): the same page_view_id and user, inside the page view's visit and in
    the same piece of it. A join condition. -#}
{% macro pulse_event_in_page_view_session(event, page_view) -%}
    {{ event }}.page_view_id = {{ page_view }}.page_view_id
    and {{ event }}.user_key = {{ page_view }}.user_key
    and {{ pulse_event_in_visit(
        event, page_view ~ '.visit_start_time', page_view ~ '.visit_first_event_id',
        page_view ~ '.next_visit_start_time', page_view ~ '.next_visit_first_event_id'
    ) }}
    and cast(floor(
        {{ dbt.datediff(page_view ~ '.visit_start_time', event ~ '.event_time', 'second') }}
        / ({{ var('max_session_hours') }} * 3600)
    ) as {{ dbt.type_bigint() }}) = {{ page_view }}.visit_piece
{%- endmacro %}
