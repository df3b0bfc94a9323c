{#- The number of the `seconds`-long bucket a timestamp falls in, counted from 1970-01-01 (page pings'
    heartbeat buckets). -#}
{% macro pulse_time_bucket(timestamp, seconds) -%}
    cast(floor(
        {{ dbt.datediff("cast('1970-01-01 00:00:00' as " ~ dbt.type_timestamp() ~ ")", timestamp, 'second') }}
        / {{ seconds }}
    ) as {{ dbt.type_bigint() }})
{%- endmacro %}


{#- A bigint with only bit `position` (0..62) set, for bit_or masks. DuckDB: <<; Spark: shiftleft. -#}
{% macro pulse_bit_flag(position) -%}
    {{ return(adapter.dispatch('pulse_bit_flag', 'pulse')(position)) }}
{%- endmacro %}

{% macro default__pulse_bit_flag(position) -%}
    shiftleft(cast(1 as bigint), cast({{ position }} as int))
{%- endmacro %}

{% macro duckdb__pulse_bit_flag(position) -%}
    (cast(1 as bigint) << cast({{ position }} as integer))
{%- endmacro %}


{#- One row per calendar day from the date of `start` to the date of `end` (a set-returning select-list
    expression). DuckDB: unnest(generate_series(...)); Spark: explode(sequence(...)). -#}
{% macro pulse_explode_dates(start, end) -%}
    {{ return(adapter.dispatch('pulse_explode_dates', 'pulse')(start, end)) }}
{%- endmacro %}

{% macro default__pulse_explode_dates(start, end) -%}
    explode(sequence(cast({{ start }} as date), cast({{ end }} as date)))
{%- endmacro %}

{% macro duckdb__pulse_explode_dates(start, end) -%}
    cast(unnest(generate_series(cast({{ start }} as date), cast({{ end }} as date), interval 1 day)) as date)
{%- endmacro %}
