-- Per randomized participant (scope-2 withdrawals included, for CONSORT): the
-- case-management sessions of the arm's own service attended 0-60 days after
-- randomization, each session_number once (always 0 for Standard).
{%- set services = {'SBCM': 'case_management', 'MI': 'motivational_interviewing'} %}
with randomized as (
    select record_id, rand_arm as arm, rand_date
    from {{ ref('int_participants_projected') }}
    where is_consented and is_randomized
),

own_sessions as (
    select
        e.record_id,
        e.session_number,
        e.occurred_on - r.rand_date as days_since_randomization
    from {{ ref('int_session_events_valid') }} as e
    inner join randomized as r on e.record_id = r.record_id
    where
        e.event_type = 'session_attended'
        and e.occurred_on - r.rand_date between 0 and 60
        and (
            {%- for arm, service in services.items() %}
            (r.arm = '{{ arm }}' and e.service = '{{ service }}'){% if not loop.last %} or{% endif %}
            {%- endfor %}
        )
)

select
    r.record_id,
    r.arm,
    count(distinct s.session_number) as sessions_attended,
    min(s.days_since_randomization) as days_to_first_session
from randomized as r
left join own_sessions as s on r.record_id = s.record_id
group by r.record_id, r.arm
