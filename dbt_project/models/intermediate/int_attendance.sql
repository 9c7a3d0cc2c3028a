-- noqa: disable=LT02
-- Per analysed participant (scope-2 withdrawals included, for CONSORT): the
-- sessions of the arm's own intervention service (the study profile's `arms`)
-- attended 0-60 days after day 0, each session_number once. An arm whose
-- intervention is given by allocation (no service, e.g. Standard referral) has
-- none and always received it; in a study without arms every service counts.
{%- set services = var('profile').get('arm_services') or {} %}
with analysed as (
    select record_id, analysis_arm as arm, day_zero
    from {{ ref('int_participants_projected') }}
    where is_analysed
),

own_sessions as (
    select
        e.record_id,
        e.session_number,
        e.occurred_on - r.day_zero as days_since_day_zero
    from {{ ref('int_session_events_valid') }} as e
    inner join analysed as r on e.record_id = r.record_id
    where
        e.event_type = 'session_attended'
        and e.occurred_on - r.day_zero between 0 and 60
        {%- if randomized_study() %}
        and (
            false
            {%- for arm, service in services.items() if service %}
            or (r.arm = {{ sql_text(arm) }} and e.service = {{ sql_text(service) }})
            {%- endfor %}
        )
        {%- endif %}
),

counted as (
    select
        r.record_id,
        r.arm,
        count(distinct s.session_number) as sessions_attended,
        min(s.days_since_day_zero) as days_to_first_session
    from analysed as r
    left join own_sessions as s on r.record_id = s.record_id
    group by r.record_id, r.arm
)

{%- set by_allocation = [] %}
{%- for arm, service in services.items() if not service %}{% do by_allocation.append(arm) %}{% endfor %}

select
    record_id,
    arm,
    sessions_attended,
    days_to_first_session,
    sessions_attended >= 1
    {%- for arm in by_allocation %}
    or arm = {{ sql_text(arm) }}
    {%- endfor %} as received_intervention
from counted
