{#- A fast 64-bit hash of an expression, for finding candidates cheaply (always confirm on the value:
    hashes collide). DuckDB: hash(); Spark: xxhash64(). -#}
{% macro pulse_hash64(expression) -%}
    {{ return(adapter.dispatch('pulse_hash64', 'pulse')(expression)) }}
{%- endmacro %}

{% macro default__pulse_hash64(expression) -%}
    xxhash64({{ expression }})
{%- endmacro %}

{% macro duckdb__pulse_hash64(expression) -%}
    hash({{ expression }})
{%- endmacro %}
