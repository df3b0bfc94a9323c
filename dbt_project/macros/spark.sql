{#-
  What the same models need on Apache Spark (dbt-spark), beside DuckDB (dbt-duckdb). docs/spark.md.
  Project macros dispatched on the adapter: `default__` is Spark, `duckdb__` is DuckDB (as in pulse_hash64).
-#}


{#- on-run-start: the raw tables the sources read. DuckDB holds them (pulse.ingest.raw_events); Spark reads the Parquet
    files pulse.ingest.spark_raw exported from them, as external tables of the schema `raw`, declared again each run
    (dropping an external table keeps its files) so that a new export and new columns are seen. -#}
{% macro pulse_raw_setup() %}
    {{ return(adapter.dispatch('pulse_raw_setup', 'pulse')()) }}
{% endmacro %}

{% macro duckdb__pulse_raw_setup() %}
    select 1
{% endmacro %}

{% macro default__pulse_raw_setup() %}
    {% set root = env_var('PULSE_SPARK_RAW', env_var('PULSE_HOME', '../.data') ~ '/spark/raw') %}
    {% do run_query("create schema if not exists raw") %}
    {#- pulse.ingest.spark_raw.EXPORTED_TABLES: the sources, and ingested_files for the quality gates -#}
    {% for table in ['events', 'events_retracted', 'ingested_files'] %}
        {% do run_query("drop table if exists raw." ~ table) %}
        {% do run_query("create table raw." ~ table ~ " using parquet location '" ~ root ~ "/" ~ table ~ "'") %}
    {% endfor %}
    select 1
{% endmacro %}


{#- The clause that makes a table DDL a plain Parquet table on Spark (nothing on DuckDB). -#}
{% macro pulse_table_format() %}
    {{ return(adapter.dispatch('pulse_table_format', 'pulse')()) }}
{% endmacro %}

{% macro duckdb__pulse_table_format() %}{% endmacro %}

{% macro default__pulse_table_format() %}using parquet{% endmacro %}


{#- dbt's dateadd and datediff on Spark (dbt.dateadd / dbt.datediff dispatch here first: dbt_project.yml).
    dbt-spark's own go through unix seconds (sub-second parts are lost) and raise on nulls (assert_not_null).
    These keep microseconds and nulls, and count boundaries crossed as DuckDB's date_diff does. -#}
{% macro spark__dateadd(datepart, interval, from_date_or_timestamp) -%}
    timestampadd({{ datepart }}, cast({{ interval }} as bigint), {{ from_date_or_timestamp }})
{%- endmacro %}

{% macro spark__datediff(first_date, second_date, datepart) -%}
    {%- set seconds = {'second': 1, 'minute': 60, 'hour': 3600} -%}
    {%- if datepart == 'day' -%}
        datediff(cast({{ second_date }} as date), cast({{ first_date }} as date))
    {%- elif datepart in seconds -%}
        (
            unix_micros(cast({{ second_date }} as timestamp)) div {{ seconds[datepart] * 1000000 }}
            - unix_micros(cast({{ first_date }} as timestamp)) div {{ seconds[datepart] * 1000000 }}
        )
    {%- else -%}
        timestampdiff({{ datepart }}, {{ first_date }}, {{ second_date }})
    {%- endif -%}
{%- endmacro %}


{#-
  The incremental strategy `replace_where` on Spark (macros/incremental_batches.sql has DuckDB's). dbt-spark
  accepts append, merge (Delta/Iceberg/Hudi only) and insert_overwrite; these two overrides of its own
  macros let replace_where through and hand it to get_incremental_replace_where_sql.
-#}
{% macro dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format) %}
    {% if raw_strategy == 'replace_where' %}
        {% do return(raw_strategy) %}
    {% endif %}
    {% do return(dbt.dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format)) %}
{% endmacro %}

{% macro dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) %}
    {% if strategy == 'replace_where' %}
        {{ return(get_incremental_replace_where_sql({
            'target_relation': target,
            'temp_relation': source,
            'unique_key': unique_key,
            'dest_columns': adapter.get_columns_in_relation(target),
            'incremental_predicates': incremental_predicates,
        })) }}
    {% endif %}
    {{ return(dbt.dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates)) }}
{% endmacro %}


{#- min_by / max_by over the rows whose value is not null: DuckDB's min_by skips a null `arg`, Spark's returns
    the null of the row with the least `val` (rows with a null `val` are skipped on both). -#}
{% macro pulse_min_by(arg, val) -%}
    {{ return(adapter.dispatch('pulse_min_by', 'pulse')(arg, val, 'min_by')) }}
{%- endmacro %}

{% macro pulse_max_by(arg, val) -%}
    {{ return(adapter.dispatch('pulse_min_by', 'pulse')(arg, val, 'max_by')) }}
{%- endmacro %}

{% macro duckdb__pulse_min_by(arg, val, function) -%}
    {{ function }}({{ arg }}, {{ val }})
{%- endmacro %}

{% macro default__pulse_min_by(arg, val, function) -%}
    {{ function }}({{ arg }}, case when {{ arg }} is not null then {{ val }} end)
{%- endmacro %}
