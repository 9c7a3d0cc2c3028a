-- Session-log events that count: not voided (and not the void itself), of a
-- consented participant who has not withdrawn all data, not dated after a
-- scope-1 withdrawal. Duplicated event ids are already held once by the store.
with events as (
    select * from {{ ref('stg_sessions__events') }}
),

voided as (
    select distinct voids_event_id as event_id
    from events
    where event_type = 'event_voided' and voids_event_id is not null
),

participants as (
    select record_id, censor_date
    from {{ ref('int_participants_projected') }}
    where is_consented and not is_erased
)

select
    e.*,
    p.censor_date
from events as e
inner join participants as p on e.record_id = p.record_id
where
    e.event_type <> 'event_voided'
    and e.event_id not in (select v.event_id from voided as v)
    and (p.censor_date is null or e.occurred_on <= p.censor_date)
