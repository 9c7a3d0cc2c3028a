-- The intake records as currently known: the fold of first-seen, corrected and
-- removed events into (record_id, field, value), for records present now.
with events as (
    select * from {{ ref('int_intake_field_events') }}
),

lifecycle as (
    select record_id, arg_max(event_type, seq) as last_lifecycle_event
    from events
    where event_type in ('intake_recorded', 'intake_record_removed')
    group by record_id
)

select
    f.record_id,
    f.field,
    arg_max_null(f.value, f.seq) as value
from events as f
inner join lifecycle as l on f.record_id = l.record_id
where l.last_lifecycle_event = 'intake_recorded' and f.field is not null
group by f.record_id, f.field
