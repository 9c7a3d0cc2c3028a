-- One row per working-alliance survey present now (the fold of survey events),
-- with WAI-SR subscales: Goal = 4, 6, 8, 11; Task = 1, 2, 10, 12; Bond = 3, 5, 7, 9.
-- A subscale is the mean of its answered items when at least 3 of 4 are
-- answered; the total is the mean of the three subscales when all exist.
-- A row with no item answered is not a survey.
{%- set subscales = {'goal': [4, 6, 8, 11], 'task': [1, 2, 10, 12], 'bond': [3, 5, 7, 9]} %}
with events as (
    select * from {{ ref('int_survey_field_events') }}
),

lifecycle as (
    select record_id, instrument, instance, arg_max(event_type, seq) as last_lifecycle_event
    from events
    where event_type in ('survey_recorded', 'survey_removed')
    group by record_id, instrument, instance
),

folded as (
    select f.record_id, f.instrument, f.instance, f.field, arg_max_null(f.value, f.seq) as value
    from events as f
    inner join lifecycle as l using (record_id, instrument, instance)
    where l.last_lifecycle_event = 'survey_recorded' and f.field is not null
    group by f.record_id, f.instrument, f.instance, f.field
),

surveys as (
    select
        record_id,
        instrument,
        instance,
        case instrument when 'wai_client' then 'client' else 'staff' end as respondent,
        try_cast(max(value) filter (where field in ('waic_date', 'wais_date')) as date) as surveyed_on,
        try_cast(max(value) filter (where field in ('waic_session', 'wais_session')) as integer) as session_number,
        {%- for i in range(1, 13) %}
        try_cast(max(value) filter (where field in ('waic_{{ i }}', 'wais_{{ i }}')) as integer) as item_{{ i }}
        {%- if not loop.last %},{% endif %}
        {%- endfor %}
    from folded
    group by record_id, instrument, instance
),

scored as (
    select
        *,
        {%- for name, items in subscales.items() %}
        case
            when (
                {%- for i in items %}
                {% if not loop.first %}+ {% endif %}cast(item_{{ i }} is not null as int)
                {%- endfor %}
            ) >= 3
                then (
                    {%- for i in items %}
                    {% if not loop.first %}+ {% endif %}coalesce(item_{{ i }}, 0)
                    {%- endfor %}
                ) / (
                    {%- for i in items %}
                    {% if not loop.first %}+ {% endif %}cast(item_{{ i }} is not null as int)
                    {%- endfor %}
                )
        end as {{ name }},
        {%- endfor %}
        (
            {%- for i in range(1, 13) %}
            {% if not loop.first %}+ {% endif %}cast(item_{{ i }} is not null as int)
            {%- endfor %}
        ) as items_answered
    from surveys
)

select
    *,
    case when goal is not null and task is not null and bond is not null then (goal + task + bond) / 3 end as total
from scored
where items_answered > 0
