-- One row per randomized participant (every enrolled one, arm `All`, in a study
-- without arms): attendance, contacts, linkage and IET measures, each over the
-- windows of CONTRACT 3.1 from day 0 (randomization, else consent; days in the
-- site's time zone). An arm given by allocation (Standard) attends no sessions.
with randomized as (
    select record_id, analysis_arm as arm, day_zero as rand_date, assessment_date
    from {{ ref('int_participants_projected') }}
    where is_analysed and not is_erased
),

events as (
    select
        e.record_id,
        e.event_type,
        e.occurred_on,
        e.occurred_on - r.rand_date as days_since_randomization,
        e.occurred_on - r.assessment_date as days_since_assessment
    from {{ ref('int_session_events_counted') }} as e
    inner join randomized as r on e.record_id = r.record_id
),

contacts as (
    select record_id, count(*) as contacts
    from events
    where event_type = 'contact_attempt' and days_since_randomization between 0 and 60
    group by record_id
),

linkage as (
    select record_id, min(days_since_randomization) as days_to_linkage
    from events
    where event_type = 'treatment_admitted' and days_since_randomization between 0 and 60
    group by record_id
),

initiation as (
    select record_id, min(occurred_on) as initiated_on
    from events
    where event_type = 'treatment_admitted' and days_since_assessment between 0 and 14
    group by record_id
),

engagement_visits as (
    select i.record_id, count(*) as visits
    from initiation as i
    inner join events as e
        on
            i.record_id = e.record_id
            and e.event_type = 'treatment_visit'
            and e.occurred_on - i.initiated_on between 1 and 34
    group by i.record_id
)

select
    participant_key(r.record_id) as participant_key,
    r.arm,
    a.sessions_attended,
    a.sessions_attended >= 1 as attended_any,
    a.days_to_first_session,
    coalesce(c.contacts, 0) as contacts,
    l.days_to_linkage is not null as linked,
    l.days_to_linkage,
    i.initiated_on is not null as iet_initiation,
    coalesce(i.initiated_on is not null and ev.visits >= 2, false) as iet_engagement
from randomized as r
inner join {{ ref('int_attendance') }} as a on r.record_id = a.record_id
left join contacts as c on r.record_id = c.record_id
left join linkage as l on r.record_id = l.record_id
left join initiation as i on r.record_id = i.record_id
left join engagement_visits as ev on r.record_id = ev.record_id
