{# A uniqueness test over several columns: the rows whose combination of values occurs more than once
   (nulls compare equal). Grouping on the columns themselves is cheaper than dbt's `unique` over a
   concatenated expression, which builds a string per row. #}
{% test unique_combination(model, columns) %}
select
    {{ columns | join(', ') }},
    count(*) as occurrences
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
