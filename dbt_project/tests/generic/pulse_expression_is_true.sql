{% test pulse_expression_is_true(model, column_name, expression) %}
-- Rows where `column_name expression` is false (nulls pass, as in dbt_utils.expression_is_true).
select *
from {{ model }}
where {{ column_name }} is not null and not ({{ column_name }} {{ expression }})
{% endtest %}
