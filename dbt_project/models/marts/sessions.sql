-- One row per non-voided session or contact event of a published participant.
with events as (
    select * from {{ ref('int_session_events_counted') }}
    where event_type in (
        'session_scheduled', 'session_attended', 'session_missed', 'session_cancelled', 'contact_attempt'
    )
),

participants as (
    select record_id, case when is_analysed then day_zero end as rand_date
    from {{ ref('int_participants_projected') }}
)

select
    participant_key(e.record_id) as participant_key,
    e.event_type,
    e.service,
    e.session_number,
    e.occurred_at,
    e.occurred_on,
    e.occurred_on - p.rand_date as days_since_randomization,
    e.mode,
    e.duration_min,
    e.staff_id,
    e.scheduled_for,
    e.activities
from events as e
inner join participants as p on e.record_id = p.record_id
