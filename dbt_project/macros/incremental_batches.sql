{#-
  Incremental processing: what a run has to process, and what it may commit.

  A batch is every raw row ingested since the last committed run (raw.events.ingested_at after the
  watermark in pulse_state.batches), plus what re-ingestion retracted (raw.events_retracted). The models
  tagged `batch` process it; when all of them succeeded, on-run-end commits the new watermark and the
  identity map the run applied. A run that fails (or selects only some of them) commits nothing, so the
  next run processes the same batch again: every incremental model replaces its rows for the batch's
  users, which makes a repeated batch harmless.
-#}

{% macro pulse_state_setup() %}
    {% do run_query("create schema if not exists pulse_state") %}
    {% do run_query(
        "create table if not exists pulse_state.batches ("
        ~ " watermark " ~ dbt.type_timestamp() ~ ", committed_at " ~ dbt.type_timestamp()
        ~ ", invocation_id " ~ dbt.type_string() ~ ", full_refresh boolean) " ~ pulse_table_format()
    ) %}
    {% do run_query(
        "create table if not exists pulse_state.identity_map_applied ("
        ~ " anonymous_id " ~ dbt.type_string() ~ ", user_id " ~ dbt.type_string() ~ ") " ~ pulse_table_format()
    ) %}
    select 1
{% endmacro %}


{#- The committed watermark, or none: no committed run yet, or --full-refresh (the batch is everything). -#}
{% macro pulse_committed_watermark() %}
    {% if not execute or flags.FULL_REFRESH %}
        {{ return(none) }}
    {% endif %}
    {% if adapter.get_relation(database=target.database, schema='pulse_state', identifier='batches') is none %}
        {{ return(none) }}
    {% endif %}
    {% set rows = run_query("select cast(max(watermark) as " ~ dbt.type_string() ~ ") from pulse_state.batches") %}
    {{ return(rows.columns[0].values()[0]) }}
{% endmacro %}


{#- The run's batch (int_batch's one row) as a dict. While parsing, a batch that is not full: dbt then
    sees the refs of the batch branches too. -#}
{% macro pulse_batch() %}
    {% set int_batch = ref('int_batch') %}
    {% if execute and int_batch is none %}
        {#- a dbt unit test that does not give int_batch -#}
        {{ return({'is_full': true}) }}
    {% endif %}
    {% if not execute or adapter.get_relation(
        database=int_batch.database, schema=int_batch.schema, identifier=int_batch.identifier) is none %}
        {#- parsing, or compiling without a warehouse (sqlfluff) -#}
        {{ return({'is_full': false, 'from_watermark': '1970-01-01 00:00:00'}) }}
    {% endif %}
    {#- the watermark as text: a timestamp fetched into Python would be in the process's time zone on Spark -#}
    {% set rows = run_query(
        "select is_full, cast(from_watermark as " ~ dbt.type_string() ~ ") as from_watermark from " ~ int_batch
    ) %}
    {% set batch = {} %}
    {% for column in rows.columns %}
        {% do batch.update({column.name: column.values()[0]}) %}
    {% endfor %}
    {{ return(batch) }}
{% endmacro %}


{#- True when an incremental model processes only the batch's users: the table exists and the batch is
    not a full one. -#}
{% macro pulse_is_batch_run() %}
    {% if not is_incremental() %}
        {{ return(false) }}
    {% endif %}
    {{ return(not pulse_batch()['is_full']) }}
{% endmacro %}


{#-
  Where each batch user's recomputation starts. The user's last visit that began before the earliest change
  (changed_from) is rebuilt whole with everything after it, so a session that spans the change is never
  split; visits before it are final (a change later than a visit's start cannot move the boundary in front
  of it). When that visit ended more than session_timeout_minutes before the change, nothing the change
  brings can join it: it is final too, and the recomputation starts at the change itself (from_first_event_id
  '' takes every event at that instant), numbered after it. That keeps the bound near the batch for a user
  back after weeks, so the models read only the recent part of raw.events. Without such a visit (a new user)
  it starts at the change too: there is no earlier event.
  `visits` is int_visits as the run left it or, for int_visits itself, as it was before.
-#}
{% macro pulse_batch_bounds(visits) %}
    {#- from the change itself: no earlier visit (a new user: no event before the change either), or the last
        one ended more than the timeout before it -#}
    {% set from_change -%}
        boundary.user_key is null
        or {{ dbt.datediff('boundary.end_time', 'batch_users.changed_from', 'second') }}
        > {{ var('session_timeout_minutes') }} * 60
    {%- endset %}
    select
        batch_users.user_key,
        batch_users.changed_from,
        case when {{ from_change }} then batch_users.changed_from else boundary.start_time end as from_start_time,
        case when {{ from_change }} then '' else boundary.first_event_id end as from_first_event_id,
        case when {{ from_change }} then coalesce(boundary.visit_index, 0) + 1 else boundary.visit_index end
            as from_visit_index,
        cast(
            case when {{ from_change }} then batch_users.changed_from else boundary.start_time end as date
        ) as from_date
    from {{ ref('int_batch_users') }} as batch_users
    left join (
        select
            visits.user_key,
            visits.start_time,
            visits.first_event_id,
            visits.visit_index,
            visits.end_time,
            row_number() over (
                partition by visits.user_key order by visits.start_time desc, visits.first_event_id desc
            ) as recency
        from {{ visits }} as visits
        inner join {{ ref('int_batch_users') }} as scoped
            on visits.user_key = scoped.user_key
        where visits.start_time < scoped.changed_from
    ) as boundary
        on batch_users.user_key = boundary.user_key and boundary.recency = 1
{% endmacro %}


{#- A row (alias.time_column, alias.event_id) at or after its user's bound (alias bounds). -#}
{% macro pulse_after_bound(alias, time_column='event_time', bounds='bounds') -%}
    (
        {{ bounds }}.from_start_time is null
        or {{ alias }}.{{ time_column }} > {{ bounds }}.from_start_time
        or (
            {{ alias }}.{{ time_column }} = {{ bounds }}.from_start_time
            and {{ alias }}.event_id >= {{ bounds }}.from_first_event_id
        )
    )
{%- endmacro %}


{#- The earliest `column` (from_start_time, or from_date) any batch user is recomputed from, as a timestamp
    literal, so DuckDB can skip row groups of raw.events by their min/max event_time; the epoch when some
    user is recomputed whole (a null from_start_time). -#}
{% macro pulse_batch_scan_from(bounds_sql, column='from_start_time') %}
    {% if not execute %}
        {{ return("cast('1970-01-01' as " ~ dbt.type_timestamp() ~ ")") }}
    {% endif %}
    {% set rows = run_query(
        "select cast(case when count(*) = count(" ~ column ~ ") then min(" ~ column ~ ") end as "
        ~ dbt.type_string() ~ ") from (" ~ bounds_sql ~ ") as b"
    ) %}
    {% set value = rows.columns[0].values()[0] %}
    {{ return("cast('" ~ (value or '1970-01-01') ~ "' as " ~ dbt.type_timestamp() ~ ")") }}
{% endmacro %}


{#- The join and filter that keep the events (alias) of the batch users from their bound on. -#}
{% macro pulse_events_from_bound(alias, bounds, scan_from) %}
    inner join {{ bounds }} as bounds on {{ alias }}.user_key = bounds.user_key
    where {{ alias }}.event_time >= {{ scan_from }} and {{ pulse_after_bound(alias) }}
{% endmacro %}


{#-
  Custom incremental strategy `replace_where` (Databricks has it built in): replace the target rows the
  model's incremental_predicates select with the new rows. Models use it to replace every row of the batch's
  users from their bound on, including rows that no longer exist (a visit merged into another).
  DuckDB: delete, then insert. Spark (plain Parquet tables: no delete; a table cannot be overwritten by a
  statement that reads it): the rows kept plus the new ones into a staging table, then insert overwrite.
-#}
{% macro get_incremental_replace_where_sql(arg_dict) %}
    {{ return(adapter.dispatch('get_incremental_replace_where_sql', 'pulse')(arg_dict)) }}
{% endmacro %}

{% macro duckdb__get_incremental_replace_where_sql(arg_dict) %}
    {%- set target = arg_dict["target_relation"] -%}
    {%- set source = arg_dict["temp_relation"] -%}
    {%- set columns = get_quoted_csv(arg_dict["dest_columns"] | map(attribute="name")) -%}
    delete from {{ target }} as DBT_INTERNAL_DEST where {{ pulse_replace_where_condition(arg_dict) }};
    insert into {{ target }} ({{ columns }}) select {{ columns }} from {{ source }}
{% endmacro %}

{#- Spark: the statements before the last run here; the last (dropping the staging table) is the model's. The
    predicates are never null here (keys are not null, exists is true or false), so `not (...)` keeps exactly
    the rows DuckDB's delete keeps. -#}
{% macro default__get_incremental_replace_where_sql(arg_dict) %}
    {%- set target = arg_dict["target_relation"] -%}
    {%- set source = arg_dict["temp_relation"] -%}
    {%- set columns = get_quoted_csv(arg_dict["dest_columns"] | map(attribute="name")) -%}
    {%- set where = pulse_replace_where_condition(arg_dict) -%}
    {%- set staged = target.incorporate(path={"identifier": target.identifier ~ "__pulse_replace"}) -%}
    {% do run_query("drop table if exists " ~ staged) %}
    {% do run_query(
        "create table " ~ staged ~ " " ~ pulse_table_format() ~ " as"
        ~ " select " ~ columns ~ " from " ~ target ~ " as DBT_INTERNAL_DEST where not (" ~ where ~ ")"
        ~ " union all select " ~ columns ~ " from " ~ source
    ) %}
    {% do run_query("insert overwrite table " ~ target ~ " select " ~ columns ~ " from " ~ staged) %}
    drop table {{ staged }}
{% endmacro %}

{#- The rows replace_where replaces, as a condition on the target (alias DBT_INTERNAL_DEST). -#}
{% macro pulse_replace_where_condition(arg_dict) %}
    {%- set predicates = arg_dict["incremental_predicates"] or [] -%}
    {%- if pulse_batch()['is_full'] -%}
        {#- a full batch (no committed run yet, e.g. after a failed first build): every row is replaced -#}
        {%- set predicates = ['1 = 1'] -%}
    {%- endif -%}
    {%- if predicates | length == 0 -%}
        {{ exceptions.raise_compiler_error("replace_where needs incremental_predicates: the rows it replaces") }}
    {%- endif -%}
    {#- config() is read while parsing, when ref() does not yet name other models: predicates name the batch
        tables by placeholders, resolved here. -#}
    {%- set where = predicates | join(' and ') -%}
    {%- if '__batch_users__' in where -%}
        {%- set where = where | replace('__batch_users__', ref('int_batch_users') | string) -%}
    {%- endif -%}
    {%- if '__batch_bounds__' in where -%}
        {%- set where = where | replace('__batch_bounds__', ref('int_batch_bounds') | string) -%}
    {%- endif -%}
    {%- if '__batch_event_ids__' in where -%}
        {%- set where = where | replace('__batch_event_ids__', pulse_batch_event_ids()) -%}
    {%- endif -%}
    {{ return(where) }}
{% endmacro %}


{#- on-run-end: commit the batch when every `batch` model ran and succeeded. -#}
{% macro pulse_commit_batch(results) %}
    {% if not execute %}
        {{ return("select 1") }}
    {% endif %}
    {% set succeeded = [] %}
    {% for result in results %}
        {% if result.node.resource_type == 'model' and result.status == 'success' %}
            {% do succeeded.append(result.node.name) %}
        {% endif %}
    {% endfor %}
    {% set missing = [] %}
    {% for node in graph.nodes.values() %}
        {% if node.resource_type == 'model' and 'batch' in node.tags and node.name not in succeeded %}
            {% do missing.append(node.name) %}
        {% endif %}
    {% endfor %}
    {% if missing %}
        {{ log("pulse: batch not committed (did not run or failed: " ~ missing | join(', ') ~ ")", info=True) }}
        {{ return("select 1") }}
    {% endif %}
    {% set batch_relation = target.schema ~ ".int_batch" %}
    {% do run_query(
        "insert into pulse_state.batches select to_watermark, current_timestamp, '" ~ invocation_id ~ "', "
        ~ ("true" if flags.FULL_REFRESH else "false") ~ " from " ~ batch_relation ~ " where to_watermark is not null"
    ) %}
    {% do pulse_commit_identity_map(target.schema ~ ".base_identity_map") %}
    {% do pulse_prune_retracted(batch_relation) %}
    {{ log("pulse: batch committed", info=True) }}
    {{ return("select 1") }}
{% endmacro %}


{#- The identity map the run applied replaces the committed one. Spark: insert overwrite (no delete). -#}
{% macro pulse_commit_identity_map(identity_map) %}
    {{ return(adapter.dispatch('pulse_commit_identity_map', 'pulse')(identity_map)) }}
{% endmacro %}

{% macro duckdb__pulse_commit_identity_map(identity_map) %}
    {% do run_query("delete from pulse_state.identity_map_applied") %}
    {% do run_query("insert into pulse_state.identity_map_applied select anonymous_id, user_id from " ~ identity_map) %}
{% endmacro %}

{% macro default__pulse_commit_identity_map(identity_map) %}
    {% do run_query(
        "insert overwrite table pulse_state.identity_map_applied select anonymous_id, user_id from " ~ identity_map
    ) %}
{% endmacro %}


{#- Retracted rows the committed batch processed are pruned from raw.events_retracted. On Spark that table is
    a read-only export of DuckDB's (pulse.ingest.spark_raw): nothing to prune; rows at or before the watermark are
    ignored by every batch after it anyway. -#}
{% macro pulse_prune_retracted(batch_relation) %}
    {{ return(adapter.dispatch('pulse_prune_retracted', 'pulse')(batch_relation)) }}
{% endmacro %}

{% macro duckdb__pulse_prune_retracted(batch_relation) %}
    {% do run_query(
        "delete from raw.events_retracted where retracted_at <= (select to_watermark from " ~ batch_relation ~ ")"
    ) %}
{% endmacro %}

{% macro default__pulse_prune_retracted(batch_relation) %}
{% endmacro %}


{#- The event_ids of the batch's raw rows, new or retracted, as a subquery (event_id). -#}
{% macro pulse_batch_event_ids() %}
    {% set watermark = "cast('" ~ pulse_batch()['from_watermark'] ~ "' as " ~ dbt.type_timestamp() ~ ")" %}
    {{ return(
        "(select event_id from " ~ source('raw', 'events') ~ " where ingested_at > " ~ watermark
        ~ " union select event_id from " ~ source('raw', 'events_retracted') ~ " where retracted_at > "
        ~ watermark ~ ")"
    ) }}
{% endmacro %}


{#- A table's rows (alias) of a batch user at or after the user's bound, by (time_column, event_id).
    bounds_relation '__batch_bounds__' in incremental_predicates (see replace_where). -#}
{% macro pulse_at_or_after_bound(alias, time_column, bounds_relation) -%}
    exists (
        select 1 from {{ bounds_relation }} as bounds
        where bounds.user_key = {{ alias }}.user_key and {{ pulse_after_bound(alias, time_column) }}
    )
{%- endmacro %}



{#-
  Data tests with `where: __batch__` check, in an incremental run, only the rows the batch changed: the
  batch users' rows from the earliest bound on (a literal event_time bound lets DuckDB skip old row groups).
  In a full build, or before any batch exists, they check every row. dbt's own get_where_subquery, plus that
  placeholder; any other `where` works as usual. For the large views (int_events_sessionized), whose
  whole-table tests cost more than the incremental run itself.
-#}
{% macro get_where_subquery(relation) -%}
    {% set where = config.get('where', '') %}
    {% if where == '__batch__' %}
        {% set where = pulse_batch_where() %}
    {% endif %}
    {% if where %}
        {% do return("(select * from " ~ relation ~ " where " ~ where ~ ") dbt_subquery") %}
    {% endif %}
    {% do return(relation) %}
{%- endmacro %}


{#- The batch's rows (user_key, event_time) as a filter, or none for a full batch. The batch tables are named
    directly: a test does not depend on them in dbt's graph. -#}
{% macro pulse_batch_where() %}
    {% set batch_table = target.schema ~ '.int_batch' %}
    {% set bounds_table = target.schema ~ '.int_batch_bounds' %}
    {% if adapter.get_relation(database=target.database, schema=target.schema, identifier='int_batch_bounds') is none %}
        {{ return(none) }}
    {% endif %}
    {% set full = run_query("select is_full from " ~ batch_table).columns[0].values()[0] %}
    {% if full %}
        {{ return(none) }}
    {% endif %}
    {{ return(
        "event_time >= " ~ pulse_batch_scan_from("select * from " ~ bounds_table)
        ~ " and user_key in (select bounds.user_key from " ~ bounds_table ~ " as bounds)"
    ) }}
{% endmacro %}


{#- The incremental_predicates of a model that replaces each batch user's rows from the user's bound on:
    `condition` compares the target row (DBT_INTERNAL_DEST) with its user's bound (bounds). The semi-join
    comes first so that DuckDB probes the correlated exists for the batch users' rows only (0.2 -> 0.05 s on
    fct_page_views at 10 M). -#}
{% macro pulse_rows_from_bound(condition) %}
    {{ return([
        'DBT_INTERNAL_DEST.user_key in (select user_key from __batch_bounds__)',
        'exists (select 1 from __batch_bounds__ as bounds where bounds.user_key = DBT_INTERNAL_DEST.user_key and '
        ~ condition ~ ')'
    ]) }}
{% endmacro %}
