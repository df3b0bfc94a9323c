{#- Fails (or warns, with severity: warn) with every row of the model: for QA tables that list what needs a look. -#}
{% test pulse_row_count_is_zero(model) %}

    select * from {{ model }}

{% endtest %}
