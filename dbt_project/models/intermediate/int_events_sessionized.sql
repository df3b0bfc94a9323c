{{ config(materialized='view') }}

-- Every deduplicated event with its visit and session (macros/sessionized_events.sql). A visit longer than
-- max_session_hours is cut into sessions of that length (visit_piece 0, 1, ...); qa_sessions_cut lists them.
-- A view: the assignment is a join of the events with the (small) int_visits, cheap enough to run in
-- each model that reads it, where writing every event again would not be.
with

events as (

    select * from {{ ref('stg_events') }}

),

visits as (

    select * from {{ ref('int_visits') }}

),

final as (

    {{ pulse_sessionized_events('events', 'visits') }}

)

select * from final
