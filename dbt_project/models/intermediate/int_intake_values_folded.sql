-- The intake records as currently known: the fold of first-seen, corrected and
-- removed events into (record_id, field, value), for records present now.
with events as (
    -- the records themselves (base rows), not repeating-instrument instances
    select * from {{ ref('stg_intake__events') }}
    where payload ->> 'instrument' is null
),

lifecycle as (
    select record_id, arg_max(event_type, seq) as last_lifecycle_event
    from events
    where event_type in ('intake_recorded', 'intake_record_removed')
    group by record_id
),

field_events as (
    select record_id, seq, entry.key as field, entry.value
    from (
        select record_id, seq, {{ json_text_entries("payload -> 'values'") }} as entry
        from events
        where event_type = 'intake_recorded'
    )
    union all
    select record_id, seq, payload ->> 'field' as field, payload ->> 'new' as value
    from events
    where event_type = 'intake_field_corrected'
)

select
    f.record_id,
    f.field,
    arg_max_null(f.value, f.seq) as value
from field_events as f
inner join lifecycle as l on f.record_id = l.record_id
where l.last_lifecycle_event = 'intake_recorded'
group by f.record_id, f.field
