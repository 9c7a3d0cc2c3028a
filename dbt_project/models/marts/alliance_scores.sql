-- One row per working-alliance survey of a published participant (nothing
-- dated after a scope-1 withdrawal).
with participants as (
    select record_id, censor_date
    from {{ ref('int_participants_projected') }}
    where is_consented and not is_erased
)

select
    participant_key(s.record_id) as participant_key,
    s.respondent,
    s.session_number,
    s.surveyed_on,
    s.goal,
    s.task,
    s.bond,
    s.total,
    s.items_answered
from {{ ref('int_alliance_surveys_scored') }} as s
inner join participants as p on s.record_id = p.record_id
where p.censor_date is null or s.surveyed_on is null or s.surveyed_on <= p.censor_date
