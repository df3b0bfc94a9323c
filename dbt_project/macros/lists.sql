{#- The few list functions the engines spell differently (dbt has no cross-database macro for them).
    DuckDB's are the defaults; Spark's follow. (`array_contains(list, value)` is spelled the same on both:
    DuckDB has it as an alias of list_contains.) -#}

{#- The distinct values of `expr` in a group, sorted. -#}
{% macro pulse_sorted_set(expr) %}
    {{ return(adapter.dispatch('pulse_sorted_set', 'pulse')(expr)) }}
{% endmacro %}
{% macro default__pulse_sorted_set(expr) %}list(distinct {{ expr }} order by {{ expr }}){% endmacro %}
{% macro spark__pulse_sorted_set(expr) %}array_sort(collect_set({{ expr }})){% endmacro %}

{#- The values of `value` in a group, ordered by `order_by`. -#}
{% macro pulse_ordered_list(value, order_by) %}
    {{ return(adapter.dispatch('pulse_ordered_list', 'pulse')(value, order_by)) }}
{% endmacro %}
{% macro default__pulse_ordered_list(value, order_by) %}list({{ value }} order by {{ order_by }}){% endmacro %}
{% macro spark__pulse_ordered_list(value, order_by) -%}
    transform(array_sort(collect_list(struct({{ order_by }} as k, {{ value }} as v))), x -> x.v)
{%- endmacro %}

{#- An empty list of strings. -#}
{% macro pulse_empty_string_list() %}
    {{ return(adapter.dispatch('pulse_empty_string_list', 'pulse')()) }}
{% endmacro %}
{% macro default__pulse_empty_string_list() %}cast([] as varchar[]){% endmacro %}
{% macro spark__pulse_empty_string_list() %}cast(array() as array<string>){% endmacro %}

