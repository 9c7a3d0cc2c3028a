{{ config(tags=['check']) }}
-- For consent rule 2 (scope 1): every dated participant-level row, with whether it is
-- dated after its participant's withdrawal date. Not published.
with cut as (
    select participant_key(record_id) as participant_key, censor_date
    from {{ ref('int_participants_projected') }}
    where censor_date is not null
),

dated as (
    select 'sessions' as mart, participant_key, occurred_on as dated_on from {{ ref('sessions') }}
    union all
    select 'alliance_scores' as mart, participant_key, surveyed_on as dated_on from {{ ref('alliance_scores') }}
    union all
    select 'retention' as mart, participant_key, coalesce(discharged_on, admitted_on) as dated_on
    from {{ ref('retention') }}
    union all
    select
        'retention_censoring' as mart,
        r.participant_key,
        r.admitted_on + cast(r.days_in_treatment as integer) as dated_on
    from {{ ref('retention') }} as r
)

select d.mart, coalesce(d.dated_on > c.censor_date, false) as after_withdrawal
from dated as d
left join cut as c on d.participant_key = c.participant_key
