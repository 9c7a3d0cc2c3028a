-- Per randomized participant (enrolled, arm `All`, in a study without arms)
-- admitted to treatment on or after day 0 (randomization, else consent):
-- the first such admission, the first discharge on or after it, and the
-- censoring date (the data cut, or a scope-1 withdrawal date if earlier).
with randomized as (
    select record_id, analysis_arm as arm, day_zero as rand_date, censor_date
    from {{ ref('int_participants_projected') }}
    where is_analysed and not is_erased
),

admissions as (
    select
        e.record_id,
        e.occurred_on as admitted_on,
        e.program_id,
        row_number() over (partition by e.record_id order by e.occurred_at, e.event_id) as admission_rank
    from {{ ref('int_session_events_counted') }} as e
    inner join randomized as r on e.record_id = r.record_id
    where e.event_type = 'treatment_admitted' and e.occurred_on >= r.rand_date
),

first_admission as (
    select record_id, admitted_on, program_id
    from admissions
    where admission_rank = 1
),

discharges as (
    select
        a.record_id,
        d.occurred_on as discharged_on,
        d.discharge_reason,
        row_number() over (partition by a.record_id order by d.occurred_at, d.event_id) as discharge_rank
    from first_admission as a
    inner join {{ ref('int_session_events_counted') }} as d
        on a.record_id = d.record_id and d.event_type = 'treatment_discharged' and a.admitted_on <= d.occurred_on
)

select
    r.record_id,
    r.arm,
    a.program_id,
    a.admitted_on,
    d.discharged_on,
    d.discharge_reason,
    least(c.data_cut_on, coalesce(r.censor_date, c.data_cut_on)) as censored_on
from first_admission as a
inner join randomized as r on a.record_id = r.record_id
cross join {{ ref('int_data_cut') }} as c
left join discharges as d on a.record_id = d.record_id and d.discharge_rank = 1
