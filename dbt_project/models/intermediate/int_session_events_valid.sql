-- Session-log events that count for something: not voided (and not the void
-- itself), of a consented participant, not dated after a scope-1 withdrawal.
-- Participants who withdrew all data are still here (the CONSORT flow needs
-- whether they received the intervention); int_session_events_counted drops them.
with events as (
    select * from {{ ref('int_session_events') }}
    where event_type <> 'event_voided'
),

voided as (
    select distinct voids_event_id as event_id
    from {{ ref('int_session_events') }}
    where event_type = 'event_voided' and voids_event_id is not null
),

participants as (
    select record_id, censor_date, is_erased
    from {{ ref('int_participants_projected') }}
    where is_consented
)

select
    e.*,
    p.censor_date,
    p.is_erased
from events as e
inner join participants as p on e.record_id = p.record_id
where
    e.event_id not in (select v.event_id from voided as v)
    and (p.censor_date is null or e.occurred_on <= p.censor_date)
