{{ config(materialized='table', tags=['batch']) }}

-- One row per batch user: where its recomputation starts (pulse_batch_bounds over int_visits as this run
-- left it; the bound is the same visit it was before the run). Models after int_visits replace the rows
-- of these users from the bound on: sessions from from_visit_index, page views from
-- (from_start_time, from_first_event_id), daily rows from from_date.
{{ pulse_batch_bounds(ref('int_visits')) }}
