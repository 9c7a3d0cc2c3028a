{{ config(materialized='incremental', incremental_strategy='append') }}
-- Working-alliance survey change events (wai_client, wai_staff), one row per field
-- they set: a recorded survey gives a row per field of its export row, a correction
-- its one field, a removal one row with no field. Append-only and incremental on
-- the event-store sequence number.
with events as (
    select * from {{ ref('stg_alliance__survey_events') }}
    where instrument in ('wai_client', 'wai_staff') {{ new_events_only() }}
),

recorded as (
    select record_id, instrument, instance, seq, event_type, {{ json_text_entries("payload -> 'values'") }} as entry
    from events
    where event_type = 'survey_recorded'
)

select record_id, instrument, instance, seq, event_type, entry['key'] as field, entry['value'] as value
from recorded
union all
select record_id, instrument, instance, seq, event_type, payload ->> 'field' as field, payload ->> 'new' as value
from events
where event_type = 'survey_field_corrected'
union all
select record_id, instrument, instance, seq, event_type, null as field, null as value
from events
where event_type = 'survey_removed'
