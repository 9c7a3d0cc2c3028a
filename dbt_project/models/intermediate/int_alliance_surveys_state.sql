{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='record_id') }}
-- The fold of working-alliance survey events, kept between builds: one row per
-- survey present now, with WAI-SR subscales: Goal = 4, 6, 8, 11; Task = 1, 2, 10, 12;
-- Bond = 3, 5, 7, 9. A subscale is the mean of its answered items when at least 3 of
-- 4 are answered; the total is the mean of the three subscales when all exist. Every
-- record folded also has one row with no instrument, so that an incremental build,
-- which refolds only the records with events after the last one folded (their whole
-- history), replaces all their rows; `last_seq` is the last event of the record.
-- int_alliance_surveys_scored keeps the surveys with an item answered.
{%- set subscales = {'goal': [4, 6, 8, 11], 'task': [1, 2, 10, 12], 'bond': [3, 5, 7, 9]} %}
with events as (
    select * from {{ ref('int_survey_field_events') }}
    {{ records_with_new_events(ref('int_survey_field_events')) }}
),

records as (
    select record_id, max(seq) as last_seq
    from events
    group by record_id
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

-- union all by name: a record's own row gives two columns, the others are null
select  -- noqa: AM07
    s.*,
    case when s.goal is not null and s.task is not null and s.bond is not null then (s.goal + s.task + s.bond) / 3 end
        as total,
    r.last_seq
from scored as s
inner join records as r on s.record_id = r.record_id
union all by name
select
    record_id,
    last_seq
from records
