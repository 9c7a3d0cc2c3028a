-- The data cut of the build (CONTRACT 3.1): the as-of moment when one is given,
-- else the latest occurred_at among the session-log events the build counts.
with cut as (
    select
        {% if var('as_of') is not none -%}
        cast('{{ var("as_of") }}' as timestamptz)
        {%- else -%}
        (select max(occurred_at) from {{ ref('int_session_events_counted') }})
        {%- endif %} as data_cut
)

select
    data_cut,
    {{ local_date('data_cut') }} as data_cut_on
from cut
