-- Suite raw_events (blocking): what each landing day delivered. A day on which many lines broke the
-- contract is unusable: the models would publish a drop in activity that did not happen.
-- $since: the first landing day to evaluate (the run's first partition); null = the latest landing day.
-- A day with fewer than 100 lines gets no share (null, which the expectation skips): one bad line in a
-- backfilled day of three is 33 %, not an unusable day. Its lines are still quarantined and reconciled.
-- Cost: reads raw.ingested_files (one row per file) and groups the quarantine (broken lines only).
with

files as (

    select
        load_date,
        sum(lines_read) as lines_read,
        count(*) as files
    from raw.ingested_files
    group by load_date

),

quarantined as (

    select
        load_date,
        count(*) as quarantined_lines
    from raw.events_quarantine
    group by load_date

)

select
    cast(files.load_date as varchar) as landing_day,
    cast(files.files as bigint) as files,
    cast(files.lines_read as bigint) as lines_read,
    cast(coalesce(quarantined.quarantined_lines, 0) as bigint) as quarantined_lines,
    case
        when files.lines_read >= 100
            then cast(coalesce(quarantined.quarantined_lines, 0) as double) / files.lines_read
    end as quarantined_share
from files
left join quarantined on files.load_date = quarantined.load_date
where files.load_date >= coalesce(cast($since as date), (select max(load_date) from raw.ingested_files))
order by files.load_date
